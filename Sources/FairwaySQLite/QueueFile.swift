import CSQLite
import Foundation

/// Why a file cannot be used as a Fairway queue file. The file is never modified in these cases.
public enum QueueFileError: Error, CustomStringConvertible, Equatable, Sendable {
    case missing(path: String)
    case notSQLite(path: String)
    case notFairway(path: String, detail: String)
    case newerSchema(path: String, version: Int)

    public var description: String {
        switch self {
        case .missing(let path):
            return "\(path): no such queue file"
        case .notSQLite(let path):
            return "\(path): not a SQLite database, so not a Fairway queue file; refusing to touch it"
        case .notFairway(let path, let detail):
            return "\(path): a SQLite database but not a Fairway queue file (\(detail)); refusing to touch it"
        case .newerSchema(let path, let version):
            return "\(path): written by a newer Fairway (schema version \(version)); upgrade fairway to use it"
        }
    }
}

/// The layout of the queue file, and the checks that keep Fairway from writing to any other file.
enum QueueFile {
    /// `PRAGMA application_id` of a Fairway queue file: "FWAY".
    static let applicationID: Int64 = 0x4657_4159
    static let schemaVersion = 5

    static let schema = """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: new jobs always have larger ids
            queue TEXT NOT NULL,
            type TEXT NOT NULL,
            payload BLOB NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            state INTEGER NOT NULL,              -- 0 ready, 1 delayed (scheduled or backing off), 2 leased
            available_at INTEGER NOT NULL,       -- milliseconds since 1970
            attempts INTEGER NOT NULL DEFAULT 0, -- runs that ended unsettled: retried, or charged for a crash
            last_error TEXT,
            lease_owner TEXT,
            lease_expires_at INTEGER,
            enqueued_at INTEGER NOT NULL
        );
        CREATE INDEX jobs_ready ON jobs(queue, priority DESC, id) WHERE state = 0;
        CREATE INDEX jobs_delayed ON jobs(available_at) WHERE state = 1;
        CREATE INDEX jobs_leased ON jobs(lease_owner, lease_expires_at) WHERE state = 2;
        CREATE TABLE dead_jobs (
            id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            type TEXT NOT NULL,
            payload BLOB NOT NULL,
            priority INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            reason TEXT NOT NULL,
            enqueued_at INTEGER NOT NULL,
            died_at INTEGER NOT NULL
        );
        CREATE INDEX dead_jobs_queue ON dead_jobs(queue, id);
        CREATE TABLE queue_stats (
            queue TEXT PRIMARY KEY,
            completed INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        CREATE TABLE consumers (
            identity TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            heartbeat_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE fairway_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        """ + limitsTable + declaredQueuesTable + fairnessKeys + deadLetterKeys

    /// Fairness keys (tenants) within a queue: each job's key, an index to walk a queue's keys in turn, and
    /// which declared queues share by key (their jobs without a key get the key ''). The index holds only
    /// keyed jobs, so queues that do not use keys pay nothing for it. Added in schema version 4.
    static let fairnessKeys = """
        ALTER TABLE jobs ADD COLUMN fairness_key TEXT;
        CREATE INDEX jobs_keyed ON jobs(queue, fairness_key, priority DESC, id)
            WHERE state = 0 AND fairness_key IS NOT NULL;
        ALTER TABLE declared_queues ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0;
        """

    /// A dead letter's fairness key, so that a job put back on its queue comes back under its own key
    /// (tenant), as a handler saw it. Added in schema version 5.
    static let deadLetterKeys = """
        ALTER TABLE dead_jobs ADD COLUMN fairness_key TEXT;
        """

    /// Load shedding: the most unfinished jobs a queue may have before enqueues are refused.
    /// Added in schema version 2; version-1 files get it when opened.
    static let limitsTable = """
        CREATE TABLE IF NOT EXISTS queue_limits (
            queue TEXT PRIMARY KEY,
            max_backlog INTEGER NOT NULL,
            retry_after_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
        """

    /// The queues the consumers serve, written by `fairway run` at start, so that producers can refuse a
    /// queue nobody serves or a job type nobody handles. `job_types` is a JSON array, or NULL when the queue
    /// takes any type (its worker is an external command). Added in schema version 3.
    static let declaredQueuesTable = """
        CREATE TABLE IF NOT EXISTS declared_queues (
            queue TEXT PRIMARY KEY,
            job_types TEXT
        ) WITHOUT ROWID;
        """

    /// Opens a queue file, creating and initialising it when `create` is true and it does not exist or is
    /// empty. Refuses, without writing anything, a file that is not SQLite or not Fairway's.
    static func open(path: String, create: Bool, busyTimeout: Duration = .seconds(5)) throws -> SQLiteConnection {
        let manager = FileManager.default
        if manager.fileExists(atPath: path) {
            let attributes = try? manager.attributesOfItem(atPath: path)
            let size = (attributes?[.size] as? NSNumber)?.intValue ?? 0
            if size > 0 {
                // Look through SQLite itself, never with a plain open(): closing any descriptor of the file
                // drops every POSIX lock this process holds on it, and another process could then think
                // it is the file's last user and delete the WAL under our other connections.
                try checkIsSQLite(path)
            }
        } else if !create {
            throw QueueFileError.missing(path: path)
        }
        let connection = try SQLiteConnection(
            path: path, mode: create ? .readWriteCreate : .readWrite, busyTimeout: busyTimeout
        )
        try check(connection)
        try connection.execute("PRAGMA synchronous = NORMAL")
        return connection
    }

    /// Refuses a file that is not a SQLite database, through a read-only connection that writes nothing.
    private static func checkIsSQLite(_ path: String) throws {
        let probe = try SQLiteConnection(path: path, mode: .readOnly)
        do {
            _ = try probe.query("PRAGMA schema_version") { $0.int(0) }
        } catch let error as SQLiteError where error.code & 0xFF == SQLITE_NOTADB {
            throw QueueFileError.notSQLite(path: path)
        }
    }

    private static func check(_ connection: SQLiteConnection) throws {
        let path = connection.path
        let applicationID = try connection.query("PRAGMA application_id") { $0.int64(0) }.first ?? 0
        if applicationID == Self.applicationID {
            let version = try connection.query("PRAGMA user_version") { $0.int(0) }.first ?? 0
            guard version <= schemaVersion else { throw QueueFileError.newerSchema(path: path, version: version) }
            if version < schemaVersion {
                try connection.transaction {
                    if version < 3 {
                        try connection.execute(limitsTable)
                        try connection.execute(declaredQueuesTable)
                    }
                    if version < 4 {
                        try connection.execute(fairnessKeys)
                    }
                    try connection.execute(deadLetterKeys)
                    try connection.execute("PRAGMA user_version = \(schemaVersion)")
                }
            }
            return
        }
        guard applicationID == 0 else {
            throw QueueFileError.notFairway(
                path: path, detail: String(format: "its application id is 0x%08x", applicationID))
        }
        let tables = try connection.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") {
            $0.text(0) ?? ""
        }
        guard tables.isEmpty else {
            let listed = tables.prefix(5).joined(separator: ", ") + (tables.count > 5 ? ", …" : "")
            throw QueueFileError.notFairway(path: path, detail: "it holds tables \(listed)")
        }
        try connection.execute("PRAGMA journal_mode = WAL")
        try connection.transaction {
            try connection.execute(schema)
            try connection.execute("PRAGMA application_id = \(Int32(truncatingIfNeeded: Self.applicationID))")
            try connection.execute("PRAGMA user_version = \(schemaVersion)")
            try connection.execute("INSERT INTO fairway_meta(key, value) VALUES ('created_by', 'fairway')")
        }
    }
}

/// Wall-clock milliseconds since 1970: the unit of every time in the queue file.
enum Milliseconds {
    static var now: Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }
}

import CSQLite
import FairwayRuntime
import Foundation

/// An error from SQLite, with the file it concerns.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let code: Int32
    public let message: String

    public var description: String { "\(path): \(message)" }

    /// The database or the disk is full.
    public var isFull: Bool { code & 0xFF == SQLITE_FULL }
    /// Another connection holds a lock for longer than the busy timeout.
    public var isBusy: Bool { code & 0xFF == SQLITE_BUSY || code & 0xFF == SQLITE_LOCKED }
}

/// One connection to a SQLite file, used by one thread at a time. A thin layer over the C API: the hot
/// statements are prepared once and reused.
final class SQLiteConnection {
    let path: String
    private(set) var handle: OpaquePointer?
    private var cache: [String: Statement] = [:]

    enum Mode {
        case readWrite
        case readWriteCreate
        case readOnly
    }

    /// SQLite counts every allocation under a process-wide mutex unless told not to before its first use;
    /// Fairway never reads the counts (the mutex was 3–5 % of a deep drain's store thread). When the host
    /// application used SQLite first, the call is refused and nothing changes.
    private static let allocationCountingOff: Void = { _ = csqlite_disable_memstatus() }()

    init(path: String, mode: Mode, busyTimeout: Duration = .seconds(5)) throws {
        self.path = path
        Self.allocationCountingOff
        var flags = SQLITE_OPEN_NOMUTEX
        switch mode {
        case .readWrite: flags |= SQLITE_OPEN_READWRITE
        case .readWriteCreate: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        case .readOnly: flags |= SQLITE_OPEN_READONLY
        }
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        self.handle = handle
        guard rc == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close_v2(handle)
            self.handle = nil
            throw SQLiteError(path: path, code: rc, message: "cannot open: \(message)")
        }
        sqlite3_extended_result_codes(handle, 1)
        // SQLite's own busy handler sleeps up to 100 ms at a time; a queue wants the lock back sooner.
        let timeoutMilliseconds = max(1, Int(busyTimeout.seconds * 1000))
        sqlite3_busy_handler(
            handle,
            { context, count in
                let limit = Int(bitPattern: context)
                // 50 µs, doubling to 2 ms, then 2 ms at a time: about `limit` ms in all.
                guard Int(count) < 6 + limit / 2 else { return 0 }
                usleep(UInt32(min(2000, 50 << min(Int(count), 6))))
                return 1
            }, UnsafeMutableRawPointer(bitPattern: timeoutMilliseconds))
    }

    deinit {
        cache.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Registers `fw_shape(reason)`: the reason with its numbers masked (`DeadLetterFilter.shape(of:)`), so
    /// that dead letters can be grouped and selected by cause inside SQL.
    func registerReasonShape() throws {
        let rc = sqlite3_create_function_v2(
            handle, "fw_shape", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nil,
            { context, _, arguments in
                guard let argument = arguments?[0], let text = sqlite3_value_text(argument) else {
                    sqlite3_result_null(context)
                    return
                }
                let shape = DeadLetterFilter.shape(of: String(cString: text))
                sqlite3_result_text(context, shape, -1, csqlite_transient())
            }, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc, "registering fw_shape") }
    }

    func error(_ rc: Int32, _ context: String? = nil) -> SQLiteError {
        let detail = String(cString: sqlite3_errmsg(handle))
        return SQLiteError(path: path, code: rc, message: context.map { "\($0): \(detail)" } ?? detail)
    }

    /// Runs one or more statements that return no rows.
    func execute(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(message)
            throw SQLiteError(path: path, code: rc, message: text)
        }
    }

    /// A statement prepared once and kept for reuse.
    func cached(_ sql: String) throws -> Statement {
        if let statement = cache[sql] {
            statement.reset()
            return statement
        }
        let statement = try Statement(connection: self, sql: sql, persistent: true)
        cache[sql] = statement
        return statement
    }

    /// A statement for the caller to keep: for one use, or (`persistent`) for many.
    func prepare(_ sql: String, persistent: Bool = false) throws -> Statement {
        try Statement(connection: self, sql: sql, persistent: persistent)
    }

    /// The rows of a query, each as its columns read by `row`.
    func query<T>(_ sql: String, _ bindings: [SQLiteValue] = [], row: (Statement) -> T) throws -> [T] {
        let statement = try cached(sql)
        defer { statement.reset() }
        try statement.bind(bindings)
        var rows: [T] = []
        while try statement.step() {
            rows.append(row(statement))
        }
        return rows
    }

    /// Runs `body` in one write transaction (BEGIN IMMEDIATE), committing if it returns.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try cached("BEGIN IMMEDIATE").run()
        do {
            let result = try body()
            try cached("COMMIT").run()
            return result
        } catch {
            try? cached("ROLLBACK").run()
            throw error
        }
    }

    /// Runs `body` in one read transaction (BEGIN DEFERRED, no write lock), so that several queries see
    /// the same snapshot of the file.
    func snapshot<T>(_ body: () throws -> T) throws -> T {
        try cached("BEGIN").run()
        defer { try? cached("COMMIT").run() }
        return try body()
    }

    var changes: Int { Int(sqlite3_changes(handle)) }

    /// Changes when another connection commits to the file; our own commits leave it as it is.
    func dataVersion() throws -> Int64 {
        let statement = try cached("PRAGMA data_version")
        defer { statement.reset() }
        _ = try statement.step()
        return statement.int64(0)
    }
}

/// A value to bind to a statement parameter.
enum SQLiteValue {
    case int(Int64)
    case text(String)
    case blob([UInt8])
    case null
}

/// A prepared statement.
final class Statement {
    private let connection: SQLiteConnection
    private var handle: OpaquePointer?

    init(connection: SQLiteConnection, sql: String, persistent: Bool) throws {
        self.connection = connection
        var handle: OpaquePointer?
        let flags = persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
        let rc = sqlite3_prepare_v3(connection.handle, sql, -1, flags, &handle, nil)
        guard rc == SQLITE_OK else {
            sqlite3_finalize(handle)
            throw connection.error(rc, "preparing \(sql.prefix(60))")
        }
        self.handle = handle
    }

    deinit { sqlite3_finalize(handle) }

    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    func bind(_ values: [SQLiteValue]) throws {
        for (offset, value) in values.enumerated() {
            try bind(value, at: Int32(offset + 1))
        }
    }

    func bind(_ value: SQLiteValue, at index: Int32) throws {
        let rc: Int32
        switch value {
        case .int(let number): rc = sqlite3_bind_int64(handle, index, number)
        case .text(let text): rc = sqlite3_bind_text(handle, index, text, -1, csqlite_transient())
        case .blob(let bytes):
            rc = bytes.withUnsafeBytes { buffer in
                sqlite3_bind_blob(
                    handle, index, buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(buffer.count),
                    csqlite_transient())
            }
        case .null: rc = sqlite3_bind_null(handle, index)
        }
        guard rc == SQLITE_OK else { throw connection.error(rc, "binding parameter \(index)") }
    }

    /// Advances to the next row; false when done.
    func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = connection.error(rc)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Runs a statement that returns no rows.
    func run(_ values: [SQLiteValue] = []) throws {
        try bind(values)
        try execute()
    }

    /// Binds one integer: the per-job path, with no array of values.
    func bind(_ number: Int64, at index: Int32) throws {
        let rc = sqlite3_bind_int64(handle, index, number)
        guard rc == SQLITE_OK else { throw connection.error(rc, "binding parameter \(index)") }
    }

    /// Runs a statement that returns no rows with the values bound now, and keeps them bound for the
    /// next run: a statement run once per job binds what does not change once.
    func execute() throws {
        while try step() {}
        sqlite3_reset(handle)
    }

    /// Runs a query of one integer with the values bound now, and keeps them bound, as ``execute()``.
    func scalar() throws -> Int64 {
        _ = try step()
        let value = sqlite3_column_int64(handle, 0)
        sqlite3_reset(handle)
        return value
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(handle, column)) }
    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    func text(_ column: Int32) -> String? {
        guard let pointer = sqlite3_column_text(handle, column) else { return nil }
        return String(cString: pointer)
    }

    func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let pointer = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}

import FairwayRuntime
import Foundation

/// A queue a consumer serves, as written into the queue file for its producers to check against.
public struct QueueDeclaration: Sendable, Hashable, Codable {
    public var queue: String
    /// The job types the queue's consumers handle; nil when any type goes (an external worker decides).
    public var jobTypes: [String]?
    /// True when the queue's jobs share it by fairness key; its jobs enqueued without a key get the key ''.
    public var keyed: Bool
    /// The pattern when `queue` is one (`tenant-*`): producers may enqueue to any name it matches.
    public var pattern: QueuePattern? { QueuePattern(queue) }

    public init(queue: String, jobTypes: [String]?, keyed: Bool = false) {
        self.keyed = keyed
        self.queue = queue
        self.jobTypes = jobTypes?.sorted()
    }
}

/// The queues declared in a file as a producer looks a job's queue up: by its name, or else by the first
/// pattern (in name order) that admits it. Built once per read of the declarations, not once per job.
struct DeclaredQueues {
    let byName: [String: QueueDeclaration]
    let patterns: [(QueuePattern, QueueDeclaration)]

    init(_ byName: [String: QueueDeclaration]) {
        self.byName = byName
        self.patterns = byName.values.sorted { $0.queue < $1.queue }.compactMap { declaration in
            declaration.pattern.map { ($0, declaration) }
        }
    }

    /// The declaration that serves `queue`, or nil.
    func serving(_ queue: String) -> QueueDeclaration? {
        byName[queue] ?? patterns.first { $0.0.matches(queue) }?.1
    }
}

extension SQLiteQueue {
    /// Replaces the file's declared queues with `declarations`: `fairway run` (and every `FairwayService`)
    /// writes its configuration's queues here at start, as it writes the backlog limits, so that the
    /// consumers of one file share one configuration and the last to start states it.
    public func declareQueues(_ declarations: [QueueDeclaration]) throws {
        let encoder = JSONEncoder()
        try lock.withLock {
            try connection.transaction {
                try connection.execute("DELETE FROM declared_queues")
                let insert = try connection.cached(
                    "INSERT OR REPLACE INTO declared_queues(queue, job_types, keyed) VALUES (?, ?, ?)")
                defer { insert.reset() }
                for declaration in declarations {
                    let types = try declaration.jobTypes.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
                    try insert.run([
                        .text(declaration.queue), types.map(SQLiteValue.text) ?? .null,
                        .int(declaration.keyed ? 1 : 0),
                    ])
                }
                // Jobs enqueued before their queue was declared keyed join the jobs without a key.
                try Self.giveUnkeyedJobsAKey(
                    queues: Self.jsonList(declarations.filter(\.keyed).map(\.queue)), after: 0, in: connection)
                try connection.cached("INSERT OR REPLACE INTO fairway_meta(key, value) VALUES ('queues_declared', ?)")
                    .run([.text(String(Milliseconds.now))])
            }
        }
    }

    /// Gives the jobs written after job `id` to the keyed queues `queues` (a JSON list of names) and left
    /// without a key the key '', under which the claim's walk of keys finds them. One statement for every
    /// queue, so one walk of the jobs: a statement per queue walked them once per queue (10,000 keyed
    /// queues over 100,000 jobs: 53 s before the first job).
    static func giveUnkeyedJobsAKey(queues: String, after id: Int64, in connection: SQLiteConnection) throws {
        guard queues != "[]" else { return }
        try connection.cached(
            """
            UPDATE jobs SET fairness_key = ''
            WHERE id > ?1 AND fairness_key IS NULL AND queue IN (SELECT value FROM json_each(?2))
            """
        ).run([.int(id), .text(queues)])
    }

    /// The SQL for the key a job of `queue` is written with: `key`, or '' when it has none and the queue is
    /// declared keyed (the key the claim's walk of keys finds unkeyed jobs under). Both are SQL expressions.
    static func fairnessKey(_ key: String, queue: String) -> String {
        "coalesce(\(key), (SELECT '' FROM declared_queues WHERE declared_queues.queue = \(queue) AND keyed = 1))"
    }

    /// Names as the JSON list ``giveUnkeyedJobsAKey(queues:after:in:)`` binds.
    static func jsonList(_ names: [String]) -> String {
        String(decoding: (try? JSONEncoder().encode(names)) ?? Data("[]".utf8), as: UTF8.self)
    }

    /// The queues declared in the file, by name; nil when no consumer has declared any yet.
    public func declaredQueues() throws -> [String: QueueDeclaration]? {
        try lock.withLock {
            let declaredAt = try connection.query("SELECT value FROM fairway_meta WHERE key = 'queues_declared'") {
                $0.text(0)
            }
            guard !declaredAt.isEmpty else { return nil }
            let decoder = JSONDecoder()
            let rows = try connection.query("SELECT queue, job_types, keyed FROM declared_queues") { row in
                let types = row.text(1).flatMap { try? decoder.decode([String].self, from: Data($0.utf8)) }
                return QueueDeclaration(queue: row.text(0) ?? "", jobTypes: types, keyed: row.int(2) != 0)
            }
            return Dictionary(rows.map { ($0.queue, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }
}

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
                // Queues of one configuration mostly list the same job types: each list is encoded once.
                var encoded: [[String]: String] = [:]
                for declaration in declarations {
                    let types = try declaration.jobTypes.map { list in
                        if let text = encoded[list] { return text }
                        let text = String(decoding: try encoder.encode(list), as: UTF8.self)
                        encoded[list] = text
                        return text
                    }
                    try insert.run([
                        .text(declaration.queue), types.map(SQLiteValue.text) ?? .null,
                        .int(declaration.keyed ? 1 : 0),
                    ])
                }
                // Jobs enqueued before their queue was declared keyed join the jobs without a key: every job,
                // or only those written since the last declaration when it already declared these queues keyed.
                let keyed = declarations.filter(\.keyed).map(\.queue)
                let after = try Self.keysGivenThrough(keyed, in: connection)
                try Self.giveUnkeyedJobsAKey(queues: Self.jsonList(keyed), after: after, in: connection)
                try Self.recordKeysGiven(keyed, in: connection)
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

    /// The id through which every job of the keyed queues `queues` is known to have a key: the last
    /// declaration's mark when it declared all of them keyed, else 0. Since that declaration every job
    /// written to them got a key as it was written (``fairnessKey(_:queue:)``), so a start walks only the
    /// jobs after the mark, not the whole file (0.08 s a walk at 1.2 M jobs, twice at `fairway run`).
    static func keysGivenThrough(_ queues: [String], in connection: SQLiteConnection) throws -> Int64 {
        guard !queues.isEmpty else { return 0 }
        let rows = try connection.query("SELECT value FROM fairway_meta WHERE key = 'keys_given'") { $0.text(0) }
        guard let text = rows.first ?? nil,
            let mark = try? JSONDecoder().decode(KeysGivenMark.self, from: Data(text.utf8)),
            Set(mark.queues).isSuperset(of: queues)
        else { return 0 }
        return mark.through
    }

    /// The `keys_given` entry of `fairway_meta`: the keyed queues of the last declaration and the last job
    /// id it covered. Compared in Swift: a set of 10,000 names against another in SQL took seconds.
    private struct KeysGivenMark: Decodable {
        var queues: [String]
        var through: Int64
    }

    /// Marks every job written so far to the keyed queues `queues` as having a key, with the declaration
    /// that made them keyed (and in its transaction): the next declaration or consumer start of the same
    /// queues walks only later jobs. A declaration that drops a queue's keying drops it from the mark, so a
    /// job written unkeyed meanwhile is walked again when the queue is keyed once more.
    static func recordKeysGiven(_ queues: [String], in connection: SQLiteConnection) throws {
        try connection.cached(
            """
            INSERT OR REPLACE INTO fairway_meta(key, value)
            VALUES ('keys_given', json_object('queues', json(?1), 'through', (SELECT coalesce(max(id), 0) FROM jobs)))
            """
        ).run([.text(jsonList(queues))])
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

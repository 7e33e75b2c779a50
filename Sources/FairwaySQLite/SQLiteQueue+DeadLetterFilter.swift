import FairwayRuntime
import Foundation

/// Dead letters selected by a ``DeadLetterFilter``: listed, grouped by cause, requeued or deleted in one
/// statement each, however many match.
extension SQLiteQueue: DeadLetterInspecting {
    /// The filter as SQL over `dead_jobs`, parameters ?1 to ?6.
    static let filterClause = """
        (?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR type = ?2) AND (?3 IS NULL OR instr(reason, ?3) > 0)
        AND (?4 IS NULL OR fw_shape(reason) = ?4)
        AND (?5 IS NULL OR instr(CAST(payload AS TEXT), ?5) > 0 OR CAST(id AS TEXT) = ?5)
        AND (?6 IS NULL OR id IN (SELECT value FROM json_each(?6)))
        """

    static func bindings(_ filter: DeadLetterFilter) -> [SQLiteValue] {
        func text(_ value: String?) -> SQLiteValue { value.map { .text($0) } ?? .null }
        // Ids that are not row numbers match nothing rather than everything.
        let ids = filter.ids.map { $0.map { Int64($0) ?? -1 } }
        return [
            text(filter.queue), text(filter.type), text(filter.reason), text(filter.shape), text(filter.text),
            idList(ids),
        ]
    }

    public func deadLetters(matching filter: DeadLetterFilter, limit: Int, offset: Int) throws -> [DeadLetterRecord] {
        try lock.withLock {
            try connection.query(
                """
                SELECT id, queue, type, substr(payload, 1, 65536), attempts, reason, enqueued_at, died_at, fairness_key
                FROM dead_jobs WHERE \(Self.filterClause) ORDER BY id DESC LIMIT ?7 OFFSET ?8
                """,
                Self.bindings(filter) + [.int(Int64(max(0, limit))), .int(Int64(max(0, offset)))]
            ) {
                DeadLetterRecord(
                    id: String($0.int64(0)), queue: $0.text(1) ?? "", type: $0.text(2) ?? "",
                    payload: String(decoding: $0.blob(3), as: UTF8.self), attempts: $0.int(4), reason: $0.text(5) ?? "",
                    enqueuedAt: Double($0.int64(6)) / 1000, diedAt: Double($0.int64(7)) / 1000, source: "sqlite",
                    fairnessKey: $0.text(8))
            }
        }
    }

    public func deadLetterGroups(matching filter: DeadLetterFilter) throws -> [DeadLetterGroup] {
        try lock.withLock {
            try connection.query(
                """
                SELECT queue, fw_shape(reason) AS shape, min(reason), count(*), max(died_at) FROM dead_jobs
                WHERE \(Self.filterClause) GROUP BY queue, shape ORDER BY count(*) DESC, queue LIMIT 1000
                """,
                Self.bindings(filter)
            ) {
                DeadLetterGroup(
                    queue: $0.text(0) ?? "", shape: $0.text(1) ?? "", example: $0.text(2) ?? "", count: $0.int(3),
                    latest: Double($0.int64(4)) / 1000)
            }
        }
    }

    public func requeueDeadLetters(matching filter: DeadLetterFilter) throws -> Int {
        let now = Milliseconds.now
        let moved: [String] = try lock.withLock {
            try connection.transaction {
                let moved = try connection.query(
                    """
                    INSERT INTO jobs(
                        queue, type, payload, priority, state, available_at, attempts, last_error, enqueued_at,
                        fairness_key)
                    SELECT queue, type, payload, priority, 0, ?7, 0, reason, enqueued_at,
                        \(Self.fairnessKey("dead_jobs.fairness_key", queue: "dead_jobs.queue"))
                    FROM dead_jobs
                    WHERE \(Self.filterClause) RETURNING queue
                    """,
                    Self.bindings(filter) + [.int(now)]
                ) { $0.text(0) ?? "" }
                _ = try connection.query(
                    "DELETE FROM dead_jobs WHERE \(Self.filterClause)", Self.bindings(filter)
                ) { _ in () }
                return moved
            }
        }
        if !moved.isEmpty { onEnqueue?(Set(moved)) }
        return moved.count
    }

    public func deleteDeadLetters(matching filter: DeadLetterFilter) throws -> Int {
        try lock.withLock {
            try connection.transaction {
                _ = try connection.query(
                    "DELETE FROM dead_jobs WHERE \(Self.filterClause)", Self.bindings(filter)
                ) { _ in () }
                return connection.changes
            }
        }
    }
}

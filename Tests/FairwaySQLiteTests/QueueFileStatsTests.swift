import FairwayRuntime
import Foundation
import Testing

@testable import FairwaySQLite

@Suite("Queue file counts")
struct QueueFileStatsTests {
    @Test("each job is counted in its state, due delayed jobs as ready, and the oldest wait is the first enqueued's")
    func countsByState() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let file = try SQLiteQueue(path: path)
        let a = try file.enqueue(contentsOf: Array(repeating: NewJob(queue: "a", type: "noop"), count: 4))
        let b = try file.enqueue(contentsOf: Array(repeating: NewJob(queue: "b", type: "noop"), count: 2))
        try file.enqueue(NewJob(queue: "a", type: "noop", delay: .seconds(3_600)))
        let now = Milliseconds.now
        // a: the first job waited a minute, the second is leased; b: the second is delayed and due 5 s ago.
        try sql(path, "UPDATE jobs SET available_at = \(now - 60_000) WHERE id = \(a[0])")
        try sql(
            path,
            "UPDATE jobs SET state = 2, lease_owner = 'other', lease_expires_at = \(now + 30_000) WHERE id = \(a[1])")
        try sql(path, "UPDATE jobs SET state = 1, available_at = \(now - 5_000) WHERE id = \(b[1])")
        try sql(
            path,
            """
            INSERT INTO dead_jobs(id, queue, type, payload, priority, attempts, reason, enqueued_at, died_at)
            VALUES (1000, 'c', 'noop', x'', 0, 3, 'boom', \(now), \(now))
            """)
        try sql(path, "INSERT INTO queue_stats(queue, completed, failed) VALUES ('a', 7, 2)")

        let stats = try file.stats()
        let first = try #require(stats["a"])
        #expect((first.ready, first.delayed, first.leased, first.dead) == (3, 1, 1, 0))
        #expect((first.completed, first.failed) == (7, 2))
        #expect(abs(first.oldestAgeSeconds - 60) < 5, "\(first.oldestAgeSeconds)")
        let second = try #require(stats["b"])
        #expect((second.ready, second.delayed, second.leased) == (2, 0, 0), "the due delayed job is ready")
        // b's ready job was enqueued just now; the due one has waited 5 s.
        #expect(abs(second.oldestAgeSeconds - 5) < 3, "\(second.oldestAgeSeconds)")
        #expect(stats["c"]?.dead == 1)
        #expect(stats["c"]?.ready == 0)
    }

    @Test("counting jobs reads only the index of the state it counts, never every row of the file")
    func countsFromIndexes() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        _ = try SQLiteQueue(path: path)
        let connection = try SQLiteConnection(path: path, mode: .readWrite)
        for query in [SQLiteQueue.readyCounts, SQLiteQueue.delayedCounts, SQLiteQueue.leasedCounts] {
            let bound: [SQLiteValue] = query.contains("?1") ? [.int(0)] : []
            let plan = try connection.query("EXPLAIN QUERY PLAN " + query, bound) { $0.text(3) ?? "" }
            #expect(plan.contains { $0.contains("USING") && $0.contains("INDEX jobs_") }, "\(query): \(plan)")
            #expect(!plan.contains("SCAN jobs"), "\(query) walks the table: \(plan)")
        }
    }
}

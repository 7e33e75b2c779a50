import FairwayRuntime
import FairwayTestSupport
import Foundation
import Testing

@testable import FairwaySQLite

/// Completed jobs are deleted a run of consecutive ids at a time, and only those the owner still holds.
@Suite("SQLite completed jobs")
struct CompletedJobsTests {
    /// A file with jobs 1 … `count` of queue q, all leased to `owner`.
    func leasedFile(_ folder: TemporaryFolder, count: Int, owner: String = "me") throws -> SQLiteConnection {
        let path = folder.path("q.db")
        let queue = try SQLiteQueue(path: path)
        try queue.enqueue(contentsOf: (0..<count).map { _ in NewJob(queue: "q", type: "noop") })
        let connection = try QueueFile.open(path: path, create: false)
        try connection.execute("UPDATE jobs SET state = 2, lease_owner = '\(owner)', lease_expires_at = 0")
        return connection
    }

    func remaining(_ connection: SQLiteConnection) throws -> [Int64] {
        try connection.query("SELECT id FROM jobs ORDER BY id") { $0.int64(0) }
    }

    @Test("runs, single jobs and ids in any order: each job the owner holds is deleted, no other")
    func deletesWhatTheOwnerHolds() throws {
        let folder = TemporaryFolder()
        let connection = try leasedFile(folder, count: 20)
        // Another process took over 7 (its lease had expired); 12 was released; 20 is not among the ids.
        try connection.execute("UPDATE jobs SET lease_owner = 'other' WHERE id = 7")
        try connection.execute("UPDATE jobs SET state = 0, lease_owner = NULL WHERE id = 12")
        let completed = try CompletedJobs(connection: connection, owner: "me")
        let ids: [Int64] = [15, 3, 4, 5, 6, 7, 8, 9, 1, 12, 13, 14, 17, 19, 18, 2]
        let lost = try connection.transaction { try completed.delete(ids) }
        #expect(lost.sorted() == [7, 12])
        #expect(try remaining(connection) == [7, 10, 11, 12, 16, 20])
    }

    @Test("an id completed twice in one batch is deleted once and then reported lost")
    func duplicateIDs() throws {
        let folder = TemporaryFolder()
        let connection = try leasedFile(folder, count: 4)
        let completed = try CompletedJobs(connection: connection, owner: "me")
        let lost = try connection.transaction { try completed.delete([2, 3, 3, 4]) }
        #expect(lost == [3])
        #expect(try remaining(connection) == [1])
    }

    @Test("a run is found by its ids, never by walking the owner's leases")
    func rangeStatementsUseTheIDRange() throws {
        let folder = TemporaryFolder()
        let connection = try leasedFile(folder, count: 1)
        for sql in [CompletedJobs.countRange, CompletedJobs.deleteRange] {
            let plan = try connection.query("EXPLAIN QUERY PLAN " + sql) { $0.text(3) ?? "" }
            #expect(plan.contains { $0.contains("INTEGER PRIMARY KEY (rowid>? AND rowid<?)") }, "\(sql): \(plan)")
            #expect(!plan.contains { $0.contains("jobs_leased") }, "\(sql): \(plan)")
        }
    }
}

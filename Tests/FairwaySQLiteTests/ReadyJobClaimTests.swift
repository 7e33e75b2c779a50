import FairwayRuntime
import FairwayTestSupport
import Foundation
import Testing

@testable import FairwaySQLite

/// A queue's claim reads its first ready jobs in the order they run, then leases exactly those.
@Suite("SQLite ready-job claim")
struct ReadyJobClaimTests {
    /// Claims `count` jobs of `queue`, returning the ids read (in order) and those leased until 77.
    func claim(_ connection: SQLiteConnection, _ queue: String, _ count: Int) throws -> (read: [Int64], leased: [Int64])
    {
        let claim = try ReadyJobClaim(connection: connection, owner: "me")
        var read: [Int64] = []
        let leased = try connection.transaction {
            try claim.claim(queue: queue, count: count, expires: 77) { read.append($0.int64(0)) }
        }
        let rows = try connection.query(
            "SELECT id FROM jobs WHERE state = 2 AND lease_owner = 'me' AND lease_expires_at = 77 ORDER BY id"
        ) { $0.int64(0) }
        #expect(leased == read.count)
        return (read, rows)
    }

    func file(_ folder: TemporaryFolder, _ jobs: [NewJob]) throws -> SQLiteConnection {
        let path = folder.path("q.db")
        _ = try SQLiteQueue(path: path).enqueue(contentsOf: jobs)
        return try QueueFile.open(path: path, create: false)
    }

    @Test("jobs side by side in the file: the first by priority, then by id, leased by their id range")
    func consecutiveJobs() throws {
        let folder = TemporaryFolder()
        var jobs = (0..<20).map { _ in NewJob(queue: "q", type: "noop") }
        jobs[6].queue = "r"
        jobs[7].queue = "r"
        jobs[9].priority = 9
        let connection = try file(folder, jobs)
        let first = try claim(connection, "q", 3)
        #expect(first.read == [10, 1, 2])
        #expect(first.leased == [1, 2, 10])
        let second = try claim(connection, "q", 5)
        #expect(second.read == [3, 4, 5, 6, 9])
        #expect(second.leased == [1, 2, 3, 4, 5, 6, 9, 10])
        #expect(try claim(connection, "r", 9).read == [7, 8])
        // Ten ids in a row: one statement leases them.
        let third = try claim(connection, "q", 20)
        #expect(third.read == Array(11...20))
        #expect(third.leased == Array(1...20))
        #expect(try claim(connection, "q", 9).read == [])
    }

    @Test("jobs of many queues interleaved in the file: each claim leases exactly the jobs it read")
    func interleavedJobs() throws {
        let folder = TemporaryFolder()
        let connection = try file(folder, (0..<40).map { NewJob(queue: $0 % 4 == 0 ? "q" : "r", type: "noop") })
        let first = try claim(connection, "q", 6)
        #expect(first.read == [1, 5, 9, 13, 17, 21])
        #expect(first.leased == first.read)
        #expect(try claim(connection, "q", 6).read == [25, 29, 33, 37])
        #expect(try sqlInt(folder.path("q.db"), "SELECT count(*) FROM jobs WHERE state = 0 AND queue = 'r'") == 30)
    }

    @Test("a lease by id range is found by its ids, never by walking a queue's ready jobs")
    func leaseUsesTheIDRange() throws {
        let folder = TemporaryFolder()
        let connection = try file(folder, [NewJob(queue: "q", type: "noop")])
        let plan = try connection.query("EXPLAIN QUERY PLAN " + ReadyJobClaim.leaseIDs) { $0.text(3) ?? "" }
        #expect(plan.contains { $0.contains("INTEGER PRIMARY KEY (rowid>? AND rowid<?)") }, "\(plan)")
        #expect(!plan.contains { $0.contains("jobs_ready") }, "\(plan)")
    }
}

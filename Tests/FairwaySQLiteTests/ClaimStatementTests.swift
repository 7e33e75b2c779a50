import FairwayTestSupport
import Foundation
import Testing

@testable import FairwaySQLite

/// The store thread's statements that change many rows at once must never need a statement journal. SQLite
/// keeps one for a statement that changes several rows and may stop on a constraint, with a copy of every
/// page the statement changes, in a temporary file past 64 KiB: claims over a backlog whose queues lie
/// interleaved in the file wrote five times the bytes of the whole drain there (docs/benchmarks.md).
@Suite("SQLite claim statements")
struct ClaimStatementTests {
    @Test("claims and promotions cannot stop midway on a constraint, so SQLite journals none of them")
    func noStatementJournal() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        _ = try SQLiteQueue(path: path)
        let connection = try QueueFile.open(path: path, create: false)
        let walks = [false, true].flatMap { pattern in
            [false, true].map { SQLiteSource.claimEachKey(patternQueues: pattern, after: $0) }
        }
        let statements =
            [
                ReadyJobClaim.leaseIDs, ReadyJobClaim.leaseFirstReady, SQLiteSource.claimKey, SQLiteSource.promoteDue,
                CompletedJobs.deleteRange, CompletedJobs.deleteOne,
            ] + walks
        // Instructions that end the statement with an error and OE_Abort (2): each makes SQLite journal it.
        func aborts(_ sql: String) throws -> [String] {
            try connection.query("EXPLAIN " + sql) { row in (row.text(1) ?? "", row.int(2), row.int(3)) }
                .filter { ($0.0 == "Halt" || $0.0 == "HaltIfNull") && $0.1 != 0 && $0.2 == 2 }
                .map { "\($0.0) \($0.1)" }
        }
        for sql in statements {
            #expect(try aborts(sql).isEmpty, "this statement may stop midway, so SQLite journals it: \(sql)")
        }
        // The check sees the journal of a plain UPDATE, which stops on a NULL `state`.
        let plain = ReadyJobClaim.leaseFirstReady.replacingOccurrences(of: "UPDATE OR IGNORE", with: "UPDATE")
        #expect(try aborts(plain) == ["HaltIfNull 1299"])
    }
}

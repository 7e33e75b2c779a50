import FairwayJobs
import FairwayRuntime
import FairwayTestSupport
import Foundation
import Testing

@testable import FairwaySQLite

@Suite("SQLite source at rest")
struct SQLiteSourceIdleTests {
    struct Flaky: Error {}

    @Test("after a retried job has run, the store thread waits instead of promoting delayed jobs over and over")
    func waitsAfterRetries() throws {
        let folder = TemporaryFolder()
        let runs = Shared(0)
        let flaky = JobName<[String: Int]>("flaky")
        let harness = try SQLiteHarness(
            path: folder.path("q.db"), queues: [QueueDefinition(name: "q", retry: quickRetry(3))]
        ) { registry in
            registry.register(flaky) { _, _ in
                if runs.update({ runs -> Int in
                    runs += 1
                    return runs
                }) == 1 {
                    throw Flaky()
                }
            }
        }
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(5)) }
        try harness.file.enqueue(NewJob(queue: "q", type: "flaky", payload: Array("{}".utf8)))
        #expect(try eventually { try harness.stats("q").completed == 1 })
        #expect(runs.read() == 2, "failed once, retried, succeeded")
        Thread.sleep(forTimeInterval: 0.2)
        let turns = { harness.source.monitor.withLock { harness.source.storeTurns } }
        let before = turns()
        Thread.sleep(forTimeInterval: 1)
        // At rest the loop turns on its 1 s tick; spinning, it turned tens of thousands of times a second.
        #expect(turns() - before < 50, "\(turns() - before) turns of an idle store thread in 1 s")
    }
}

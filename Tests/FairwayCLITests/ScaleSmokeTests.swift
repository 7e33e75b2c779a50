import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// Guards, not benchmarks: a start-up cost that grows with the square of the queue count took 97 s at
/// 10,000 queues once (Benchmarks/scripts/start-scale.sh has the figures).
@Suite("Scale smoke tests", .serialized, .timeLimit(.minutes(10)))
struct ScaleSmokeTests {
    @Test("10,000 SQLite queues: start, run a job on the last queue, answer /metrics compactly, stop", .loadsMachine)
    func tenThousandSQLiteQueues() throws {
        let folder = TestFolder()
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "q.{0..9999}" }]
            """
        )
        let marker = folder.path("ran.log")
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(
            NewJob(queue: "q.9999", type: "append", payload: Array(#"{"path":"\#(marker)","line":"ran"}"#.utf8)))

        let began = Date()
        let run = try RunningFairway(config: config, folder: folder.url)
        defer { run.stop() }
        #expect(eventually(timeout: 60) { FileManager.default.fileExists(atPath: marker) }, "\(run.log)")
        let firstJob = Date().timeIntervalSince(began)
        #expect(run.waitUntilRunning(timeout: 60), "\(run.log)")
        let port = try #require(run.httpPort)
        let scrape = HTTP.call("GET", port: port, "/metrics")
        #expect(scrape.status == 200)
        #expect(scrape.body.utf8.count < 2_000_000, "\(scrape.body.utf8.count) bytes")
        #expect(scrape.body.contains("fairway_queue_ready_jobs{queue=\"q.0\"} 0"))
        #expect(scrape.body.contains("fairway_jobs_completed_total{queue=\"q.9999\",outcome=\"success\"} 1"))
        let stop = run.stop()
        let total = Date().timeIntervalSince(began)
        print("10,000 SQLite queues (debug build): first job \(firstJob) s, started and stopped in \(total) s")
        #expect(stop.status == 0 && !stop.bySignal)
        #expect(total < 30, "took \(total) s")
    }

    @Test(
        "10,000 keyed SQLite queues over a backlog of 100,000 jobs: the first job within seconds, not minutes",
        .loadsMachine)
    func tenThousandKeyedQueuesWithBacklog() throws {
        let folder = TestFolder()
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "q.{0..9999}", keys: true }]
            """
        )
        let marker = folder.path("ran.log")
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(
            NewJob(queue: "q.0", type: "append", payload: Array(#"{"path":"\#(marker)","line":"ran"}"#.utf8)))
        // Enqueued before any consumer declared the queues keyed: some with a key, some without.
        try file.enqueue(
            contentsOf: (0..<100_000).map {
                NewJob(queue: "q.\($0 % 10_000)", type: "noop", fairnessKey: $0 % 2 == 0 ? "k" : nil)
            })

        let began = Date()
        let run = try RunningFairway(config: config, folder: folder.url)
        defer { run.stop() }
        #expect(eventually(timeout: 120) { FileManager.default.fileExists(atPath: marker) }, "\(run.log)")
        let firstJob = Date().timeIntervalSince(began)
        print("10,000 keyed SQLite queues, 100,000 jobs (debug build): first job \(firstJob) s")
        // Declaring the queues keyed once walked the whole backlog once per queue: 53 s at 10,000 queues and
        // 100,000 jobs in a release build.
        #expect(firstJob < 10, "first job after \(firstJob) s")
        let stop = run.stop()
        #expect(stop.status == 0 && !stop.bySignal)
    }
}

import FairwayJobs
import FairwayProcessWorkers
import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Logging
import Testing

/// The watchdog settles a timed-out job in two steps, the source's settlement between them. The thread that
/// ran the job can come back in between, as soon as its worker process answers the SIGTERM: it must find the
/// pool counted right, and whatever job it takes next must not be mistaken for the one the watchdog settles.
@Suite("A timed-out job settled while its thread comes back", .timeLimit(.minutes(2)))
struct TimeoutSettlementTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test("the thread back early and the one beside it both stay; nothing is counted busy or in flight after")
    func threadBackWhileTheWatchdogSettles() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fairway-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("q.db").path
        let file = try SQLiteQueue(path: path)
        var logger = Logger(label: "fairway.test")
        logger.logLevel = .critical
        let worker = Self.repository.appendingPathComponent("Workers/python/example_worker.py").path
        let slow = QueueDefinition(
            name: "slow", timeout: .milliseconds(200), retry: RetryPolicy(maxAttempts: 1),
            isolation: .process(ProcessWorkerSettings(command: ["python3", worker], killGrace: .milliseconds(500))))
        let fast = QueueDefinition(name: "fast", retry: RetryPolicy(maxAttempts: 1))
        let source = try SQLiteSource(path: path, logger: logger)
        source.setMaxAttempts(["slow": 1, "fast": 1])
        var registry = JobRegistry()
        BuiltinJobs.register(in: &registry)
        let engine = try Engine(
            configuration: EngineConfiguration(workers: 2, queues: [slow, fast]), registry: registry,
            sources: [source], observer: SlowTimeoutObserver(), processIsolation: WorkerProcesses(), logger: logger)
        try engine.start()
        defer { engine.shutdown(drainTimeout: .seconds(2)) }
        // Short jobs on threads keep the second thread passing through the pool's count of its threads, job
        // after job, while the first comes back from a timed-out one: a feeder keeps a few thousand waiting,
        // whatever the build's speed (under ThreadSanitizer, a tenth).
        let feeding = Shared(true)
        let fed = Shared(0)
        let fedAll = Shared(false)
        Thread {
            defer { fedAll.update { $0 = true } }
            guard let feed = try? SQLiteQueue(path: path) else { return }
            while feeding.read() {
                if let ready = try? feed.stats()["fast"]?.ready ?? 0, ready < 2_000 {
                    let jobs = (0..<5_000).map { _ in NewJob(queue: "fast", type: BuiltinJobs.noop) }
                    if (try? feed.enqueue(contentsOf: jobs)) != nil {
                        fed.update { $0 += jobs.count }
                    }
                }
                Thread.sleep(forTimeInterval: 0.01)
            }
        }.start()
        let rounds = 8
        for round in 1...rounds {
            try file.enqueue(NewJob(queue: "slow", type: "sleep", payload: Array(#"{"ms":20000}"#.utf8)))
            let settled = eventually(timeout: 10) { (try? file.stats()["slow"]?.dead) == round }
            if !settled { feeding.update { $0 = false } }
            try #require(settled, "round \(round): \(engine.snapshot())")
        }
        feeding.update { $0 = false }
        #expect(eventually { fedAll.read() })
        #expect(fed.read() > 0)
        // Every timed-out job is counted out of the pool and its queue; no thread is left counted stuck.
        #expect(eventually(timeout: 120) { (try? file.stats()["fast"]?.completed) == fed.read() })
        #expect(eventually { engine.snapshot().busyWorkers == 0 }, "\(engine.snapshot())")
        let snapshot = engine.snapshot()
        #expect(snapshot.stuckWorkers == 0)
        let slowQueue = snapshot.queues.first { $0.name == "slow" }
        #expect(slowQueue?.inFlight == 0 && slowQueue?.timedOut == rounds, "\(String(describing: slowQueue))")
        // Both threads still take jobs: two jobs of a second each end together.
        let started = Date()
        for _ in 0..<2 {
            try file.enqueue(NewJob(queue: "fast", type: "sleep", payload: Array(#"{"ms":1000}"#.utf8)))
        }
        #expect(eventually(timeout: 10) { (try? file.stats()["fast"]?.completed) == fed.read() + 2 })
        #expect(Date().timeIntervalSince(started) < 1.8, "the two jobs ran one after the other")
    }
}

/// Takes its time over each timed-out job's report, as a slow metrics backend might: the watchdog calls it
/// between handing the job's settlement to its source and counting the job out of the pool.
final class SlowTimeoutObserver: EngineObserver {
    func jobEnded(
        queue: String, outcome: JobOutcome?, settlement: Settlement, runSeconds: Double, waitSeconds: Double?
    ) {
        if case .timedOut = outcome {
            Thread.sleep(forTimeInterval: 0.3)
        }
    }
}

import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Synchronization
import Testing

/// Invariants 4 and 5 on the real pool: push dispatch, blocked handlers block only their own thread,
/// concurrency caps hold under real threads.
@Suite("Worker pool", .timeLimit(.minutes(2)))
struct WorkerPoolTests {
    static let block = JobName<NoParameters>("block")
    static let record = JobName<NoParameters>("record")

    @Test("with every worker blocked, a waiting job starts as soon as one worker frees")
    func blockedWorkersFreeUp() throws {
        let gates = [DispatchSemaphore(value: 0), DispatchSemaphore(value: 0)]
        let entered = Shared(0)
        let recorded = Shared<[UInt64]>([])
        let harness = try EngineHarness(
            workers: 2,
            queues: [QueueDefinition(name: "slow"), QueueDefinition(name: "fast")]
        ) { registry in
            registry.register(Self.block) { _, _ in
                let index = entered.update { value -> Int in
                    value += 1
                    return value - 1
                }
                gates[index].wait()
            }
            registry.register(Self.record) { _, _ in
                recorded.update { $0.append(MonotonicClock.now) }
            }
        }
        try harness.start()
        defer { harness.stop() }
        harness.source.enqueue(queue: "slow", jobType: "block")
        harness.source.enqueue(queue: "slow", jobType: "block")
        #expect(eventually { entered.read() == 2 })
        harness.source.enqueue(queue: "fast", jobType: "record")
        Thread.sleep(forTimeInterval: 0.05)
        #expect(recorded.read().isEmpty, "no worker was free, yet the job ran")
        let released = MonotonicClock.now
        gates[0].signal()
        #expect(eventually { recorded.read().count == 1 })
        // The other worker is still blocked: the job ran on the one that was freed, promptly.
        let delay = Double(recorded.read()[0] - released) / 1e9
        #expect(delay < 0.5, "started \(delay) s after a worker freed")
        gates[1].signal()
    }

    @Test("a job arriving at an idle pool starts within milliseconds (no polling sleep)")
    func idleDispatchIsPrompt() throws {
        let started = Shared<[UInt64]>([])
        let harness = try EngineHarness(workers: 2, queues: [QueueDefinition(name: "q")]) { registry in
            registry.register(Self.record) { _, _ in started.update { $0.append(MonotonicClock.now) } }
        }
        try harness.start()
        defer { harness.stop() }
        var delays: [Double] = []
        for round in 1...30 {
            Thread.sleep(forTimeInterval: 0.01)
            let enqueued = MonotonicClock.now
            harness.source.enqueue(queue: "q", jobType: "record")
            #expect(eventually { started.read().count == round })
            delays.append(Double(started.read()[round - 1] - enqueued) / 1e9)
        }
        delays.sort()
        let median = delays[delays.count / 2]
        // A worker that polled every 100 ms would show a median near 50 ms.
        #expect(median < 0.005, "median enqueue-to-start \(median * 1000) ms")
    }

    @Test("max concurrency is never exceeded under real threads, and is reached")
    func maxConcurrencyUnderThreads() throws {
        let running = Atomic<Int>(0)
        let peak = Atomic<Int>(0)
        let probe = JobName<NoParameters>("probe")
        let harness = try EngineHarness(
            workers: 6,
            queues: [
                QueueDefinition(name: "capped", settings: QueueSettings(weight: 10, maxConcurrency: 2)),
                QueueDefinition(name: "free"),
            ]
        ) { registry in
            registry.register(probe) { _, _ in
                let now = running.add(1, ordering: .sequentiallyConsistent).newValue
                _ = peak.max(now, ordering: .sequentiallyConsistent)
                BuiltinJobs.blockThread(nanoseconds: 2_000_000)
                running.subtract(1, ordering: .sequentiallyConsistent)
            }
        }
        try harness.start()
        defer { harness.stop() }
        for _ in 0..<200 {
            harness.source.enqueue(queue: "capped", jobType: "probe")
            harness.source.enqueue(queue: "free", jobType: "sleep", payload: Array(#"{"ms": 1}"#.utf8))
        }
        #expect(eventually { harness.snapshot("capped").succeeded == 200 && harness.snapshot("free").succeeded == 200 })
        #expect(peak.load(ordering: .sequentiallyConsistent) == 2)
    }

    @Test("groups hold on the real pool: 40 queues in a group of weight 1 get together what one queue of 1 gets")
    func groupSharesOnThePool() throws {
        let tenants = (1...40).map { QueueDefinition(name: "tenant-\($0)", group: "free") }
        let harness = try EngineHarness(
            workers: 2,
            queues: [QueueDefinition(name: "system", settings: QueueSettings(weight: 2))] + tenants
                + [QueueDefinition(name: "vip", group: "paid")],
            groups: [QueueGroup(name: "free", weight: 1), QueueGroup(name: "paid", weight: 1)]
        )
        let backlog = 20_000
        for name in ["system", "vip"] + tenants.map(\.name) {
            harness.source.enqueue(queue: name, jobType: "noop", payloads: Array(repeating: [], count: backlog))
        }
        try harness.start()
        defer { harness.stop() }
        let (start, end) = try Self.succeededBetweenSnapshots(harness, jobs: 8_000)
        #expect(end.allSatisfy { $0.succeeded < backlog - 64 }, "every queue still backlogged")
        var done: [String: Double] = [:]
        for (before, after) in zip(start, end) {
            let key = after.name.hasPrefix("tenant-") ? "free" : after.name
            done[key, default: 0] += Double(after.succeeded - before.succeeded)
        }
        let total = done.values.reduce(0, +)
        // system 2, the free group 1, the paid group (vip alone) 1: 50 %, 25 %, 25 %.
        #expect(abs(done["system"]! / total - 0.5) < 0.02, "\(done)")
        #expect(abs(done["free"]! / total - 0.25) < 0.02, "\(done)")
        #expect(abs(done["vip"]! / total - 0.25) < 0.02, "\(done)")
    }

    @Test("an unknown group is refused by name")
    func unknownGroup() {
        #expect(throws: EngineError.unknownGroup(queue: "a", group: "nope")) {
            _ = try EngineHarness(queues: [QueueDefinition(name: "a", group: "nope")])
        }
    }

    /// Two consistent snapshots for measuring shares: the first once every queue has run a job (the source
    /// hands the queues their first credit one after another, and under load the first queue runs alone for
    /// a while), the second `jobs` jobs later.
    static func succeededBetweenSnapshots(_ harness: EngineHarness, jobs: Int) throws -> (
        [QueueSnapshot], [QueueSnapshot]
    ) {
        var baseline: EngineSnapshot?
        #expect(
            eventually {
                let snapshot = harness.engine.snapshot()
                guard snapshot.queues.allSatisfy({ $0.succeeded > 0 }) else { return false }
                baseline = snapshot
                return true
            }
        )
        let start = try #require(baseline).queues
        var measured: EngineSnapshot?
        #expect(
            eventually {
                let snapshot = harness.engine.snapshot()
                let total = zip(start, snapshot.queues).reduce(0) { $0 + $1.1.succeeded - $1.0.succeeded }
                guard total >= jobs else { return false }
                measured = snapshot
                return true
            }
        )
        return (start, try #require(measured).queues)
    }

    @Test("weights hold on the real pool: 1:2:4 over noop jobs")
    func weightedSharesOnThePool() throws {
        let harness = try EngineHarness(
            workers: 2,
            queues: [1.0, 2, 4].map { QueueDefinition(name: "w\(Int($0))", settings: QueueSettings(weight: $0)) }
        )
        let backlog = 50_000
        for name in ["w1", "w2", "w4"] {
            harness.source.enqueue(queue: name, jobType: "noop", payloads: Array(repeating: [], count: backlog))
        }
        try harness.start()
        defer { harness.stop() }
        let (first, last) = try Self.succeededBetweenSnapshots(harness, jobs: 7_000)
        let start = first.map(\.succeeded)
        let end = last.map(\.succeeded)
        // Every queue was still backlogged when measured: otherwise fairness says nothing about its share.
        #expect(end.allSatisfy { $0 < backlog - 64 })
        let done = zip(start, end).map { Double($1 - $0) }
        let total = done.reduce(0, +)
        let shares = done.map { $0 / total }
        #expect(abs(shares[0] - 1.0 / 7) < 0.02, "\(shares)")
        #expect(abs(shares[1] - 2.0 / 7) < 0.02, "\(shares)")
        #expect(abs(shares[2] - 4.0 / 7) < 0.02, "\(shares)")
    }

    @Test("a paused queue is skipped while others flow, and runs again when resumed")
    func pauseAndResume() throws {
        let harness = try EngineHarness(
            workers: 2,
            queues: [
                QueueDefinition(name: "held", settings: QueueSettings(paused: true)),
                QueueDefinition(name: "open"),
            ]
        )
        try harness.start()
        defer { harness.stop() }
        for _ in 0..<50 {
            harness.source.enqueue(queue: "held", jobType: "noop")
            harness.source.enqueue(queue: "open", jobType: "noop")
        }
        #expect(eventually { harness.snapshot("open").succeeded == 50 })
        Thread.sleep(forTimeInterval: 0.05)
        #expect(harness.snapshot("held").completed == 0)
        try harness.engine.updateQueue(named: "held", settings: QueueSettings(paused: false))
        #expect(eventually { harness.snapshot("held").succeeded == 50 })
    }

    @Test("async handlers run on the pool and may await")
    func asyncHandlers() throws {
        let waited = JobName<NoParameters>("waited")
        let harness = try EngineHarness(workers: 2, queues: [QueueDefinition(name: "q")]) { registry in
            registry.register(
                waited,
                executeAsync: { _, _ in
                    try await Task.sleep(for: .milliseconds(2))
                })
        }
        try harness.start()
        defer { harness.stop() }
        for _ in 0..<20 { harness.source.enqueue(queue: "q", jobType: "waited") }
        #expect(eventually { harness.snapshot("q").succeeded == 20 })
        #expect(harness.source.ackedCount == 20)
    }
}

import FairwayScheduling
import Testing

@testable import FairwayHTTP
@testable import FairwayRuntime

/// `/scale`'s arithmetic: queue time (the oldest waiting job's age) against the target latency.
@Suite("scale advisor")
struct ScaleAdvisorTests {
    static func snapshot(busy: Int, workers: Int = 8, heldSince: UInt64? = nil) -> EngineSnapshot {
        var queue = QueueSnapshot(name: "a", settings: QueueSettings(), held: heldSince == nil ? 0 : 1, inFlight: busy)
        queue.oldestHeldEnqueuedAt = heldSince
        return EngineSnapshot(queues: [queue], workers: workers, busyWorkers: busy, stuckWorkers: 0, draining: false)
    }

    static func advisor(target seconds: Int) -> ScaleAdvisor {
        var settings = ScaleAdvisor.Settings()
        settings.targetLatency = .seconds(seconds)
        return ScaleAdvisor(settings: settings)
    }

    @Test("a job waiting three times the target latency asks for three times the busy workers")
    func overdueQueueTime() {
        let signal = Self.advisor(target: 10).observe(
            Self.snapshot(busy: 8), depths: ["a": QueueDepth(ready: 5, oldestAgeSeconds: 30)], now: 0, wallNow: 0)
        #expect(signal.oldestAgeSeconds == 30)
        #expect(signal.queueTimeRatio == 3)
        #expect(signal.desiredWorkers >= 24, "\(signal)")
        #expect(signal.desiredReplicas >= 3)
    }

    @Test("a job held here counts by its enqueue time; within the target, age adds nothing")
    func heldAgeWithinTarget() {
        let now: UInt64 = 100_000_000_000
        let signal = Self.advisor(target: 10).observe(
            Self.snapshot(busy: 2, heldSince: now - 4_000_000_000), depths: ["a": QueueDepth(ready: 0)], now: 0,
            wallNow: now)
        #expect(signal.oldestAgeSeconds == 4)
        #expect(signal.queueTimeRatio == 0.4)
        #expect(signal.desiredWorkers >= 2 && signal.desiredWorkers < 8, "\(signal)")
    }

    @Test("maxWorkers: a deep backlog asks for no more workers than the shared resource serves")
    func maxWorkers() {
        var settings = ScaleAdvisor.Settings()
        settings.targetLatency = .seconds(10)
        settings.maxWorkers = 85
        let depths = ["a": QueueDepth(ready: 50_000, oldestAgeSeconds: 60)]
        let capped = ScaleAdvisor(settings: settings).observe(
            Self.snapshot(busy: 16, workers: 16), depths: depths, now: 0, wallNow: 0)
        let uncapped = Self.advisor(target: 10).observe(
            Self.snapshot(busy: 16, workers: 16), depths: depths, now: 0, wallNow: 0)
        #expect(uncapped.desiredWorkers > 85, "\(uncapped)")
        #expect(capped.desiredWorkers == 85, "\(capped)")
        #expect(capped.desiredReplicas == 6, "⌈85 / 16⌉: \(capped)")
        settings.maxWorkers = 4
        let busier = ScaleAdvisor(settings: settings).observe(
            Self.snapshot(busy: 8), depths: depths, now: 0, wallNow: 0)
        #expect(busier.desiredWorkers == 8, "never fewer than are busy: \(busier)")
    }

    @Test(
        "a queue held off because its worker cannot start, or paused, asks for no capacity: its backlog and age are left out",
        arguments: ["held off", "paused"])
    func heldOffQueueLeftOut(why: String) {
        var broken = QueueSnapshot(name: "broken", settings: QueueSettings(), held: 32, inFlight: 0)
        if why == "held off" {
            broken.heldOffSeconds = 8
            broken.failedWorkerStarts = 4
        } else {
            broken.settings.paused = true
        }
        let fine = QueueSnapshot(name: "fine", settings: QueueSettings(), held: 0, inFlight: 2)
        let snapshot = EngineSnapshot(
            queues: [broken, fine], workers: 8, busyWorkers: 2, stuckWorkers: 0, draining: false)
        let depths = [
            "broken": QueueDepth(ready: 50_000, oldestAgeSeconds: 600),
            "fine": QueueDepth(ready: 3, oldestAgeSeconds: 1),
        ]
        let signal = Self.advisor(target: 10).observe(snapshot, depths: depths, now: 0, wallNow: 0)
        #expect(signal.backlog == 3, "\(signal)")
        #expect(signal.oldestAgeSeconds == 1 && signal.slowestQueue == "fine", "\(signal)")
        #expect(signal.desiredReplicas == 1, "\(signal)")
        // Its hold ended, or it was resumed: it asks again.
        broken.heldOffSeconds = nil
        broken.settings.paused = false
        let again = Self.advisor(target: 10).observe(
            EngineSnapshot(queues: [broken, fine], workers: 8, busyWorkers: 2, stuckWorkers: 0, draining: false),
            depths: depths, now: 0, wallNow: 0)
        #expect(again.backlog == 50_035 && again.slowestQueue == "broken", "\(again)")
    }

    @Test("nothing waiting: no age, no drain time, and never fewer workers than are busy")
    func idle() {
        let signal = Self.advisor(target: 10).observe(
            Self.snapshot(busy: 3), depths: ["a": QueueDepth(ready: 0)], now: 0, wallNow: 0)
        #expect(signal.oldestAgeSeconds == 0 && signal.drainSeconds == 0)
        #expect(signal.desiredWorkers == 3)
    }

    @Test("each queue is held to its own latencyTarget: the one furthest over it is named and drives the ratio")
    func perQueueTargets() {
        var settings = ScaleAdvisor.Settings()
        settings.targetLatency = .seconds(30)
        settings.latencyTargets = ["checkout": .seconds(5)]
        let queues = ["checkout", "reports"].map {
            QueueSnapshot(name: $0, settings: QueueSettings(), held: 0, inFlight: 1)
        }
        let snapshot = EngineSnapshot(queues: queues, workers: 8, busyWorkers: 2, stuckWorkers: 0, draining: false)
        let signal = ScaleAdvisor(settings: settings).observe(
            snapshot,
            depths: [
                "checkout": QueueDepth(ready: 3, oldestAgeSeconds: 10),
                "reports": QueueDepth(ready: 900, oldestAgeSeconds: 20),
            ],
            now: 0, wallNow: 0)
        #expect(signal.oldestAgeSeconds == 20, "the oldest job is a report")
        #expect(signal.queueTimeRatio == 2, "but checkout is twice over its 5 s target; reports are under 30 s")
        #expect(signal.slowestQueue == "checkout")
        #expect(signal.desiredWorkers >= 4)
    }
}

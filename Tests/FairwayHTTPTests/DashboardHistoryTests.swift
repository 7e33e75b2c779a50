import FairwayScheduling
import Foundation
import Testing

@testable import FairwayHTTP
@testable import FairwayRuntime

/// The dashboard's rates and shares come from two snapshots; a paused queue is entitled to nothing.
@Suite("Dashboard history")
struct DashboardHistoryTests {
    static func queue(
        _ name: String, weight: Double, paused: Bool = false, held: Int = 0, succeeded: Int = 0, failed: Int = 0,
        busy: Double = 0
    ) -> QueueSnapshot {
        var queue = QueueSnapshot(
            name: name, settings: QueueSettings(weight: weight, paused: paused), held: held, inFlight: 0,
            oldestHeldEnqueuedAt: nil)
        queue.succeeded = succeeded
        queue.failed = failed
        queue.busySeconds = busy
        return queue
    }

    static func snapshot(_ queues: [QueueSnapshot]) -> EngineSnapshot {
        EngineSnapshot(queues: queues, workers: 4, busyWorkers: 2, stuckWorkers: 0, draining: false)
    }

    @Test("share of worker time against the weights of the queues with work; paused queues get no ideal")
    func shares() throws {
        let history = DashboardHistory()
        history.observe(
            Self.snapshot([
                Self.queue("a", weight: 3, held: 1), Self.queue("b", weight: 1, held: 1),
                Self.queue("c", weight: 4, paused: true, held: 5),
            ]), depths: [:])
        #expect(history.rates.isEmpty, "one sample is no rate")
        Thread.sleep(forTimeInterval: 0.2)
        history.observe(
            Self.snapshot([
                Self.queue("a", weight: 3, held: 1, succeeded: 28, failed: 2, busy: 3),
                Self.queue("b", weight: 1, held: 1, succeeded: 10, busy: 1),
                Self.queue("c", weight: 4, paused: true, held: 5),
            ]), depths: ["c": QueueDepth(ready: 100, oldestAgeSeconds: 42)])
        let rates = history.rates
        let a = try #require(rates["a"])
        let b = try #require(rates["b"])
        let c = try #require(rates["c"])
        #expect(abs(a.share - 0.75) < 1e-9 && abs(a.ideal - 0.75) < 1e-9)
        #expect(abs(b.share - 0.25) < 1e-9 && abs(b.ideal - 0.25) < 1e-9)
        #expect(c.share == 0 && c.ideal == 0, "paused: not entitled, however deep")
        #expect(a.completedPerSecond > 30 && a.completedPerSecond < 30 / 0.2, "30 jobs in a bit over 0.2 s")
        #expect(a.failedPerSecond > 0 && a.failedPerSecond < a.completedPerSecond / 10)
        let point = try #require(history.points.last)
        #expect(point.shareByWeight == ["3": 0.75, "1": 0.25, "4": 0])
        #expect(point.idealByWeight == ["3": 0.75, "1": 0.25, "4": 0])
        #expect(point.oldestAgeSeconds == 42 && point.busyWorkers == 2)
    }

    @Test("a change in the queue list starts the window again instead of mixing queues")
    func queuesChange() {
        let history = DashboardHistory()
        history.observe(Self.snapshot([Self.queue("a", weight: 1)]), depths: [:])
        Thread.sleep(forTimeInterval: 0.05)
        history.observe(Self.snapshot([Self.queue("b", weight: 1, succeeded: 1_000)]), depths: [:])
        #expect(history.rates.isEmpty)
        #expect(history.points.isEmpty)
    }

    @Test("weights print as whole numbers when they are, and at most eight per point")
    func labels() {
        #expect(DashboardHistory.label(8) == "8" && DashboardHistory.label(0.5) == "0.5")
        let many = Dictionary(uniqueKeysWithValues: (1...20).map { (String($0), Double($0)) })
        #expect(DashboardHistory.top(many).keys.sorted { Int($0)! > Int($1)! } == (13...20).reversed().map(String.init))
    }
}

import FairwayConfig
import FairwayRuntime
import FairwayScheduling
import Foundation
import Testing

@Suite("Reload plan")
struct ReloadPlanTests {
    private func load(_ yaml: String) throws -> FairwayConfiguration {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("reload-\(UUID().uuidString).yaml")
            .path
        try ("sources: [{ kind: sqlite, path: q.db }]\n" + yaml).write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try ConfigurationLoader.load(path: path)
    }

    @Test("weights, caps, rates and pauses change live; everything else is listed as needing a restart")
    func liveAndRestart() throws {
        let old = try load("workers: 2\nqueues: [{ name: a }, { name: b, timeout: 10s }, { name: c }]")
        let new = try load(
            "workers: 4\nqueues: [{ name: a, weight: 3, rate: 5 }, { name: b, timeout: 20s }, { name: d, paused: true }]"
        )
        let plan = ReloadPlan(from: old, to: new)
        #expect(plan.queueChanges.map(\.queue) == ["a"])
        #expect(plan.queueChanges.first?.after.weight == 3)
        #expect(plan.queueChanges.first?.after.rateLimit?.perSecond == 5)
        #expect(plan.needsRestart.contains("queues added: d"))
        #expect(plan.needsRestart.contains("queues removed: c"))
        #expect(
            plan.needsRestart.contains(
                "queues[b]: timeout, retry, prefetch, isolation, globalConcurrency, group or keys"))
        #expect(plan.needsRestart.contains("workers: 2 → 4"))
    }

    @Test("an unchanged file changes nothing")
    func unchanged() throws {
        let config = try load("queues: [{ name: a, weight: 2 }]")
        let plan = ReloadPlan(from: config, to: config)
        #expect(plan.queueChanges.isEmpty && plan.needsRestart.isEmpty)
    }

    @Test("only the fields changed in the file are applied: a pause made through the admin API stays")
    func onlyChangedFields() {
        let change = ReloadPlan.QueueChange(
            queue: "a", before: QueueSettings(weight: 1), after: QueueSettings(weight: 4))
        let running = QueueSettings(weight: 1, maxConcurrency: 3, paused: true)
        let applied = change.applied(to: running)
        #expect(applied == QueueSettings(weight: 4, maxConcurrency: 3, paused: true))
    }
}

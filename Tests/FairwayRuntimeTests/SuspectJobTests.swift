import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Testing

/// A job whose last run ended with its process runs alone, so that a second crash is charged to it and to
/// nothing that happened to run beside it.
@Suite("Suspect jobs run alone")
struct SuspectJobTests {
    struct Span: Codable, Sendable { var name: String }

    @Test("a suspect waits for running jobs to end, and no other job starts while it runs")
    func runsAlone() throws {
        let spans = Shared<[(name: String, start: Date, end: Date)]>([])
        let harness = try EngineHarness(workers: 4, queues: [QueueDefinition(name: "q", credit: 64)]) { registry in
            registry.register(JobName<Span>("span")) { span, _ in
                let start = Date()
                Thread.sleep(forTimeInterval: 0.03)
                spans.update { $0.append((span.name, start, Date())) }
            }
        }
        try harness.start()
        defer { harness.stop() }
        let payload = { (name: String) in Array(#"{"name":"\#(name)"}"#.utf8) }
        for index in 0..<6 { harness.source.enqueue(queue: "q", jobType: "span", payload: payload("before-\(index)")) }
        #expect(eventually { harness.engine.snapshot().busyWorkers == 4 })
        harness.source.enqueue(queue: "q", jobType: "span", payload: payload("suspect"), suspect: true)
        for index in 0..<6 { harness.source.enqueue(queue: "q", jobType: "span", payload: payload("after-\(index)")) }
        #expect(eventually { spans.read().count == 13 })
        let all = spans.read()
        let suspect = try #require(all.first { $0.name == "suspect" })
        for other in all where other.name != "suspect" {
            let overlaps = other.start < suspect.end && suspect.start < other.end
            #expect(!overlaps, "\(other.name) ran beside the suspect")
        }
        #expect(all.filter { $0.name.hasPrefix("after") }.allSatisfy { $0.start >= suspect.end })
        #expect(harness.source.ackedCount == 13)
    }
}

@Suite("In-memory source at shutdown")
struct InMemoryShutdownTests {
    @Test("a delivery the engine refuses is released without being pushed straight back (no recursion)")
    func refusedDeliveryIsNotPushedBack() throws {
        // The engine refuses deliveries once it is stopping and settles them as released. The source used to
        // push a released job straight back, which the engine refused again, until the stack overflowed:
        // the memory-store demo died with SIGSEGV about one run in four at its shutdown.
        let source = InMemorySource()
        let refusals = Shared(0)
        struct RefusingSink: DeliverySink {
            let source: InMemorySource
            let refusals: Shared<Int>
            func deliver(_ delivery: Delivery) { deliver(contentsOf: [delivery]) }
            func deliver(contentsOf deliveries: [Delivery]) {
                for delivery in deliveries {
                    refusals.update { $0 += 1 }
                    source.settle(delivery, .release)
                }
            }
            func withdrawHeld(where predicate: @escaping @Sendable (Delivery) -> Bool) -> Int { 0 }
        }
        source.enqueue(queue: "q", jobType: "noop", payloads: Array(repeating: [], count: 100))
        try source.start(
            queues: [QueueBinding(id: QueueID(0), name: "q", credit: 10)],
            sink: RefusingSink(source: source, refusals: refusals))
        #expect(refusals.read() == 10, "each held job is refused once and then waits")
        #expect(source.pendingCount(queue: "q") == 100)
    }
}

import FairwayRuntime
import FairwayScheduling
import NIOConcurrencyHelpers
import Testing

/// The in-memory source the scheduler's tests and the benchmarks use: it keeps the credit protocol.
@Suite("in-memory source")
struct InMemorySourceTests {
    final class RecordingSink: DeliverySink {
        let batches = NIOLockedValueBox<[[Delivery]]>([])
        func deliver(_ delivery: Delivery) { batches.withLockedValue { $0.append([delivery]) } }
        func deliver(contentsOf deliveries: [Delivery]) { batches.withLockedValue { $0.append(deliveries) } }
        func withdrawHeld(where predicate: @escaping @Sendable (Delivery) -> Bool) -> Int { 0 }
    }

    @Test("settlements handed over together: each counted once, and the jobs they free come in one hand-over")
    func settlementsTogether() throws {
        let source = InMemorySource(recordSettlements: true)
        source.enqueue(queue: "q", jobType: "noop", payloads: Array(repeating: [], count: 6))
        let sink = RecordingSink()
        try source.start(queues: [QueueBinding(id: QueueID(0), name: "q", credit: 3)], sink: sink)
        let first = try #require(sink.batches.withLockedValue { $0.first })
        #expect(first.count == 3, "the credit")
        source.settle(contentsOf: [(first[0], .ack), (first[1], .deadLetter(reason: "bad input")), (first[2], .ack)])
        let batches = sink.batches.withLockedValue { $0 }
        #expect(batches.count == 2 && batches[1].count == 3, "the three freed credits' jobs at once: \(batches)")
        #expect(source.ackedCount == 2)
        #expect(source.deadLettered.map(\.reason) == ["bad input"])
        #expect(source.settlements.values.allSatisfy { $0.count == 1 })
        #expect(source.outstandingCount(queue: "q") == 3)
    }
}

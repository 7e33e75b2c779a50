import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing

@testable import FairwaySQLite

@Suite("SQLite source start")
struct SQLiteSourceStartTests {
    /// Records each hand-over of deliveries, in order.
    final class RecordingSink: DeliverySink {
        let batches = NIOLockedValueBox<[[Delivery]]>([])
        func deliver(_ delivery: Delivery) { batches.withLockedValue { $0.append([delivery]) } }
        func deliver(contentsOf deliveries: [Delivery]) { batches.withLockedValue { $0.append(deliveries) } }
        func withdrawHeld(where predicate: @escaping @Sendable (Delivery) -> Bool) -> Int { 0 }
    }

    @Test("the first jobs are handed on after a short transaction, not after a claim in every queue")
    func firstJobsHandedOnEarly() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let queues = 200
        let file = try SQLiteQueue(path: path)
        try file.enqueue(
            contentsOf: (0..<queues).flatMap { queue in
                Array(repeating: NewJob(queue: "q\(queue)", type: "noop"), count: 20)
            })
        var logger = Logger(label: "fairway.test")
        logger.logLevel = .critical
        let source = try SQLiteSource(path: path, logger: logger)
        let sink = RecordingSink()
        try source.start(
            queues: (0..<queues).map { QueueBinding(id: QueueID($0), name: "q\($0)", credit: 16) }, sink: sink)
        defer { source.close() }
        // Nothing is settled, so every queue ends with its full credit held: 16 jobs each.
        #expect(eventually { sink.batches.withLockedValue { $0.joined().count } == queues * 16 })
        let batches = sink.batches.withLockedValue { $0 }
        let first = try #require(batches.first)
        #expect(
            first.count < SQLiteSource.firstHandOver + 16,
            "the first hand-over waited for \(first.count) jobs of \(Set(first.map(\.queue.index)).count) queues")
        let held = Dictionary(grouping: batches.joined(), by: \.queue.index).mapValues(\.count)
        #expect(held.count == queues && held.values.allSatisfy { $0 == 16 }, "no queue holds more than its credit")
    }
}

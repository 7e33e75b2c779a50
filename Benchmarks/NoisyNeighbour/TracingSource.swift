import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Logging
import NIOConcurrencyHelpers

final class TracingSource: JobSource, @unchecked Sendable {
    let inner: SQLiteSource
    let handed = NIOLockedValueBox<[Int64: UInt64]>([:])
    init(_ inner: SQLiteSource) { self.inner = inner }
    var name: String { inner.name }
    struct Sink: DeliverySink {
        let inner: any DeliverySink
        let handed: NIOLockedValueBox<[Int64: UInt64]>
        func note(_ deliveries: [Delivery]) {
            let now = wallNanoseconds()
            handed.withLockedValue { for d in deliveries { $0[Int64(d.receipt)] = now } }
        }
        func deliver(_ delivery: Delivery) {
            note([delivery])
            inner.deliver(delivery)
        }
        func deliver(contentsOf deliveries: [Delivery]) {
            note(deliveries)
            inner.deliver(contentsOf: deliveries)
        }
        func withdrawHeld(where predicate: @escaping @Sendable (Delivery) -> Bool) -> Int {
            inner.withdrawHeld(where: predicate)
        }
    }
    func start(queues: [QueueBinding], sink: any DeliverySink) throws {
        try inner.start(queues: queues, sink: Sink(inner: sink, handed: handed))
    }
    func settle(_ delivery: Delivery, _ settlement: Settlement) { inner.settle(delivery, settlement) }
    func stopDelivering() { inner.stopDelivering() }
    func close() { inner.close() }
    func runStarting(_ delivery: Delivery) -> RunJournal.Mark { inner.runStarting(delivery) }
    func runEnded(_ mark: RunJournal.Mark) { inner.runEnded(mark) }
}

let tracing = NIOLockedValueBox<TracingSource?>(nil)

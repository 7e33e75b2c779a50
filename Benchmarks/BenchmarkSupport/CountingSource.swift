import FairwayRuntime
import Foundation
import Synchronization

/// Wraps a source and counts the settlements handed to it: a benchmark waits on `done` for the last one,
/// and reads when the `warmUp`-th one came to measure the steady state after it.
public final class CountingSource: JobSource, @unchecked Sendable {
    public let name = "counting"
    public let wrapped: any JobSource
    public let target: Int
    public let warmUp: Int
    public let settled = Atomic<Int>(0)
    public let warmedAt = Atomic<UInt64>(0)
    public let done = DispatchSemaphore(value: 0)
    /// The processor time spent when the `warmUp`-th settlement came, when asked for.
    public let warmedMachineTime = Mutex<MachineTime?>(nil)
    private let measuresMachineTime: Bool

    /// - Parameter measuresMachineTime: read ``MachineTime`` at the warm-up too (a look through /proc, a
    ///   millisecond or so on the settling thread).
    public init(_ wrapped: any JobSource, target: Int, warmUp: Int = 0, measuresMachineTime: Bool = false) {
        self.wrapped = wrapped
        self.target = target
        self.warmUp = warmUp
        self.measuresMachineTime = measuresMachineTime
    }

    public func start(queues: [QueueBinding], sink: any DeliverySink) throws {
        try wrapped.start(queues: queues, sink: sink)
    }

    public func settle(_ delivery: Delivery, _ settlement: Settlement) {
        wrapped.settle(delivery, settlement)
        count(1)
    }

    public func settle(contentsOf settlements: [(Delivery, Settlement)]) {
        wrapped.settle(contentsOf: settlements)
        count(settlements.count)
    }

    private func count(_ added: Int) {
        let count = settled.add(added, ordering: .relaxed).newValue
        if count - added < warmUp && count >= warmUp {
            if measuresMachineTime {
                let time = MachineTime.now()
                warmedMachineTime.withLock { $0 = time }
            }
            warmedAt.store(MonotonicClock.now, ordering: .relaxed)
        }
        if count - added < target && count >= target { done.signal() }
    }

    public func stopDelivering() { wrapped.stopDelivering() }
    public func close() { wrapped.close() }
}

import FairwayRuntime
import Foundation
import Synchronization

/// Wraps a source and counts the settlements handed to it: a benchmark waits on `done` for the last one,
/// and reads when the warm-up ended to measure the steady state after it: `target - warmUp` settlements.
///
/// The warm-up ends at the `warmUp`-th settlement, or later, at the first one after ``isReady`` turns true:
/// worker processes start one by one while the first ones already run jobs, and a window that opened
/// before the last started would count its start-up as steady state.
public final class CountingSource: JobSource, @unchecked Sendable {
    public let name = "counting"
    public let wrapped: any JobSource
    public let target: Int
    public let warmUp: Int
    public let settled = Atomic<Int>(0)
    public let warmedAt = Atomic<UInt64>(0)
    /// Settlements counted when the warm-up ended; -1 until then.
    public let warmedCount = Atomic<Int>(-1)
    /// Whether the warm-up may end, asked at each settlement from the `warmUp`-th until it is true. Set
    /// before the engine starts.
    public let isReady = Mutex<@Sendable () -> Bool>({ true })
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
        if warmUp == 0 { warmedCount.store(0, ordering: .relaxed) }
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
        var warmed = warmedCount.load(ordering: .acquiring)
        if warmed < 0, count >= warmUp, isReady.withLock({ $0 })() {
            if warmedCount.compareExchange(expected: -1, desired: count, ordering: .acquiringAndReleasing).exchanged {
                if measuresMachineTime {
                    let time = MachineTime.now()
                    warmedMachineTime.withLock { $0 = time }
                }
                warmedAt.store(MonotonicClock.now, ordering: .relaxed)
            }
            warmed = warmedCount.load(ordering: .acquiring)
        }
        guard warmed >= 0 else { return }
        let end = warmed + target - warmUp
        if count - added < end && count >= end { done.signal() }
    }

    public func stopDelivering() { wrapped.stopDelivering() }
    public func close() { wrapped.close() }
}

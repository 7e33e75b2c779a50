import DequeModule
import FairwayJobs
import FairwayScheduling
import Foundation
import Logging

/// Deliveries from the sources: into the scheduler, and back out when held jobs are released.
extension Engine {
    // MARK: - Deliveries

    fileprivate func deliver(_ delivery: Delivery, sourceIndex: Int) {
        var delivery = delivery
        delivery.sourceIndex = sourceIndex
        monitor.lock()
        guard phase.acceptsWork else {
            monitor.unlock()
            sources[sourceIndex].settle(delivery, .release)
            return
        }
        let queue = delivery.queue
        buffers[queue.index].append(delivery)
        scheduler.arrived(queue, now: MonotonicClock.now)
        if idleWorkers > 0 && scheduler.hasEligibleQueue {
            workAvailable.signal()
        }
        monitor.unlock()
    }

    fileprivate func deliver(_ batch: [Delivery], sourceIndex: Int) {
        var refused: [Delivery] = []
        monitor.lock()
        if phase.acceptsWork {
            let now = MonotonicClock.now
            for var delivery in batch {
                delivery.sourceIndex = sourceIndex
                buffers[delivery.queue.index].append(delivery)
                scheduler.arrived(delivery.queue, now: now)
            }
            if idleWorkers > 0 && scheduler.hasEligibleQueue {
                workAvailable.signal()
            }
        } else {
            refused = batch
        }
        monitor.unlock()
        for delivery in refused {
            sources[sourceIndex].settle(delivery, .release)
        }
    }

    fileprivate func withdrawHeld(sourceIndex: Int, where predicate: (Delivery) -> Bool) -> Int {
        monitor.withLock {
            let now = MonotonicClock.now
            var taken = 0
            for index in buffers.indices where !buffers[index].isEmpty {
                let before = buffers[index].count
                buffers[index].removeAll { $0.sourceIndex == sourceIndex && predicate($0) }
                let removed = before - buffers[index].count
                if removed > 0 {
                    scheduler.withdrew(QueueID(index), count: removed, now: now)
                    taken += removed
                }
            }
            return taken
        }
    }

    /// Hands every held, not-started delivery back to its source; returns how many.
    @discardableResult
    func releaseHeld() -> Int {
        var held: [Delivery] = []
        monitor.withLock {
            let now = MonotonicClock.now
            for index in buffers.indices where !buffers[index].isEmpty {
                let count = buffers[index].count
                held.append(contentsOf: buffers[index])
                buffers[index].removeAll()
                scheduler.withdrew(QueueID(index), count: count, now: now)
                counters[index].released += count
            }
            workAvailable.broadcast()
        }
        for delivery in held {
            sources[delivery.sourceIndex].settle(delivery, .release)
        }
        return held.count
    }
}

/// The sink a source pushes into; it stamps each delivery with the source it came from.
struct SourceSink: DeliverySink {
    let engine: Engine
    let sourceIndex: Int

    func deliver(_ delivery: Delivery) {
        engine.deliver(delivery, sourceIndex: sourceIndex)
    }

    func deliver(contentsOf deliveries: [Delivery]) {
        engine.deliver(deliveries, sourceIndex: sourceIndex)
    }

    func withdrawHeld(where predicate: @escaping @Sendable (Delivery) -> Bool) -> Int {
        engine.withdrawHeld(sourceIndex: sourceIndex, where: predicate)
    }
}

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
        holdLocked(delivery, now: MonotonicClock.now)
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
                holdLocked(delivery, now: now)
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
                let ready = buffers[index].readyCount
                taken += buffers[index].removeAll { $0.sourceIndex == sourceIndex && predicate($0) }.count
                if buffers[index].readyCount < ready {
                    scheduler.withdrew(QueueID(index), count: ready - buffers[index].readyCount, now: now)
                }
            }
            return taken
        }
    }

    /// The key a delivery is held under in its queue: its fairness key where the queue shares by key, or
    /// the queue it was enqueued to where its queue is a pattern.
    func bufferKey(_ delivery: Delivery) -> String? {
        keyed[delivery.queue.index] ? delivery.queueName ?? delivery.fairnessKey : nil
    }

    /// Holds a delivery in its queue and tells the scheduler what became ready (nothing when its key is
    /// at its cap).
    func holdLocked(_ delivery: Delivery, now: UInt64) {
        let index = delivery.queue.index
        let ready = buffers[index].readyCount
        buffers[index].append(delivery, key: bufferKey(delivery))
        if buffers[index].readyCount > ready {
            scheduler.arrived(delivery.queue, count: buffers[index].readyCount - ready, now: now)
        }
    }

    /// Gives a dispatched job's place back to the scheduler and to its key, whose held jobs may start
    /// again if the key was at its cap.
    func jobLeftLocked(_ dispatch: Dispatch, _ delivery: Delivery, cost: Double, now: UInt64) {
        scheduler.complete(dispatch.queue, charge: dispatch.charge, cost: cost, now: now)
        let index = dispatch.queue.index
        let ready = buffers[index].readyCount
        buffers[index].finished(key: bufferKey(delivery))
        if buffers[index].readyCount > ready {
            scheduler.arrived(dispatch.queue, count: buffers[index].readyCount - ready, now: now)
        }
    }

    /// Hands every held, not-started delivery back to its source; returns how many.
    @discardableResult
    func releaseHeld() -> Int {
        var held: [Delivery] = []
        monitor.withLock {
            let now = MonotonicClock.now
            for index in buffers.indices where !buffers[index].isEmpty {
                let ready = buffers[index].readyCount
                let released = buffers[index].removeAll { _ in true }
                held.append(contentsOf: released)
                if ready > 0 {
                    scheduler.withdrew(QueueID(index), count: ready, now: now)
                }
                counters[index].released += released.count
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

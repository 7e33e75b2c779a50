import DequeModule
import FairwayJobs
import FairwayScheduling
import Foundation
import Logging

/// The worker threads: take the next job the scheduler picks, run it, settle it.
extension Engine {
    // MARK: - Workers

    func spawnWorkerLocked() {
        let slot = WorkerSlot(number: nextSlotNumber)
        nextSlotNumber += 1
        slots.append(slot)
        liveThreads += 1
        startThread(name: "fairway-worker-\(slot.number)") { [self] in workerMain(slot) }
    }

    func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.name = name
        thread.stackSize = 8 << 20
        thread.start()
    }

    func workerMain(_ slot: WorkerSlot) {
        monitor.lock()
        while let (delivery, definition, dispatch) = takeNextLocked(slot) {
            monitor.unlock()
            let context = jobContext(delivery, definition, slot: slot)
            // A thread whose job the watchdog took comes back here like any other: whether the pool now has
            // one thread too many is decided in `takeNextLocked`, under the same hold of the monitor as the
            // count that follows. Deciding it when the job ended, and counting only later, once let both
            // this thread and its replacement leave, and no thread ran the queue's jobs again.
            if let pool = processPools[delivery.queue.index] {
                let first = PipelinedJob(
                    delivery: delivery, dispatch: dispatch, definition: definition, waitSeconds: slot.waitSeconds)
                runInProcess(first, context: context, pool: pool, slot: slot)
            } else {
                let mark = sources[delivery.sourceIndex].runStarting(delivery)
                let outcome = runner.run(
                    delivery,
                    context: context,
                    executor: { slot.executor },
                    taskStarted: { task in
                        monitor.withLock { slot.task = task }
                        if slot.state == .abandoned { task.cancel() }
                    }
                )
                jobEnded(delivery, definition: definition, context: context, outcome: outcome, mark: mark, slot: slot)
            }
        }
        liveThreads -= 1
        slots.removeAll { $0 === slot }
        stateChanged.broadcast()
        monitor.unlock()
    }

    /// What a handler is told about the job it runs.
    func jobContext(_ delivery: Delivery, _ definition: QueueDefinition, slot: WorkerSlot) -> JobContext {
        var context = JobContext(
            queue: delivery.queueName ?? definition.name,
            jobType: delivery.jobType,
            jobID: delivery.jobID ?? String(delivery.receipt),
            attempt: delivery.attempt,
            maxAttempts: definition.retry.maxAttempts,
            deadline: .now + definition.timeout,
            cancellation: slot.cancellation,
            logger: logger
        )
        context.fairnessKey = delivery.fairnessKey
        return context
    }

    /// Settles the job `slot` was running, which ended with `outcome`, and gives its slot back to the
    /// scheduler. Called without the monitor; returns holding it. False when the watchdog or the shutdown
    /// took the job from this thread first (they settled it; this result is discarded).
    @discardableResult
    func jobEnded(
        _ delivery: Delivery, definition: QueueDefinition, context: @autoclosure () -> JobContext,
        outcome: JobOutcome, mark: RunJournal.Mark, slot: WorkerSlot
    ) -> Bool {
        sources[delivery.sourceIndex].runEnded(mark)
        let ended = MonotonicClock.now
        guard slot.claim(.finishing) else {
            lostJobLocking(slot)
            return false
        }
        let settlement = Self.settlement(of: delivery, definition: definition, outcome: outcome)
        sources[delivery.sourceIndex].settle(delivery, settlement)
        let cost = Double(ended &- slot.startedAt) / 1e9
        logJob(delivery, context: context(), outcome: outcome, settlement: settlement, seconds: cost)
        observer?.jobEnded(
            queue: definition.name, outcome: outcome, settlement: settlement, runSeconds: cost,
            waitSeconds: slot.waitSeconds
        )
        monitor.lock()
        finishLocked(slot, outcome: outcome, settlement: settlement, cost: cost)
        return true
    }

    /// What becomes of a job that ended with `outcome`, by its queue's retry policy.
    static func settlement(of delivery: Delivery, definition: QueueDefinition, outcome: JobOutcome) -> Settlement {
        // Jitter only for a failure: drawing it costs a getrandom system call (2 % of a drain).
        definition.retry.settlement(
            for: outcome, attempt: delivery.attempt, random: outcome == .succeeded ? 0 : Double.random(in: 0..<1))
    }

    /// The watchdog or the shutdown took the job `slot` ran (and settled it) while its thread was busy with
    /// it: the thread is free again, and no longer counted stuck. Called without the monitor; returns
    /// holding it.
    func lostJobLocking(_ slot: WorkerSlot) {
        monitor.lock()
        stuckThreads -= 1
        slot.task = nil
        slot.setState(.idle)
    }

    /// Each worker-process pool once.
    var uniquePools: [any IsolatedJobPool] {
        var seen = Set<ObjectIdentifier>()
        return processPools.compactMap { $0 }.filter { seen.insert(ObjectIdentifier($0)).inserted }
    }

    /// Waits for the next job the scheduler picks, or returns nil when the worker should exit.
    func takeNextLocked(_ slot: WorkerSlot) -> (Delivery, QueueDefinition, Dispatch)? {
        while true {
            guard phase.acceptsWork else { return nil }
            if liveThreads - stuckThreads > configuration.workers { return nil }
            let now = MonotonicClock.now
            if exclusiveSlot == nil, let dispatch = scheduler.next(now: now) {
                let index = dispatch.queue.index
                let (delivery, waitSeconds) = takeDeliveryLocked(dispatch)
                let definition = definitions[index]
                slot.delivery = delivery
                slot.dispatch = dispatch
                // A suspect's clock starts once it runs alone, below; a process-isolated job's once a worker
                // process has it (`runInProcess`), so that a worker's start is not counted as the job's time.
                let inProcess = processPools[index] != nil
                if delivery.suspect || inProcess {
                    slot.startedAt = now
                    slot.deadline = .max
                } else {
                    startClockLocked(slot, timeout: definition.timeout, at: now)
                }
                slot.cancellation.reset()
                slot.setState(.running)
                busyWorkers += 1
                slot.waitSeconds = waitSeconds
                if delivery.suspect {
                    // Alone: wait for the jobs already running to end, and start no other meanwhile.
                    exclusiveSlot = slot
                    while busyWorkers > 1 && phase.acceptsWork {
                        stateChanged.wait()
                    }
                    if slot.state == .abandoned {
                        // The shutdown released it while it waited: it never ran.
                        stuckThreads -= 1
                        slot.setState(.idle)
                        continue
                    }
                    if !inProcess {
                        startClockLocked(slot, timeout: definition.timeout, at: MonotonicClock.now)
                    }
                } else if idleWorkers > 0 && scheduler.hasEligibleQueue {
                    workAvailable.signal()
                }
                return (delivery, definition, dispatch)
            }
            idleWorkers += 1
            if let wake = scheduler.nextEligibleTime {
                workAvailable.wait(until: wake)
            } else {
                workAvailable.wait()
            }
            idleWorkers -= 1
        }
    }

    /// Takes the next held job of the queue the scheduler just picked, and counts how long it waited.
    func takeDeliveryLocked(_ dispatch: Dispatch) -> (Delivery, waitSeconds: Double?) {
        let index = dispatch.queue.index
        // The scheduler counted this one out; a key that reached its cap withholds the rest of its jobs.
        let ready = buffers[index].readyCount
        let delivery = buffers[index].popNext()!.element
        if buffers[index].readyCount < ready - 1 {
            scheduler.withdrew(dispatch.queue, count: ready - 1 - buffers[index].readyCount, now: MonotonicClock.now)
        }
        guard let enqueuedAt = delivery.enqueuedAt else { return (delivery, nil) }
        let wall = WallClock.now
        let wait = wall > enqueuedAt ? Double(wall - enqueuedAt) / 1e9 : 0
        counters[index].waitSeconds += wait
        counters[index].waitSamples += 1
        return (delivery, wait)
    }

    /// Returns a finished job's slot to the scheduler and counts its outcome. Called with the monitor held,
    /// after the job's settlement was handed to its source.
    func finishLocked(_ slot: WorkerSlot, outcome: JobOutcome?, settlement: Settlement, cost: Double) {
        guard let (dispatch, delivery) = takeJobLocked(from: slot) else {
            assertionFailure("slot \(slot.number) finished with no job")
            return
        }
        if slot.state == .finishing {
            slot.setState(.idle)
        }
        countOutLocked(dispatch, delivery, outcome: outcome, settlement: settlement, cost: cost)
    }

    /// Takes the job `slot` holds out of it, so that the slot's thread may take its next job while this one
    /// is being settled; nil when it holds none. The job no longer runs alone, if it did. Called with the
    /// monitor held.
    func takeJobLocked(from slot: WorkerSlot) -> (Dispatch, Delivery)? {
        guard let dispatch = slot.dispatch, let delivery = slot.delivery else { return nil }
        slot.dispatch = nil
        slot.delivery = nil
        slot.deadline = .max
        if exclusiveSlot === slot {
            exclusiveSlot = nil
            workAvailable.broadcast()
        }
        return (dispatch, delivery)
    }

    /// Counts a job taken from its slot out of the pool and of its queue's share, with its outcome (nil for a
    /// job released unfinished). Called with the monitor held, after the job's settlement was handed to its
    /// source: a drain waiting for the pool to empty must not close the sources before that.
    func countOutLocked(
        _ dispatch: Dispatch, _ delivery: Delivery, outcome: JobOutcome?, settlement: Settlement, cost: Double
    ) {
        let index = dispatch.queue.index
        jobLeftLocked(dispatch, delivery, cost: cost, now: MonotonicClock.now)
        busyWorkers -= 1
        counters[index].busySeconds += cost
        if outcome != nil, processPools[index] != nil {
            runTimes[index].note(cost, jobType: delivery.jobType)
        }
        switch outcome {
        case .succeeded: counters[index].succeeded += 1
        case .failed: counters[index].failed += 1
        case .timedOut: counters[index].timedOut += 1
        case .rejected: counters[index].rejected += 1
        case .crashed: counters[index].crashed += 1
        case nil: break
        }
        switch settlement {
        case .ack: break
        case .retry: counters[index].retried += 1
        case .deadLetter: counters[index].deadLettered += 1
        case .release: break
        }
        if exclusiveSlot != nil {
            stateChanged.broadcast()
        }
        if busyWorkers == 0 {
            stateChanged.broadcast()
        }
        if idleWorkers > 0 && scheduler.hasEligibleQueue {
            workAvailable.signal()
        }
    }
}

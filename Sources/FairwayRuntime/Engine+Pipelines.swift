import DequeModule
import FairwayJobs
import FairwayScheduling
import Foundation
import Logging

/// Jobs of process-isolated queues: run in the worker process a worker thread holds, with jobs sent ahead
/// to a worker that accepts a pipeline, so that it never waits on its pipe between two short jobs.
extension Engine {
    /// The most run time the jobs already in one worker's pipeline may be expected to take for another to
    /// be sent behind them: sending ahead pays for short jobs, where the pipe's round trip between two jobs
    /// is a visible part of each, and would only make a job wait behind a long one. At 25 ms a 10 ms job
    /// has one sent behind it, which hides the round trip (an interpreted worker's parse of the next job
    /// included) behind the running job; a job of more than about 12 ms never does.
    static let pipelineBudgetSeconds = 0.025

    /// Runs a job of a process-isolated queue in a worker process, and the jobs sent ahead behind it, blocking
    /// this worker thread until the last ends. Returns holding the monitor.
    func runInProcess(_ first: PipelinedJob, context: JobContext, pool: any IsolatedJobPool, slot: WorkerSlot) {
        // The jobs in the worker, in the order sent; the first is the one running (the slot's), the others
        // are the slot's `ahead`, the same objects.
        var pending: Deque<PipelinedJob> = [first]
        var mark = sources[first.delivery.sourceIndex].runStarting(first.delivery)
        // Set once the watchdog or the shutdown took the running job: what the worker says after is moot.
        var lost = false
        let end = pool.run(
            IsolatedJob(delivery: first.delivery, context: context, timeout: first.definition.timeout),
            more: { room in
                // The worker answered every job it had: the slot runs none, so none is sent ahead.
                guard !lost, slot.state == .running else { return [] }
                let taken = monitor.withLock { () -> [PipelinedJob] in
                    var taken: [PipelinedJob] = []
                    var expected = expectedSecondsLocked(slot)
                    while taken.count < room, let job = takeAheadLocked(slot, pool: pool, expected: &expected) {
                        taken.append(job)
                    }
                    return taken
                }
                return taken.map { job in
                    pending.append(job)
                    return IsolatedJob(
                        delivery: job.delivery, context: jobContext(job.delivery, job.definition, slot: slot),
                        timeout: job.definition.timeout)
                }
            },
            ended: { outcomes in
                guard !lost, outcomes.count <= pending.count, let last = outcomes.last else { return }
                // A worker killed after its job timed out is the timeout's doing, already reported.
                if case .crashed(let reason) = last, slot.state != .abandoned {
                    let crashed = pending[outcomes.count - 1]
                    logger.warning(
                        "worker process crashed",
                        metadata: [
                            "queue": "\(crashed.delivery.queueName ?? crashed.definition.name)",
                            "job": "\(crashed.delivery.jobType)", "reason": "\(reason)",
                        ])
                }
                let settled = pipelinedJobsEnded(outcomes, of: pending, mark: mark, slot: slot)
                pending.removeFirst(outcomes.count)
                lost = !settled
                // The next job sent ahead is the one the worker runs now, unless the worker died.
                if settled, !last.endedItsWorker, let next = slot.ahead.popFirst() {
                    startAheadLocked(next, slot: slot)
                    monitor.unlock()
                    mark = sources[next.delivery.sourceIndex].runStarting(next.delivery)
                } else {
                    monitor.unlock()
                }
            },
            cancellable: { cancel in
                monitor.withLock {
                    slot.cancelProcess = cancel
                    // The job is in its worker now: its timeout and its run time count from here, not from
                    // the dispatch, which may have waited for a worker process to start.
                    if slot.state == .running {
                        startClockLocked(slot, timeout: first.definition.timeout, at: MonotonicClock.now)
                    }
                }
                if slot.state == .abandoned { cancel() }
            }
        )
        // Jobs still sent ahead never started: the worker died or was stopped before them.
        let unstarted = monitor.withLock {
            slot.cancelProcess = nil
            defer { slot.ahead.removeAll() }
            return Array(slot.ahead)
        }
        releaseUnstarted(unstarted)
        if !lost, pending.count > 0, slot.claim(.finishing), let running = slot.delivery {
            // The pool returned without the result of the job the worker was running: released, since
            // nothing says how it ended; or no worker could be started for it, and it never ran.
            sources[running.sourceIndex].runEnded(mark)
            sources[running.sourceIndex].settle(running, .release)
            monitor.lock()
            counters[running.queue.index].released += 1
            if case .notStarted(let reason) = end {
                holdOffLocked(running.queue, reason: reason)
            }
            finishLocked(slot, outcome: nil, settlement: .release, cost: 0)
            return
        }
        monitor.lock()
        if end == .ran, !failedStartsInARow.isEmpty {
            // A worker started: the queues these processes serve run again as before.
            failedStartsInARow[ObjectIdentifier(pool)] = nil
        }
    }

    /// The longest a queue is held off after its worker process could not start.
    static let longestHoldOff = Duration.seconds(60)

    /// A job of `queue` was released because no worker process could be started for it: the queue, and every
    /// other queue the same worker processes serve (their starts would fail the same way), is not picked
    /// again for a while, 1 s after the first failure and twice as long after each further one, up to a
    /// minute, until a start succeeds. Their jobs wait, charged nothing, for a worker that can start (the
    /// next deploy, a fixed `command`) rather than spend their attempts on starts that fail, and no thread
    /// spins starting a program that cannot run, nor one thread for each of 120 queues. Called with the
    /// monitor held.
    func holdOffLocked(_ queue: QueueID, reason: String) {
        let now = MonotonicClock.now
        // Threads that took the queues' jobs together fail together: the first failure holds them off.
        guard scheduler.heldUntil(queue, now: now) == nil, let pool = processPools[queue.index] else { return }
        let failures = (failedStartsInARow[ObjectIdentifier(pool)] ?? 0) + 1
        failedStartsInARow[ObjectIdentifier(pool)] = failures
        let doublings = min(failures - 1, 6)
        let hold = min(Duration.seconds(1 << doublings), Self.longestHoldOff)
        let served = queues(servedBy: pool)
        for index in served {
            scheduler.holdOff(QueueID(index), until: now + UInt64(hold.seconds * 1e9), now: now)
        }
        var metadata: Logger.Metadata = [
            "queue": "\(definitions[queue.index].name)", "reason": "\(reason)", "failedStarts": "\(failures)",
            "retryIn": "\(hold.compactDescription)",
        ]
        if served.count > 1 {
            metadata["queuesHeld"] = "\(served.count)"
        }
        logger.error("worker process could not start; the queue's jobs wait, charged nothing", metadata: metadata)
        // Idle threads sleeping without a deadline must wake when the hold ends.
        workAvailable.broadcast()
    }

    /// The indices of the queues whose jobs run in `pool`'s worker processes. Looked up only when a start
    /// failed.
    func queues(servedBy pool: any IsolatedJobPool) -> [Int] {
        processPools.indices.filter { processPools[$0] === pool }
    }

    /// Settles the jobs a worker process answered in one read, the first `outcomes.count` of `jobs` (in the
    /// order sent): the first is the slot's running job, the others ran behind it and are the first of the
    /// slot's jobs sent ahead. Their settlements go to their sources in one call a source, and the engine
    /// counts them all in one hold of the monitor. Called without the monitor; returns holding it. False
    /// when the watchdog or the shutdown took the running job first: they settled it and released the jobs
    /// behind it, and these outcomes are moot.
    func pipelinedJobsEnded(
        _ outcomes: [JobOutcome], of jobs: Deque<PipelinedJob>, mark: RunJournal.Mark, slot: WorkerSlot
    ) -> Bool {
        let first = jobs[0]
        guard outcomes.count > 1 else {
            return jobEnded(
                first.delivery, definition: first.definition,
                context: jobContext(first.delivery, first.definition, slot: slot), outcome: outcomes[0], mark: mark,
                slot: slot)
        }
        sources[first.delivery.sourceIndex].runEnded(mark)
        let ended = MonotonicClock.now
        guard slot.claim(.finishing) else {
            lostJobLocking(slot)
            return false
        }
        // The jobs sent ahead ran one after another since the first started, and the worker does not say
        // how long each took: each is counted an equal share of the time.
        let cost = Double(ended &- slot.startedAt) / 1e9 / Double(outcomes.count)
        var settlements: [(Delivery, Settlement)] = []
        settlements.reserveCapacity(outcomes.count)
        for (index, outcome) in outcomes.enumerated() {
            let job = jobs[index]
            settlements.append(
                (job.delivery, Self.settlement(of: job.delivery, definition: job.definition, outcome: outcome)))
        }
        var start = 0
        while start < settlements.count {
            let source = settlements[start].0.sourceIndex
            var end = start + 1
            while end < settlements.count && settlements[end].0.sourceIndex == source { end += 1 }
            sources[source].settle(
                contentsOf: start == 0 && end == settlements.count ? settlements : Array(settlements[start..<end]))
            start = end
        }
        for (index, outcome) in outcomes.enumerated() {
            let job = jobs[index]
            let settlement = settlements[index].1
            logJob(
                job.delivery, context: jobContext(job.delivery, job.definition, slot: slot), outcome: outcome,
                settlement: settlement, seconds: cost)
            observer?.jobEnded(
                queue: job.definition.name, outcome: outcome, settlement: settlement, runSeconds: cost,
                waitSeconds: job.waitSeconds)
        }
        monitor.lock()
        finishLocked(slot, outcome: outcomes[0], settlement: settlements[0].1, cost: cost)
        for index in 1..<outcomes.count {
            // It ran and ended behind the one before: the slot holds it only to count it out. No one else
            // takes a slot's jobs sent ahead while its state is not `running`.
            let ahead = slot.ahead.removeFirst()
            assert(ahead === jobs[index], "answers out of order")
            slot.delivery = ahead.delivery
            slot.dispatch = ahead.dispatch
            slot.setState(.finishing)
            busyWorkers += 1
            finishLocked(slot, outcome: outcomes[index], settlement: settlements[index].1, cost: cost)
        }
        return true
    }

    /// The next job to send ahead to the worker process `slot` holds, taken from the scheduler, or nil:
    /// only the job the scheduler would pick next anyway, only when it is for the same pool, and only when
    /// no thread is idle (one would start it at once), no job must run alone, and the jobs already in the
    /// worker and this one are expected to end within ``pipelineBudgetSeconds`` (by their job types' recent
    /// run times). `expected` is how long those are expected to run (``expectedSecondsLocked(_:)``), counted
    /// on by each job taken.
    func takeAheadLocked(_ slot: WorkerSlot, pool: any IsolatedJobPool, expected: inout Double) -> PipelinedJob? {
        guard slot.state == .running, slot.dispatch != nil, phase.acceptsWork, exclusiveSlot == nil,
            idleWorkers == 0, liveThreads - stuckThreads <= configuration.workers
        else { return nil }
        let now = MonotonicClock.now
        guard let queue = scheduler.peek(now: now), processPools[queue.index] === pool,
            let next = buffers[queue.index].next, !next.suspect,
            case let estimate = runTimes[queue.index][next.jobType],
            expected + estimate < Self.pipelineBudgetSeconds,
            let dispatch = scheduler.next(now: now)
        else { return nil }
        let (delivery, waitSeconds) = takeDeliveryLocked(dispatch)
        let job = PipelinedJob(
            delivery: delivery, dispatch: dispatch, definition: definitions[queue.index], waitSeconds: waitSeconds,
            expectedSeconds: estimate)
        slot.ahead.append(job)
        expected += estimate
        return job
    }

    /// How long the jobs in the worker process `slot` holds are expected to run: the running one's and those
    /// sent ahead, by their job types' recent run times. Summed once a refill, not once a job taken, since a
    /// pipeline holds up to 64.
    func expectedSecondsLocked(_ slot: WorkerSlot) -> Double {
        guard let running = slot.dispatch, let delivery = slot.delivery else { return 0 }
        var expected = runTimes[running.queue.index][delivery.jobType]
        for job in slot.ahead {
            expected += job.expectedSeconds
        }
        return expected
    }

    /// Makes a job sent ahead the slot's running job: the worker started it when it answered the one before.
    func startAheadLocked(_ job: PipelinedJob, slot: WorkerSlot) {
        slot.delivery = job.delivery
        slot.dispatch = job.dispatch
        startClockLocked(slot, timeout: job.definition.timeout, at: MonotonicClock.now)
        slot.waitSeconds = job.waitSeconds
        slot.cancellation.reset()
        slot.setState(.running)
        busyWorkers += 1
    }

    /// Releases jobs that were sent ahead to a worker and never started: back to their sources with no
    /// attempt counted, and their slots back to the scheduler. Called without the monitor.
    func releaseUnstarted(_ jobs: [PipelinedJob]) {
        guard !jobs.isEmpty else { return }
        for job in jobs {
            sources[job.delivery.sourceIndex].settle(job.delivery, .release)
        }
        monitor.withLock {
            let now = MonotonicClock.now
            for job in jobs {
                jobLeftLocked(job.dispatch, job.delivery, cost: 0, now: now)
                counters[job.dispatch.queue.index].released += 1
            }
            if idleWorkers > 0 && scheduler.hasEligibleQueue {
                workAvailable.broadcast()
            }
        }
    }
}

extension JobOutcome {
    /// True when the worker process running the job is gone with it.
    var endedItsWorker: Bool {
        if case .crashed = self { return true }
        return false
    }
}

/// A job in a worker process's pipeline: the one it runs, or one sent ahead behind it, taken from the scheduler
/// and not yet started. A class, so that the slot's `ahead` (which the watchdog and the shutdown release
/// when they take the running job) and the thread supervising the worker share one: copies of a job's
/// delivery and queue definition, and their reference counting, were the largest part of what a pipelined
/// job cost the supervisor beyond a job on a thread (`perf`, no-op jobs).
final class PipelinedJob: Sendable {
    let delivery: Delivery
    let dispatch: Dispatch
    let definition: QueueDefinition
    let waitSeconds: Double?
    /// How long it was expected to run when it was sent: its job type's estimate then.
    let expectedSeconds: Double

    init(
        delivery: Delivery, dispatch: Dispatch, definition: QueueDefinition, waitSeconds: Double?,
        expectedSeconds: Double = .infinity
    ) {
        self.delivery = delivery
        self.dispatch = dispatch
        self.definition = definition
        self.waitSeconds = waitSeconds
        self.expectedSeconds = expectedSeconds
    }
}

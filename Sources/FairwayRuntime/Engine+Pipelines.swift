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
    func runInProcess(
        _ delivery: Delivery, definition: QueueDefinition, context: JobContext, pool: any IsolatedJobPool,
        slot: WorkerSlot
    ) {
        // The jobs in the worker, in the order sent; the first is the one running (the slot's).
        var pending = Deque([(delivery: delivery, definition: definition, context: context)])
        var mark = sources[delivery.sourceIndex].runStarting(delivery)
        // Set once the watchdog or the shutdown took the running job: what the worker says after is moot.
        var lost = false
        pool.run(
            IsolatedJob(delivery: delivery, context: context, timeout: definition.timeout),
            more: {
                guard !lost, let (next, nextDefinition) = monitor.withLock({ takeAheadLocked(slot, pool: pool) })
                else { return nil }
                let nextContext = jobContext(next, nextDefinition, slot: slot)
                pending.append((next, nextDefinition, nextContext))
                return IsolatedJob(delivery: next, context: nextContext, timeout: nextDefinition.timeout)
            },
            ended: { outcome in
                guard !lost, let done = pending.popFirst() else { return }
                // A worker killed after its job timed out is the timeout's doing, already reported.
                if case .crashed(let reason) = outcome, slot.state != .abandoned {
                    logger.warning(
                        "worker process crashed",
                        metadata: [
                            "queue": "\(done.context.queue)", "job": "\(done.delivery.jobType)", "reason": "\(reason)",
                        ])
                }
                let settled = jobEnded(
                    done.delivery, definition: done.definition, context: done.context, outcome: outcome, mark: mark,
                    slot: slot)
                lost = !settled
                // The next job sent ahead is the one the worker runs now, unless the worker died.
                if settled, !outcome.endedItsWorker, let next = slot.ahead.popFirst() {
                    startAheadLocked(next, slot: slot)
                    monitor.unlock()
                    mark = sources[next.delivery.sourceIndex].runStarting(next.delivery)
                } else {
                    monitor.unlock()
                }
            },
            cancellable: { cancel in
                monitor.withLock { slot.cancelProcess = cancel }
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
            // nothing says how it ended.
            sources[running.sourceIndex].settle(running, .release)
            monitor.lock()
            counters[running.queue.index].released += 1
            finishLocked(slot, outcome: nil, settlement: .release, cost: 0)
            return
        }
        monitor.lock()
    }

    /// The next job to send ahead to the worker process `slot` holds, taken from the scheduler, or nil:
    /// only the job the scheduler would pick next anyway, only when it is for the same pool, and only when
    /// no thread is idle (one would start it at once), no job must run alone, and the jobs already in the
    /// worker are expected to end within ``pipelineBudgetSeconds``.
    func takeAheadLocked(_ slot: WorkerSlot, pool: any IsolatedJobPool) -> (Delivery, QueueDefinition)? {
        guard slot.state == .running, phase.acceptsWork, exclusiveSlot == nil, idleWorkers == 0,
            liveThreads - stuckThreads <= configuration.workers, let running = slot.dispatch
        else { return nil }
        var expected = runSeconds[running.queue.index]
        for job in slot.ahead {
            expected += runSeconds[job.dispatch.queue.index]
        }
        let now = MonotonicClock.now
        guard let queue = scheduler.peek(now: now), processPools[queue.index] === pool,
            expected + runSeconds[queue.index] < Self.pipelineBudgetSeconds,
            buffers[queue.index].next?.suspect == false,
            let dispatch = scheduler.next(now: now)
        else { return nil }
        let (delivery, waitSeconds) = takeDeliveryLocked(dispatch)
        let definition = definitions[queue.index]
        slot.ahead.append(
            AheadJob(delivery: delivery, dispatch: dispatch, definition: definition, waitSeconds: waitSeconds))
        return (delivery, definition)
    }

    /// Makes a job sent ahead the slot's running job: the worker started it when it answered the one before.
    func startAheadLocked(_ job: AheadJob, slot: WorkerSlot) {
        let now = MonotonicClock.now
        slot.delivery = job.delivery
        slot.dispatch = job.dispatch
        slot.startedAt = now
        slot.deadline = now &+ UInt64(max(0, job.definition.timeout.seconds) * 1e9)
        slot.waitSeconds = job.waitSeconds
        slot.cancellation.reset()
        slot.setState(.running)
        busyWorkers += 1
        if slot.deadline < watchdogDeadline {
            watchdogWake.signal()
        }
    }

    /// Releases jobs that were sent ahead to a worker and never started: back to their sources with no
    /// attempt counted, and their slots back to the scheduler. Called without the monitor.
    func releaseUnstarted(_ jobs: [AheadJob]) {
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

    /// Keeps a running estimate of each queue's job run time, for how far ahead its jobs may be sent.
    func noteRunTime(_ seconds: Double, queue index: Int) {
        if runSeconds[index].isInfinite {
            runSeconds[index] = seconds
        } else {
            runSeconds[index] += 0.2 * (seconds - runSeconds[index])
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

/// A job sent ahead to a worker process behind the one it runs (pipelining): taken from the scheduler, not
/// started. Whoever takes the slot's running job from its thread (the watchdog, the shutdown) releases these.
struct AheadJob {
    var delivery: Delivery
    var dispatch: Dispatch
    var definition: QueueDefinition
    var waitSeconds: Double?
}

import DequeModule
import FairwayJobs
import FairwayScheduling
import Foundation
import Logging

/// The watchdog: cancels jobs past their timeout and replaces workers stuck in them.
extension Engine {
    // MARK: - Watchdog

    /// Starts the running job's clock at `now`: its run time counts from here and its deadline is `timeout`
    /// away; the watchdog is woken when that deadline is earlier than the one it waits for.
    func startClockLocked(_ slot: WorkerSlot, timeout: Duration, at now: UInt64) {
        slot.startedAt = now
        slot.deadline = now &+ UInt64(max(0, timeout.seconds) * 1e9)
        if slot.deadline < watchdogDeadline {
            watchdogWake.signal()
        }
    }

    /// Ends jobs that run past their queue's timeout: settles them as timed out, gives their slot back to
    /// the scheduler, and starts a replacement thread while the stuck handler keeps its own.
    func watchdogMain() {
        monitor.lock()
        while phase != .stopped {
            let now = MonotonicClock.now
            var expired: [(Dispatch, Delivery, QueueDefinition)] = []
            // Jobs sent ahead to the worker processes of expired jobs: they will not start there.
            var unstarted: [PipelinedJob] = []
            var earliest = UInt64.max
            for slot in slots where slot.state == .running {
                if slot.deadline <= now {
                    // The job leaves its slot and the thread counts as stuck in this hold of the monitor: the
                    // thread can be back (its handler or worker gave up at the cancel) before the settlement
                    // below. Counted there, another thread once left the pool for it, and it took a job into
                    // the slot that the settlement then counted out instead: that job ran with no timeout.
                    if slot.claim(.abandoned), let (dispatch, delivery) = takeJobLocked(from: slot) {
                        slot.cancelJob()
                        stuckThreads += 1
                        expired.append((dispatch, delivery, definitions[delivery.queue.index]))
                        unstarted.append(contentsOf: slot.ahead)
                        slot.ahead.removeAll()
                    }
                } else {
                    earliest = min(earliest, slot.deadline)
                }
            }
            if !expired.isEmpty {
                monitor.unlock()
                var settled: [(Dispatch, Delivery, JobOutcome, Settlement, Double)] = []
                for (dispatch, delivery, definition) in expired {
                    let outcome = JobOutcome.timedOut(after: definition.timeout)
                    let settlement = definition.retry.settlement(
                        for: outcome,
                        attempt: delivery.attempt,
                        random: Double.random(in: 0..<1)
                    )
                    sources[delivery.sourceIndex].settle(delivery, settlement)
                    observer?.jobEnded(
                        queue: definition.name, outcome: outcome, settlement: settlement,
                        runSeconds: definition.timeout.seconds, waitSeconds: nil
                    )
                    logger.warning(
                        "job timed out",
                        metadata: [
                            "queue": "\(definition.name)", "job": "\(delivery.jobType)",
                            "timeout": "\(definition.timeout.compactDescription)",
                        ]
                    )
                    settled.append((dispatch, delivery, outcome, settlement, definition.timeout.seconds))
                }
                releaseUnstarted(unstarted)
                monitor.lock()
                for (dispatch, delivery, outcome, settlement, cost) in settled {
                    countOutLocked(dispatch, delivery, outcome: outcome, settlement: settlement, cost: cost)
                }
                let replacements = configuration.maxReplacementWorkers
                while phase.acceptsWork && liveThreads - stuckThreads < configuration.workers
                    && liveThreads < configuration.workers + replacements
                {
                    spawnWorkerLocked()
                }
                continue
            }
            watchdogDeadline = earliest
            if earliest == .max {
                watchdogWake.wait()
            } else {
                watchdogWake.wait(until: earliest)
            }
        }
        monitor.unlock()
    }
}

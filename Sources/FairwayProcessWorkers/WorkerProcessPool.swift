import DequeModule
import FairwayRuntime
import Foundation
import NIOConcurrencyHelpers
import Synchronization

/// How a job sent to a worker process ended, as the supervisor saw it.
public enum WorkerRunResult: Sendable, Equatable {
    /// The worker answered with a result.
    case finished(WorkerMessage.Outcome, reason: String?)
    /// The worker died or broke the protocol while running the job: the job failed, the worker is gone.
    case crashed(reason: String)
    /// No worker could be started for it.
    case notStarted(reason: String)
}

/// A cancel action handed out while a job runs in a worker process: SIGTERM now, SIGKILL after the grace.
public struct WorkerCancel: Sendable {
    let action: @Sendable () -> Void
    public func callAsFunction() { action() }
}

/// Supervised worker processes for one ``ProcessWorkerSettings``: idle workers wait here between jobs, are
/// started when none is idle, and are replaced after a crash, a timeout or their recycling limits.
///
/// The pool never runs more workers at once than threads ask it for jobs; the engine's worker threads each
/// hold one worker process for the length of a job, or of a pipeline of jobs.
public final class WorkerProcessPool: Sendable {
    public let settings: ProcessWorkerSettings
    /// How long a new worker has to say hello.
    public let startTimeout: Duration

    private struct State {
        var idle: [WorkerProcess] = []
        /// Replacements starting in the background for workers near `recycleAfterJobs`, oldest first. A
        /// checkout that finds no worker idle takes one of these and waits for it, rather than start another.
        var starting: [PendingStart] = []
        var closed = false
        /// The replacements in `starting` that are up, waiting for a checkout.
        var ready: [WorkerProcess] {
            starting.compactMap { pending in
                guard case .success(let process)? = pending.outcome else { return nil }
                return process
            }
        }
        /// Started, crashed and recycled so far; `idle` is read from `idle` itself.
        var counts = WorkerProcessCounts()
    }
    private let state = NIOLockedValueBox(State())
    /// Jobs sent to a worker behind the one it ran, counted apart from `state`: every worker thread adds to
    /// it at every refill, and a lock shared by all of them for that was measurable with short jobs.
    private let sentAhead = Atomic<Int>(0)
    private let stderrSink: WorkerStderrRelay.Sink?

    /// - Parameter stderrSink: where each line a worker writes to stderr goes, with its pid and the queue
    ///   of the job it runs; nil leaves workers writing to this process's stderr.
    public init(
        settings: ProcessWorkerSettings, startTimeout: Duration = .seconds(30),
        stderrSink: (@Sendable (_ pid: pid_t, _ queue: String?, _ line: String) -> Void)? = nil
    ) {
        self.settings = settings
        self.startTimeout = startTimeout
        self.stderrSink = stderrSink
        // A worker that dies while the supervisor writes to it must cost an EPIPE, not the supervisor.
        signal(SIGPIPE, SIG_IGN)
    }

    /// Workers started, crashed (died mid-job or broke the protocol) and recycled so far, and idle now.
    public var counts: WorkerProcessCounts {
        var counts = state.withLockedValue { state in
            var counts = state.counts
            counts.idle = state.idle.count + state.ready.count
            return counts
        }
        counts.sentAhead = sentAhead.load(ordering: .relaxed)
        return counts
    }

    /// The process ids of the workers waiting for a job, for diagnostics.
    public var idleProcessIDs: [pid_t] {
        state.withLockedValue { $0.idle.map(\.pid) + $0.ready.map(\.pid) }
    }

    /// Runs one job in a worker process, on the calling thread, blocking it until the job ends.
    /// `started` receives the cancel action for this job once it is on its way.
    public func run(
        _ job: WorkerMessage,
        payload: [UInt8],
        started: (WorkerCancel) -> Void
    ) -> WorkerRunResult {
        var outcome = WorkerRunResult.notStarted(reason: "no result")
        let end = run(
            job, payload: payload, more: { _ in [] }, ended: { outcome = $0.last ?? outcome }, started: started)
        if case .notStarted(let reason) = end { return .notStarted(reason: reason) }
        return outcome
    }

    /// Runs `first` in a worker process, on the calling thread, and keeps the worker's pipeline full: while
    /// it holds fewer jobs than it accepts (the smaller of its hello's `pipeline` and the settings'
    /// `pipelineDepth`), `more` is asked for up to that many more, which are sent at once. `ended` receives
    /// the jobs' results in the order sent, as they arrive: every result one read brought, together, so
    /// that the caller settles them in one step. Returns when no job is outstanding, or when the worker died
    /// or was stopped: the job it was running is then reported crashed (last of its batch) and the jobs
    /// behind it are not reported at all, because they never started. When no worker could be started for
    /// `first`, nothing is reported to `ended`, and the returned end says why.
    @discardableResult
    public func run(
        _ first: WorkerMessage,
        payload: [UInt8],
        more: (Int) -> [(WorkerMessage, [UInt8])],
        ended: ([WorkerRunResult]) -> Void,
        started: (WorkerCancel) -> Void
    ) -> IsolatedRunEnd {
        var process: WorkerProcess
        do {
            process = try checkout()
            // An idle worker may have died while it waited (killed from outside, say): the job never
            // reached it, so it costs the job nothing; a new worker gets it.
            var tries = 0
            process.running(queue: first.queue)
            while process.hasExited || (try? process.channel.send(first, body: payload)) == nil {
                process.kill()
                let death = process.reap()
                tries += 1
                guard tries < 3 else {
                    state.withLockedValue { $0.counts.crashed += 1 }
                    ended([.crashed(reason: "worker process \(process.pid) \(death) before it could take the job")])
                    return .ran
                }
                state.withLockedValue { $0.counts.recycled += 1 }
                process = try spawn()
                process.running(queue: first.queue)
            }
        } catch {
            state.withLockedValue { $0.counts.failedStarts += 1 }
            return .notStarted(reason: error.description)
        }
        let grace = settings.killGrace
        started(WorkerCancel { [process] in process.terminate(grace: grace) })
        defer { process.running(queue: nil) }
        let depth = min(process.pipeline, settings.pipelineDepth)
        // The jobs sent and not answered, oldest (the one running) first: id and queue.
        var outstanding = Deque([(id: first.id ?? "", queue: first.queue)])
        var results: [WorkerRunResult] = []
        // Refilled before each read, and again after a read that answered every job sent: `more` may have
        // others.
        while true {
            startReplacementIfDue(process, outstanding: outstanding.count, depth: depth)
            let room = room(in: process, outstanding: outstanding.count, depth: depth)
            if room > 0 {
                let jobs = more(room)
                if !jobs.isEmpty {
                    for (job, body) in jobs {
                        process.channel.hold(job, body: body)
                        outstanding.append((job.id ?? "", job.queue))
                    }
                    // One write for all of them.
                    process.channel.flushWithoutWaiting()
                    sentAhead.add(jobs.count, ordering: .relaxed)
                    // After a read that answered every job, the worker runs these now.
                    process.running(queue: outstanding[0].queue)
                }
            }
            guard !outstanding.isEmpty else { break }
            // The next result, and every one after it that the same read brought, but not the last job's: that
            // one waits in the buffer for the next turn, after the refill above. Handed on now, it would leave
            // the caller no job running in the worker to send others behind, and the pipeline would end.
            results.removeAll(keepingCapacity: true)
            repeat {
                let result: WorkerMessage
                do {
                    result = try process.result(of: outstanding[0].id)
                } catch {
                    results.append(crashed(process, error))
                    ended(results)
                    return .ran
                }
                outstanding.removeFirst()
                results.append(.finished(result.outcome ?? .failure, reason: result.reason))
            } while outstanding.count > 1 && process.channel.hasBufferedMessage
            process.running(queue: outstanding.first?.queue)
            ended(results)
            if !outstanding.isEmpty && process.stopRequested {
                // Stopped on purpose with jobs still queued in it: they never start; the caller releases them.
                process.kill()
                process.reap()
                state.withLockedValue { $0.counts.recycled += 1 }
                return .ran
            }
        }
        checkin(process)
        return .ran
    }

    /// The worker died or broke the protocol while running a job: it is gone, and the job crashed, unless
    /// it was stopped on purpose (a timeout, the drain deadline), when it counts as replaced.
    private func crashed(_ process: WorkerProcess, _ error: WorkerProtocolError) -> WorkerRunResult {
        let stopped = process.stopRequested
        // The pipe closes as a worker dies, a little before it has exited when its runtime closes its files
        // first (PHP's exit() does): its own end is what the job is told, not the kill.
        if error == .closed { _ = process.exits(within: .seconds(1)) }
        process.kill()
        let death = process.reap()
        state.withLockedValue { state in
            if stopped {
                state.counts.recycled += 1
            } else {
                state.counts.crashed += 1
            }
        }
        if case .malformed(let detail) = error {
            return .crashed(reason: "worker process \(process.pid) broke the protocol (\(detail)) and was killed")
        }
        return .crashed(reason: "worker process \(process.pid) \(death) while running the job")
    }

    /// Stops every idle worker and makes later check-ins stop theirs.
    public func shutdown() {
        let idle = state.withLockedValue { state -> [WorkerProcess] in
            state.closed = true
            // Replacements still starting are retired by their own thread when they are up.
            defer {
                state.idle.removeAll()
                state.starting.removeAll { $0.outcome != nil }
            }
            return state.idle + state.ready
        }
        for process in idle {
            process.retire(grace: settings.killGrace)
        }
    }

    private func checkout() throws(WorkerStartError) -> WorkerProcess {
        // An idle worker first; a replacement started ahead of need only when none is idle, so that the
        // worker it replaces is the one taken until it reaches its limit (else it could wait idle at its
        // limit while its replacement works, and start its own replacement in turn).
        let found = state.withLockedValue { state -> (idle: WorkerProcess?, starting: PendingStart?) in
            if let process = state.idle.popLast() { return (process, nil) }
            guard !state.starting.isEmpty else { return (nil, nil) }
            // One that is up already, else the oldest.
            let pending = state.starting.remove(at: state.starting.firstIndex { $0.outcome != nil } ?? 0)
            pending.claimed = true
            return (nil, pending)
        }
        if let process = found.idle {
            return process
        }
        // Ready, or sooner ready than a new start. If it failed, a start here says why, to the job that needs it.
        if let pending = found.starting, case .success(let process) = pending.handover.wait() {
            return process
        }
        return try spawn()
    }

    /// Starts the worker that will replace `process`, in the background, once `process` has been sent
    /// nearly `recycleAfterJobs` jobs (all but a tenth, or its pipeline's depth if more): when it is retired
    /// the replacement is ready, and the thread that needs it does not wait for a start (tens of
    /// milliseconds for the Swift worker, seconds for a framework's boot). A worker retired for its memory
    /// cannot be foreseen: its replacement starts when it is needed.
    private func startReplacementIfDue(_ process: WorkerProcess, outstanding: Int, depth: Int) {
        let limit = settings.recycleAfterJobs
        guard limit > 0, !process.replacementStarted, process.jobsSent(outstanding) >= limit - max(depth, limit / 10)
        else { return }
        process.replacementStarted = true
        let pending = PendingStart()
        let open = state.withLockedValue { state -> Bool in
            guard !state.closed else { return false }
            state.starting.append(pending)
            return true
        }
        guard open else { return }
        let thread = Thread { [self] in
            let result: Result<WorkerProcess, WorkerStartError>
            do throws(WorkerStartError) {
                result = .success(try spawn())
            } catch {
                result = .failure(error)
            }
            let (handOver, retire) = state.withLockedValue { state -> (Bool, WorkerProcess?) in
                pending.outcome = result
                if pending.claimed { return (true, nil) }
                switch result {
                case .success(let process) where state.closed:
                    state.starting.removeAll { $0 === pending }
                    return (false, process)
                case .success:
                    // Ready in `starting` until a checkout finds no worker idle.
                    return (true, nil)
                case .failure:
                    // Nobody waits for it: the checkout that needs a worker starts one and reports why not.
                    state.starting.removeAll { $0 === pending }
                    return (false, nil)
                }
            }
            if handOver {
                pending.handover.fulfil(result)
            }
            retire?.retire(grace: settings.killGrace)
        }
        thread.name = "fairway-worker-start"
        thread.start()
    }

    private func spawn() throws(WorkerStartError) -> WorkerProcess {
        let process = try WorkerProcess.spawn(
            command: settings.command, directory: settings.workingDirectory, startTimeout: startTimeout,
            stderrSink: stderrSink, memoryLimitBytes: settings.memoryLimitBytes)
        state.withLockedValue { $0.counts.started += 1 }
        return process
    }

    /// How many more jobs `process` may be sent now: up to its pipeline's depth, none once it is stopping,
    /// and none past recycling. A worker kept busy by its pipeline is sent no more than `recycleAfterJobs`
    /// jobs, nor any once it is above `recycleAboveMemoryMB` (looked at every 1,024 jobs, since reading /proc
    /// costs about as much as a no-op job): its pipeline then runs out and the check-in replaces it. Else a
    /// worker that always has a job behind the one it runs would never be recycled.
    private func room(in process: WorkerProcess, outstanding: Int, depth: Int) -> Int {
        guard !process.stopRequested, !process.overMemoryLimit else { return 0 }
        var room = depth - outstanding
        if settings.recycleAfterJobs > 0 {
            room = min(room, settings.recycleAfterJobs - process.jobsSent(outstanding))
        }
        if room > 0, settings.recycleAboveMemoryBytes > 0, process.jobsRun >= process.jobsAtMemoryCheck + 1_024 {
            process.jobsAtMemoryCheck = process.jobsRun
            if let resident = process.residentBytes, resident > settings.recycleAboveMemoryBytes {
                process.overMemoryLimit = true
                return 0
            }
        }
        return max(0, room)
    }

    private func checkin(_ process: WorkerProcess) {
        var retire = process.stopRequested || process.overMemoryLimit
        if !retire, settings.recycleAfterJobs > 0, process.jobsRun >= settings.recycleAfterJobs {
            retire = true
        }
        // Reading /proc costs a few per cent of a no-op job: look after the first job, then every 32 or more
        // (a pipelined worker comes back after several jobs at once).
        if !retire, settings.recycleAboveMemoryBytes > 0,
            process.jobsRun >= process.jobsAtMemoryCheck + 32 || process.jobsAtMemoryCheck == 0
        {
            process.jobsAtMemoryCheck = max(1, process.jobsRun)
            if let resident = process.residentBytes, resident > settings.recycleAboveMemoryBytes {
                retire = true
            }
        }
        let kept = state.withLockedValue { state -> Bool in
            if retire || state.closed {
                state.counts.recycled += retire ? 1 : 0
                return false
            }
            state.idle.append(process)
            return true
        }
        if !kept {
            process.retire(grace: settings.killGrace)
        }
    }
}

/// A worker started in the background ahead of need: starting, or ready and not yet taken.
private final class PendingStart: @unchecked Sendable {
    // Unchecked Sendable: `outcome` and `claimed` are read and written only under the pool's `state` lock;
    // `handover` is a OneShot.
    /// How the start ended; nil while it runs.
    var outcome: Result<WorkerProcess, WorkerStartError>?
    /// A checkout took it from `starting` and waits on `handover`.
    var claimed = false
    let handover = OneShot<Result<WorkerProcess, WorkerStartError>>()
}

import DequeModule
import FairwayJobs
import FairwayScheduling
import Synchronization

/// The job one worker thread is running, shared between that worker and the watchdog. Whoever moves
/// `state` away from `running` first settles the job; the other leaves it alone. So a job is settled once,
/// even when its handler returns at the very moment it times out.
final class WorkerSlot: @unchecked Sendable {
    // Unchecked Sendable: `state` is an atomic; the other vars are guarded by the engine's monitor.
    enum State: UInt8 {
        case idle = 0
        case running = 1
        /// The worker finished the job and is settling it.
        case finishing = 2
        /// The watchdog (timeout) or the shutdown (drain deadline) took the job from the worker.
        case abandoned = 3
    }

    let number: Int
    private let rawState = Atomic<UInt8>(State.idle.rawValue)
    let cancellation = CancellationFlag()

    // Guarded by the engine's monitor.
    var delivery: Delivery?
    var dispatch: Dispatch?
    var startedAt: UInt64 = 0
    var deadline: UInt64 = .max
    var waitSeconds: Double?
    var task: Task<Void, Never>?
    /// Stops the worker process running this slot's job, when it runs in one.
    var cancelProcess: (@Sendable () -> Void)?
    /// Jobs sent ahead to that worker process behind the running one, oldest first (pipelining).
    var ahead: Deque<PipelinedJob> = []

    // Touched only by the slot's own thread.
    private var ownExecutor: WorkerThreadExecutor?

    init(number: Int) {
        self.number = number
    }

    var state: State { State(rawValue: rawState.load(ordering: .acquiring))! }

    func setState(_ state: State) {
        rawState.store(state.rawValue, ordering: .releasing)
    }

    /// Moves `running` to `to`; false when someone else got there first.
    func claim(_ to: State) -> Bool {
        rawState.compareExchange(
            expected: State.running.rawValue, desired: to.rawValue, ordering: .acquiringAndReleasing
        )
        .exchanged
    }

    var executor: WorkerThreadExecutor {
        if let ownExecutor { return ownExecutor }
        let made = WorkerThreadExecutor()
        ownExecutor = made
        return made
    }
}

extension WorkerSlot {
    /// Tells whatever runs the job to stop: the flag a handler polls, its task, its worker process.
    func cancelJob() {
        cancellation.cancel()
        task?.cancel()
        cancelProcess?()
    }
}

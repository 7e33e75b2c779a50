import FairwayJobs
import Logging

/// How the engine runs the jobs of process-isolated queues (``Isolation/process(_:)``): the seam through
/// which the runtime reaches worker processes without knowing how they are started or spoken to. The
/// runtime defines it and `FairwayProcessWorkers` implements it (`WorkerProcesses`), the way NIOCore
/// defines what NIOPosix implements; the program that builds the engine passes the implementation.
public protocol ProcessIsolation: Sendable {
    /// A pool of worker processes with these settings. The engine makes one per distinct settings,
    /// shared by every queue that names them.
    func makePool(settings: ProcessWorkerSettings, logger: Logger) -> any IsolatedJobPool
}

/// Worker processes that run jobs for the engine's worker threads.
public protocol IsolatedJobPool: AnyObject, Sendable {
    /// Runs one job in a worker process, blocking the calling worker thread until it ends, and says how
    /// it ended. `cancellable` receives, once the job is on its way, the action that stops it (its
    /// timeout passed, or a drain ended).
    func run(
        _ delivery: Delivery, context: JobContext, timeout: Duration,
        cancellable: (@escaping @Sendable () -> Void) -> Void
    ) -> JobOutcome

    /// What the pool's supervisors have seen so far.
    var counts: WorkerProcessCounts { get }

    /// Stops every idle worker; busy ones stop when their job ends.
    func shutdown()
}

/// What the supervisors of worker processes have seen.
public struct WorkerProcessCounts: Sendable, Hashable {
    /// Worker processes started.
    public var started = 0
    /// Worker processes that died mid-job or broke the protocol.
    public var crashed = 0
    /// Worker processes replaced after their job count or memory limit, or after a timeout.
    public var recycled = 0
    /// Worker processes waiting for a job now.
    public var idle = 0

    public init() {}

    /// The counts of two pools together.
    public static func + (left: Self, right: Self) -> Self {
        var sum = left
        sum.started += right.started
        sum.crashed += right.crashed
        sum.recycled += right.recycled
        sum.idle += right.idle
        return sum
    }
}

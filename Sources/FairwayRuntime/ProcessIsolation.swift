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

/// One job for a worker process: what the engine delivered, the context its handler would see, and how
/// long it may run.
public struct IsolatedJob: Sendable {
    public var delivery: Delivery
    public var context: JobContext
    public var timeout: Duration

    public init(delivery: Delivery, context: JobContext, timeout: Duration) {
        self.delivery = delivery
        self.context = context
        self.timeout = timeout
    }
}

/// Worker processes that run jobs for the engine's worker threads.
public protocol IsolatedJobPool: AnyObject, Sendable {
    /// Runs `first` in a worker process, blocking the calling worker thread until it and every job sent
    /// after it have ended.
    ///
    /// A worker that accepts a pipeline (it said so in its hello) is sent more jobs while it runs one, so
    /// that it never waits on a pipe between two: while fewer than its pipeline's depth are outstanding the
    /// pool asks `more` for up to that many more, and it returns those the engine has to send ahead (none
    /// at all, often). The worker runs them one at a time in order, and `ended` receives their outcomes in
    /// that order, the moment they are known: each call the outcomes of every answer that one read of the
    /// worker's output brought, so that the engine settles them together. When the worker dies, the job
    /// it was running is reported crashed (last in its call) and the jobs behind it are not reported: they
    /// never started, and the caller releases them. `cancellable` receives, once the first job is on its
    /// way, the action that stops the worker (a timeout passed, or a drain ended). When no worker could be
    /// started for `first`, nothing is reported to `ended`: the run's end says so, and the job, which never
    /// ran, is the caller's to release.
    @discardableResult
    func run(
        _ first: IsolatedJob,
        more: (Int) -> [IsolatedJob],
        ended: ([JobOutcome]) -> Void,
        cancellable: (@escaping @Sendable () -> Void) -> Void
    ) -> IsolatedRunEnd

    /// The most jobs this pool's settings let one worker process hold at once (1: no pipelining).
    var pipelineLimit: Int { get }

    /// What the pool's supervisors have seen so far.
    var counts: WorkerProcessCounts { get }

    /// Stops every idle worker; busy ones stop when their job ends.
    func shutdown()
}

/// How an ``IsolatedJobPool/run(_:more:ended:cancellable:)`` ended.
public enum IsolatedRunEnd: Sendable, Equatable {
    /// A worker process took the first job; `ended` was told what became of it and of the jobs after it.
    case ran
    /// No worker process could be started (the program is missing, exits at once, or never says hello):
    /// the first job never ran and is charged nothing; `reason` says why the start failed.
    case notStarted(reason: String)
}

/// What the supervisors of worker processes have seen.
public struct WorkerProcessCounts: Sendable, Hashable {
    /// Worker processes started.
    public var started = 0
    /// Worker processes that died mid-job or broke the protocol.
    public var crashed = 0
    /// Worker processes replaced after their job count or memory limit, or after a timeout.
    public var recycled = 0
    /// Worker processes that could not be started (no hello, or the program could not run).
    public var failedStarts = 0
    /// Worker processes waiting for a job now.
    public var idle = 0
    /// Jobs sent to a worker process before it answered the one it was running (pipelining).
    public var sentAhead = 0

    public init() {}

    /// The counts of two pools together.
    public static func + (left: Self, right: Self) -> Self {
        var sum = left
        sum.started += right.started
        sum.crashed += right.crashed
        sum.recycled += right.recycled
        sum.failedStarts += right.failedStarts
        sum.idle += right.idle
        sum.sentAhead += right.sentAhead
        return sum
    }
}

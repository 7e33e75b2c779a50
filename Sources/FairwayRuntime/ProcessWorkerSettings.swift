/// How the worker processes of a process-isolated queue are started and recycled.
public struct ProcessWorkerSettings: Sendable, Hashable {
    /// The program and its arguments. Empty means the running program itself, re-executed as a worker, so
    /// the handlers it registered run unchanged.
    public var command: [String]
    /// A worker is replaced after this many jobs (a leak costs a restart, never the process). 0: never.
    public var recycleAfterJobs: Int
    /// A worker whose resident memory exceeds this after a job is replaced. 0: never.
    public var recycleAboveMemoryBytes: Int
    /// After a job's timeout the worker is asked to stop (SIGTERM); past this grace it is killed (SIGKILL).
    public var killGrace: Duration

    public init(
        command: [String] = [],
        recycleAfterJobs: Int = 10_000,
        recycleAboveMemoryBytes: Int = 512 << 20,
        killGrace: Duration = .seconds(2)
    ) {
        self.command = command
        self.recycleAfterJobs = max(0, recycleAfterJobs)
        self.recycleAboveMemoryBytes = max(0, recycleAboveMemoryBytes)
        self.killGrace = killGrace
    }
}

import FairwayScheduling

/// Everything the runtime knows about one queue: how the scheduler treats it, how long its jobs may run,
/// how failures are retried, and how many of its jobs may be held locally.
public struct QueueDefinition: Sendable, Hashable {
    public var name: String
    public var settings: QueueSettings
    /// A job running longer than this is cancelled and counted as timed out.
    public var timeout: Duration
    public var retry: RetryPolicy
    /// The most deliveries of this queue held locally and unsettled (the source's prefetch for it).
    public var credit: Int
    /// Where the queue's jobs run: on the pool's threads, or in supervised worker processes.
    public var isolation: Isolation

    public init(
        name: String,
        settings: QueueSettings = QueueSettings(),
        timeout: Duration = .seconds(1800),
        retry: RetryPolicy = RetryPolicy(),
        credit: Int = 32,
        isolation: Isolation = .thread
    ) {
        self.isolation = isolation
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.retry = retry
        self.credit = max(1, credit)
    }
}

/// Where a queue's jobs run.
public enum Isolation: Sendable, Hashable {
    /// On a worker thread of this process: cheapest, but a handler that traps ends the process.
    case thread
    /// In a supervised worker process: a trap, a segfault or an OOM kill costs that job and that worker only.
    case process(ProcessWorkerSettings)
}

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
    /// The most jobs of this queue held or running at once across every consumer of its source, every
    /// process included, or nil for no such cap. The source enforces it (docs/global-concurrency.md):
    /// SQLite counts the leases in the shared file, RabbitMQ gives the queue a single active consumer with
    /// this prefetch. It also bounds this process's `credit` and `settings.maxConcurrency`.
    public var globalConcurrency: Int?
    /// The ``QueueGroup`` the queue belongs to, by name, or nil: it then competes on its own.
    public var group: String?
    /// How the queue's jobs share it by fairness key (tenant), or nil when keys are not used for fairness.
    public var keys: KeyFairness?
    /// True when `name` is a pattern (`tenant-*`): the queue serves every queue of a matching name that
    /// a job is enqueued to, each as one fairness key of it (docs/tenants.md).
    public var isPattern: Bool { name.contains("*") }
    /// How the queue's held jobs are shared by key: its `keys`, or equal shares between the queues a pattern
    /// admits; nil when the queue does not share by key.
    public var keySharing: KeyFairness? { keys ?? (isPattern ? KeyFairness() : nil) }

    public init(
        name: String,
        settings: QueueSettings = QueueSettings(),
        timeout: Duration = .seconds(1800),
        retry: RetryPolicy = RetryPolicy(),
        credit: Int = 32,
        isolation: Isolation = .thread,
        globalConcurrency: Int? = nil,
        group: String? = nil,
        keys: KeyFairness? = nil
    ) {
        self.keys = keys
        self.group = group
        self.isolation = isolation
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.retry = retry
        self.credit = max(1, credit)
        self.globalConcurrency = globalConcurrency.map { max(1, $0) }
        if let cap = self.globalConcurrency {
            self.credit = min(self.credit, cap)
            self.settings.maxConcurrency = min(self.settings.maxConcurrency, cap)
        }
    }
}

/// Where a queue's jobs run.
public enum Isolation: Sendable, Hashable {
    /// On a worker thread of this process: cheapest, but a handler that traps ends the process.
    case thread
    /// In a supervised worker process: a trap, a segfault or an OOM kill costs that job and that worker only.
    case process(ProcessWorkerSettings)
}

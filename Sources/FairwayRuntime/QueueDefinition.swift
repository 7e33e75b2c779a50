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

    public init(
        name: String,
        settings: QueueSettings = QueueSettings(),
        timeout: Duration = .seconds(1800),
        retry: RetryPolicy = RetryPolicy(),
        credit: Int = 32
    ) {
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.retry = retry
        self.credit = max(1, credit)
    }
}

import Logging
import Synchronization

/// What a running job may know about itself: where it came from, which attempt this is, when it must end.
///
/// A handler never learns which source (SQLite, AMQP) delivered its job.
public struct JobContext: Sendable {
    /// The queue the job was taken from.
    public let queue: String
    /// The job type, as registered.
    public let jobType: String
    /// The job's id at its source (a row id, a message id): stable across attempts, so handlers can use it
    /// as an idempotency key.
    public let jobID: String
    /// 1 for the first run of this job, 2 for the first retry, and so on.
    public let attempt: Int
    /// How many attempts the queue's retry policy allows in all.
    public let maxAttempts: Int
    /// The instant by which the job must end; past it the job counts as timed out and is cancelled.
    public let deadline: ContinuousClock.Instant
    /// The job's fairness key (its tenant) when it was enqueued with one, or nil.
    public var fairnessKey: String?
    let cancellation: CancellationFlag
    let baseLogger: Logger

    public init(
        queue: String,
        jobType: String,
        jobID: String = "",
        attempt: Int,
        maxAttempts: Int,
        deadline: ContinuousClock.Instant,
        cancellation: CancellationFlag = CancellationFlag(),
        logger: Logger
    ) {
        self.queue = queue
        self.jobType = jobType
        self.jobID = jobID
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.deadline = deadline
        self.cancellation = cancellation
        self.baseLogger = logger
    }

    /// True once the job has passed its deadline or the process is shutting down past its drain timeout.
    /// Long-running blocking handlers should check it between steps.
    public var isCancelled: Bool { cancellation.isCancelled }

    /// Throws `CancellationError` when ``isCancelled`` is true.
    public func checkCancellation() throws {
        if isCancelled { throw CancellationError() }
    }

    /// A logger that carries the job's queue, type and attempt as metadata.
    public var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "queue"] = "\(queue)"
        logger[metadataKey: "job"] = "\(jobType)"
        logger[metadataKey: "id"] = "\(jobID)"
        logger[metadataKey: "attempt"] = "\(attempt)"
        return logger
    }
}

/// A flag a job can poll to learn that it should stop; set by the runtime, never cleared while the job runs.
public final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public var isCancelled: Bool { flag.load(ordering: .acquiring) }

    public func cancel() { flag.store(true, ordering: .releasing) }

    /// Makes the flag usable for another job. Only the runtime calls this, between jobs.
    public func reset() { flag.store(false, ordering: .releasing) }
}

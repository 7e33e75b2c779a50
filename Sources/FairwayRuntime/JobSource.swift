import FairwayScheduling

/// A job handed from a source to the runtime: not yet started, held locally until a worker takes it.
public struct Delivery: Sendable {
    /// The queue, as numbered by the runtime in the bindings it gave the source.
    public var queue: QueueID
    /// The job type, which selects the handler.
    public var jobType: String
    /// The job's parameters, JSON by convention, undecoded.
    public var payload: [UInt8]
    /// 1 for the first run of this job. A run counts once it started: a job that was delivered but never
    /// started (held when its process died, or released) keeps its count.
    public var attempt: Int
    /// When the job was enqueued (wall-clock nanoseconds since 1970), when the source knows it.
    public var enqueuedAt: UInt64?
    /// The source's own handle for the job, given back with the settlement.
    public var receipt: UInt64
    /// The source's durable name for the job, the same on every delivery of it (a row id, a hash of a
    /// message): what a crash is charged to. 0 when the source has none.
    public var key: UInt64
    /// The job's id as its producer was told it (a row id, an AMQP message id), the same on every attempt:
    /// what a handler sees as `JobContext.jobID`. Nil when the source has none; the receipt stands in.
    public var jobID: String?
    /// True when the job's last run ended with its process (a crash?). It then runs alone, with no other job
    /// beside it, so that if it takes the process down again the crash is charged to it and to nothing else.
    public var suspect: Bool
    /// The job's fairness key (a tenant id) within its queue, or nil: where the queue shares by key, keys
    /// share its service fairly (``KeyFairBuffer``). A pattern queue shares by `queueName` instead.
    public var fairnessKey: String?
    /// The name the job was enqueued under when it differs from its queue's: a queue admitted at run
    /// time by a pattern (`tenant-*`) is served as the pattern, and this keeps the job's own queue name.
    public var queueName: String?
    /// Which of the runtime's sources delivered the job; set by the runtime.
    public internal(set) var sourceIndex: Int = 0

    public init(
        queue: QueueID,
        jobType: String,
        payload: [UInt8],
        attempt: Int,
        enqueuedAt: UInt64? = nil,
        receipt: UInt64,
        key: UInt64 = 0,
        jobID: String? = nil,
        suspect: Bool = false,
        fairnessKey: String? = nil,
        queueName: String? = nil
    ) {
        self.fairnessKey = fairnessKey
        self.queueName = queueName
        self.jobID = jobID
        self.queue = queue
        self.jobType = jobType
        self.payload = payload
        self.attempt = attempt
        self.enqueuedAt = enqueuedAt
        self.receipt = receipt
        self.key = key
        self.suspect = suspect
    }
}

/// What becomes of a delivery. A source makes the settlement durable before it counts the delivery's credit
/// as returned: retry and dead-letter copies are written before the original is removed.
public enum Settlement: Sendable, Hashable {
    /// The job succeeded: remove it.
    case ack
    /// Run the job again no sooner than `after`; `reason` is kept as its last error.
    case retry(after: Duration, reason: String)
    /// Move the job to the dead letters with the reason; it will not run again unless requeued.
    case deadLetter(reason: String)
    /// The job did not run (or its run was abandoned at shutdown): make it available again as it was,
    /// without counting the attempt.
    case release
}

/// A queue a source is asked to serve: the runtime's identifier for it, its name, and how many unsettled
/// deliveries the source may hand over at once (its credit, or prefetch).
public struct QueueBinding: Sendable, Hashable {
    public let id: QueueID
    public let name: String
    public let credit: Int
    /// The most jobs of the queue held or running at once across every consumer of the source, or nil.
    /// A source that has consumers in other processes enforces it with what it shares with them.
    public let globalConcurrency: Int?
    /// How the queue's jobs share it by fairness key, or nil when they do not: a source that can should
    /// hand over jobs of every key in turn rather than the oldest first, so that one key's backlog does not
    /// fill the queue's credit. For a pattern queue the keys are the queue names it admits (the runtime
    /// passes ``QueueDefinition/keySharing``).
    public let keys: KeyFairness?
    /// Set when `name` is a pattern: the source serves every queue whose name it matches (and that no
    /// binding names outright) as this one, each as a key.
    public let pattern: QueuePattern?

    public init(
        id: QueueID, name: String, credit: Int, globalConcurrency: Int? = nil, keys: KeyFairness? = nil
    ) {
        self.pattern = QueuePattern(name)
        self.keys = keys
        self.id = id
        self.name = name
        self.credit = credit
        self.globalConcurrency = globalConcurrency
    }
}

/// Where a source pushes deliveries. Calls never block on a worker and may come from any thread.
public protocol DeliverySink: Sendable {
    func deliver(_ delivery: Delivery)
    func deliver(contentsOf deliveries: [Delivery])
    /// Takes back held, not-started deliveries of this source for which `predicate` is true, e.g. when the
    /// connection they came on is lost and the broker will deliver them again. They are not settled.
    /// Returns how many were taken back.
    @discardableResult
    func withdrawHeld(where predicate: @escaping @Sendable (Delivery) -> Bool) -> Int
}

/// A place jobs come from and are settled back to: the boundary between the runtime and a broker or
/// a database. A source pushes; it is never polled by the runtime.
///
/// For each bound queue the source keeps at most `credit` deliveries unsettled; a settlement returns one
/// unit of credit, and the source may then push another job of that queue. That bound is what keeps
/// memory flat whatever the backlog, and what leaves the choice between queues to the scheduler.
public protocol JobSource: AnyObject, Sendable {
    /// A short name for logs and errors, e.g. "sqlite" or "amqp".
    var name: String { get }

    /// Begins pushing deliveries of the given queues into `sink`. Returns once the source is serving.
    func start(queues: [QueueBinding], sink: any DeliverySink) throws

    /// Settles a delivery. May be called from any worker thread; must not wait on a worker.
    func settle(_ delivery: Delivery, _ settlement: Settlement)

    /// Settles several deliveries, in order: the jobs a worker process answered together. A source that
    /// can take them in one step (one hold of its lock, one push of the next jobs) should; the default
    /// settles each in turn.
    func settle(contentsOf settlements: [(Delivery, Settlement)])

    /// Stops handing out deliveries: after it returns the source pushes nothing more. Settlements are
    /// still accepted, so that jobs already running can finish.
    func stopDelivering()

    /// Makes every settlement given so far durable and lets go of connections and files. The runtime
    /// settles nothing after this.
    func close()

    /// Called on the worker thread right before a delivery's handler runs. A source that counts attempts
    /// records here, so that the record outlives the process, that the job is running: if the process
    /// dies before ``runEnded(_:)``, the job is charged the attempt on restart, and jobs merely held are not.
    func runStarting(_ delivery: Delivery) -> RunJournal.Mark

    /// Called when the handler of the run marked by `mark` returned, before its settlement.
    func runEnded(_ mark: RunJournal.Mark)
}

extension JobSource {
    public func settle(contentsOf settlements: [(Delivery, Settlement)]) {
        for (delivery, settlement) in settlements {
            settle(delivery, settlement)
        }
    }

    /// Records nothing: a source that cannot outlive its process has no crash to charge.
    public func runStarting(_ delivery: Delivery) -> RunJournal.Mark { .none }
    public func runEnded(_ mark: RunJournal.Mark) {}
}

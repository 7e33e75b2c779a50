import FairwayScheduling

/// Counters of one queue since the engine started.
public struct QueueSnapshot: Sendable, Hashable {
    public var name: String
    public var settings: QueueSettings
    /// The group the queue belongs to, or nil.
    public var group: String?
    /// Deliveries held locally, not yet started.
    public var held: Int
    /// Jobs running now.
    public var inFlight: Int
    /// Fairness keys (tenants, or queues admitted by a pattern) with jobs held or running; 0 for a queue
    /// that does not share by key.
    public var activeKeys: Int = 0
    /// When the oldest held job was enqueued (wall-clock nanoseconds since 1970), when known.
    public var oldestHeldEnqueuedAt: UInt64?
    public var succeeded: Int = 0
    /// Runs that threw (each is then retried or dead-lettered).
    public var failed: Int = 0
    public var timedOut: Int = 0
    /// Runs whose worker process died under them.
    public var crashed: Int = 0
    /// Runs that could never succeed (unknown type, undecodable payload, a permanent error).
    public var rejected: Int = 0
    /// Settlements by kind.
    public var retried: Int = 0
    public var deadLettered: Int = 0
    public var released: Int = 0
    /// Worker-seconds spent on this queue's jobs, as measured.
    public var busySeconds: Double = 0
    /// Starts of a worker process for this queue's jobs that failed in a row (0 once one starts): the queue
    /// is then held off, its jobs waiting, charged nothing (`heldOffSeconds`).
    public var failedWorkerStarts: Int = 0
    /// Seconds until the queue is picked again after a worker process could not start, or nil when it is
    /// not held off.
    public var heldOffSeconds: Double?
    /// Seconds jobs waited between enqueue and start, summed, over `waitSamples` jobs.
    public var waitSeconds: Double = 0
    public var waitSamples: Int = 0

    /// Runs that ended, whatever their outcome.
    public var completed: Int { succeeded + failed + timedOut + crashed + rejected }
}

/// A consistent view of the engine at one instant.
public struct EngineSnapshot: Sendable {
    public var queues: [QueueSnapshot]
    /// The pool's target size.
    public var workers: Int
    /// Workers running a job now.
    public var busyWorkers: Int
    /// Threads held by handlers that ran past their timeout and have not returned.
    public var stuckWorkers: Int
    /// Deliveries held locally across all queues, not yet started.
    public var held: Int { queues.reduce(0) { $0 + $1.held } }
    public var draining: Bool
    /// True until every source has started: the process already serves HTTP, but is not ready.
    public var starting = false
    /// Worker processes of process-isolated queues, all pools together.
    public var workerProcesses = WorkerProcessCounts()
}

extension QueueSnapshot {
    /// How long the oldest job of this queue waiting to start has waited, in seconds: the older of the
    /// source's oldest ready job (`sourceAge`) and the oldest job held here, by its enqueue time.
    public func oldestWaitingSeconds(sourceAge: Double?, wallNow: UInt64) -> Double {
        var age = sourceAge ?? 0
        if let heldSince = oldestHeldEnqueuedAt, wallNow > heldSince {
            age = max(age, Double(wallNow - heldSince) / 1e9)
        }
        return age
    }
}

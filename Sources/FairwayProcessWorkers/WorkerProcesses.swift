import FairwayJobs
import FairwayRuntime
import Logging

/// Worker processes as the engine's ``ProcessIsolation``: pass it to `Engine` when any queue says
/// `isolation: process`.
public struct WorkerProcesses: ProcessIsolation {
    public init() {}

    public func makePool(settings: ProcessWorkerSettings, logger: Logger) -> any IsolatedJobPool {
        // Each stderr line of a worker becomes a log line naming its queue and pid: a traceback says whose
        // it is, and a JSON log keeps it one record.
        let pool = WorkerProcessPool(settings: settings) { pid, queue, line in
            logger.notice("\(line)", metadata: ["worker": "\(pid)", "queue": "\(queue ?? "-")"])
        }
        return ProcessJobPool(pool: pool, logger: logger)
    }
}

/// A ``WorkerProcessPool`` speaking the engine's terms: a delivery in, a job outcome out.
final class ProcessJobPool: IsolatedJobPool {
    let pool: WorkerProcessPool
    let logger: Logger

    init(pool: WorkerProcessPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    var counts: WorkerProcessCounts { pool.counts }

    func shutdown() { pool.shutdown() }

    func run(
        _ delivery: Delivery, context: JobContext, timeout: Duration,
        cancellable: (@escaping @Sendable () -> Void) -> Void
    ) -> JobOutcome {
        let job = WorkerMessage.job(
            id: context.jobID, queue: context.queue, jobType: delivery.jobType, attempt: delivery.attempt,
            maxAttempts: context.maxAttempts, timeoutSeconds: timeout.seconds)
        let result = pool.run(job, payload: delivery.payload) { cancel in cancellable { cancel() } }
        switch result {
        case .finished(.success, _):
            return .succeeded
        case .finished(.failure, let reason):
            return .failed(reason: reason ?? "the worker reported a failure without a reason")
        case .finished(.rejected, let reason):
            return .rejected(reason: reason ?? "the worker rejected the job without a reason")
        case .crashed(let reason):
            return .crashed(reason: reason)
        case .notStarted(let reason):
            logger.error(
                "worker process could not start", metadata: ["queue": "\(context.queue)", "reason": "\(reason)"])
            return .failed(reason: reason)
        }
    }
}

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

    var pipelineLimit: Int { pool.settings.pipelineDepth }

    func run(
        _ first: IsolatedJob,
        more: (Int) -> [IsolatedJob],
        ended: ([JobOutcome]) -> Void,
        cancellable: (@escaping @Sendable () -> Void) -> Void
    ) -> IsolatedRunEnd {
        pool.run(
            Self.message(for: first), payload: first.delivery.payload,
            more: { more($0).map { (Self.message(for: $0), $0.delivery.payload) } },
            ended: { ended($0.map(Self.outcome(of:))) },
            started: { cancel in cancellable { cancel() } })
    }

    private static func message(for job: IsolatedJob) -> WorkerMessage {
        WorkerMessage.job(
            id: job.context.jobID, queue: job.context.queue, jobType: job.delivery.jobType,
            attempt: job.delivery.attempt, maxAttempts: job.context.maxAttempts, timeoutSeconds: job.timeout.seconds,
            key: job.context.fairnessKey)
    }

    private static func outcome(of result: WorkerRunResult) -> JobOutcome {
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
            // Never among a run's results: a start that failed is the run's end (`run`), and its job released.
            return .failed(reason: reason)
        }
    }
}

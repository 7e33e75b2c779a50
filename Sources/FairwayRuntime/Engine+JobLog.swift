import FairwayJobs
import Logging

extension Engine {
    /// One structured line per job that did not simply succeed: what happened (failed, timed out,
    /// crashed, rejected) and what becomes of it (retried after a delay, dead-lettered), with the queue,
    /// type, id and attempt. Successes at debug level, so an operator can see every job when asked.
    func logJob(
        _ delivery: Delivery, context makeContext: @autoclosure () -> JobContext, outcome: JobOutcome,
        settlement: Settlement, seconds: Double
    ) {
        // A success is logged at debug only: skip building its metadata (a dictionary of five strings, 3 %
        // of a no-op job in a worker process), and the context it is read from, when nothing would print it.
        if outcome == .succeeded && logger.logLevel > .debug { return }
        let context = makeContext()
        var metadata: Logger.Metadata = [
            "queue": "\(context.queue)", "type": "\(context.jobType)", "id": "\(context.jobID)",
            "attempt": "\(context.attempt)", "outcome": "\(outcome.label)",
        ]
        switch outcome {
        case .succeeded:
            logger.debug("job succeeded", metadata: metadata.merging(["seconds": "\(seconds)"]) { $1 })
            return
        case .failed(let reason), .crashed(let reason), .rejected(let reason):
            metadata["reason"] = "\(reason)"
        case .timedOut(let after):
            metadata["reason"] = "timed out after \(after)"
        }
        switch settlement {
        case .retry(let after, _):
            metadata["retryIn"] = "\(after)"
            logger.warning("job will be retried", metadata: metadata)
        case .deadLetter:
            metadata["maxAttempts"] = "\(context.maxAttempts)"
            logger.error("job dead-lettered", metadata: metadata)
        case .ack, .release:
            logger.warning("job ended", metadata: metadata)
        }
    }
}

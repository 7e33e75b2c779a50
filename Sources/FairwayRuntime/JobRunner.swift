import FairwayJobs

/// Runs one delivery's handler on the calling worker thread and says how it ended. Never throws: whatever
/// the handler does short of trapping becomes a ``JobOutcome``.
struct JobRunner: Sendable {
    let registry: JobRegistry

    func run(
        _ delivery: Delivery,
        context: JobContext,
        executor: () -> WorkerThreadExecutor,
        taskStarted: (Task<Void, Never>) -> Void
    ) -> JobOutcome {
        guard let body = registry.body(for: delivery.jobType) else {
            return .rejected(reason: JobError.unknownJobType(delivery.jobType).description)
        }
        switch body {
        case .blocking(let handler):
            do {
                try handler(delivery.payload, context)
                return .succeeded
            } catch {
                return Self.outcome(of: error)
            }
        case .async(let handler):
            let result = OutcomeBox()
            let payload = delivery.payload
            executor().run(
                {
                    do {
                        try await handler(payload, context)
                        result.outcome = .succeeded
                    } catch {
                        result.outcome = Self.outcome(of: error)
                    }
                },
                started: taskStarted
            )
            return result.outcome
        }
    }

    static func outcome(of error: any Error) -> JobOutcome {
        let (permanent, reason) = JobError.classify(error)
        return permanent ? .rejected(reason: reason) : .failed(reason: reason)
    }
}

/// Carries an async handler's outcome back to the worker thread that waits for it on the same thread.
private final class OutcomeBox: @unchecked Sendable {
    // Unchecked Sendable: `outcome` is written by the handler's task before it signals, and read by the waiting worker thread only after.
    var outcome: JobOutcome = .failed(reason: "handler did not finish")
}

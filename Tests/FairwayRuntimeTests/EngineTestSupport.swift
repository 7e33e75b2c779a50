import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Logging

/// An engine over an in-memory source, with the built-in jobs and whatever a test registers.
struct EngineHarness {
    let engine: Engine
    let source: InMemorySource

    init(
        workers: Int = 2,
        costMode: CostMode = .count,
        queues: [QueueDefinition],
        groups: [QueueGroup] = [],
        logger given: Logger? = nil,
        register: (inout JobRegistry) -> Void = { _ in }
    ) throws {
        source = InMemorySource(recordSettlements: true)
        var registry = JobRegistry()
        BuiltinJobs.register(in: &registry)
        register(&registry)
        var logger = Logger(label: "fairway.test")
        logger.logLevel = .critical
        if let given { logger = given }
        engine = try Engine(
            configuration: EngineConfiguration(workers: workers, costMode: costMode, queues: queues, groups: groups),
            registry: registry,
            sources: [source],
            logger: logger
        )
    }

    func start() throws { try engine.start() }

    func stop() { engine.shutdown(drainTimeout: .seconds(5)) }

    func snapshot(_ queue: String) -> QueueSnapshot {
        engine.snapshot().queues.first { $0.name == queue }!
    }
}

/// A quick retry policy for tests: no waiting between attempts.
func quickRetry(_ attempts: Int) -> RetryPolicy {
    RetryPolicy(maxAttempts: attempts, initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(5), jitter: 0)
}

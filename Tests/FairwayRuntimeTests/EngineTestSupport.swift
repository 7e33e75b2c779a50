import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Logging

/// A value shared between a test and its job handlers.
final class Shared<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func read() -> Value { lock.withLock { value } }

    @discardableResult
    func update<T>(_ body: (inout Value) -> T) -> T { lock.withLock { body(&value) } }
}

/// An engine over an in-memory source, with the built-in jobs and whatever a test registers.
struct EngineHarness {
    let engine: Engine
    let source: InMemorySource

    init(
        workers: Int = 2,
        costMode: CostMode = .count,
        queues: [QueueDefinition],
        register: (inout JobRegistry) -> Void = { _ in }
    ) throws {
        source = InMemorySource(recordSettlements: true)
        var registry = JobRegistry()
        BuiltinJobs.register(in: &registry)
        register(&registry)
        var logger = Logger(label: "fairway.test")
        logger.logLevel = .critical
        engine = try Engine(
            configuration: EngineConfiguration(workers: workers, costMode: costMode, queues: queues),
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

import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// Invariant 9 (graceful shutdown) through `EngineService` in a `ServiceGroup`, as `fairway run` and
/// embedders run the engine.
@Suite("Engine service")
struct EngineServiceTests {
    static let logger: Logger = {
        var logger = Logger(label: "fairway.test")
        logger.logLevel = .critical
        return logger
    }()

    func group(_ service: EngineService) -> ServiceGroup {
        ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: service)], logger: Self.logger))
    }

    @Test("graceful shutdown drains: the running job finishes, the held ones go back to the source")
    func gracefulShutdownDrains() async throws {
        let harness = try EngineHarness(workers: 1, queues: [QueueDefinition(name: "q", credit: 4)])
        harness.source.enqueue(
            queue: "q", jobType: "sleep", payloads: Array(repeating: Array(#"{"ms":300}"#.utf8), count: 3))
        let services = group(EngineService(engine: harness.engine, drainTimeout: .seconds(30)))
        let running = Task { try await services.run() }
        #expect(await eventuallyAsync { harness.snapshot("q").inFlight == 1 })
        await services.triggerGracefulShutdown()
        try await running.value
        let queue = harness.snapshot("q")
        #expect(queue.succeeded == 1)
        #expect(queue.released == 2)
        #expect(harness.source.pendingCount(queue: "q") == 2)
    }

    @Test(
        "a cancelled group cuts the drain short: the running job is released, not waited for", .timeLimit(.minutes(1)))
    func cancellationEndsTheDrain() async throws {
        let harness = try EngineHarness(workers: 1, queues: [QueueDefinition(name: "q", credit: 1)])
        harness.source.enqueue(queue: "q", jobType: "sleep", payloads: [Array(#"{"ms":600000}"#.utf8)])
        // A drain timeout past the test's time limit: only the cancellation can end this drain in time.
        let services = group(EngineService(engine: harness.engine, drainTimeout: .seconds(120)))
        let running = Task { try await services.run() }
        #expect(await eventuallyAsync { harness.snapshot("q").inFlight == 1 })
        running.cancel()
        _ = try? await running.value
        #expect(harness.snapshot("q").succeeded == 0)
        #expect(harness.snapshot("q").released == 1)
        #expect(harness.source.pendingCount(queue: "q") == 1)
    }

    @Test("when what it waits for fails, the engine never starts and nothing is delivered")
    func startAfterRefused() async throws {
        let harness = try EngineHarness(workers: 1, queues: [QueueDefinition(name: "q", credit: 4)])
        harness.source.enqueue(queue: "q", jobType: "noop", payloads: [[]])
        let started = Shared(false)
        let asked = Shared(false)
        let services = group(
            EngineService(
                engine: harness.engine, drainTimeout: .seconds(1),
                startAfter: {
                    asked.update { $0 = true }
                    return false
                },
                started: { started.update { $0 = true } }))
        let running = Task { try await services.run() }
        #expect(await eventuallyAsync { asked.read() })
        await services.triggerGracefulShutdown()
        try await running.value
        #expect(!started.read())
        #expect(harness.source.maxOutstandingCount(queue: "q") == 0)
        #expect(harness.source.pendingCount(queue: "q") == 1)
        #expect(throws: EngineError.self) { try harness.engine.start() }
    }
}

import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// Invariant 9 (graceful shutdown) through `EngineService` in a `ServiceGroup`, as `fairway run` and
/// embedders run the engine.
///
/// The jobs wait on a gate the test opens, never on a clock: ServiceLifecycle hands a shutdown or a
/// cancellation to a service through an unstructured task on the shared cooperative pool, which the
/// suite's blocking tests can hold for as long as they run (over a minute, seen in full runs on two
/// cores). So the waits here are bounded only by the whole suite's length, and the tests' own tasks run
/// on an executor of their own.
@Suite("Engine service")
struct EngineServiceTests {
    static let logger: Logger = {
        var logger = Logger(label: "fairway.test")
        logger.logLevel = .critical
        return logger
    }()

    static let gated = JobName<NoParameters>("gated")

    /// An engine of one worker whose `gated` jobs run until `gate` opens or they are cancelled.
    func harness(credit: Int, gate: Shared<Bool>) throws -> EngineHarness {
        try EngineHarness(workers: 1, queues: [QueueDefinition(name: "q", credit: credit)]) { registry in
            registry.register(Self.gated) { _, context in
                while !gate.read() && !context.isCancelled {
                    Thread.sleep(forTimeInterval: 0.001)
                }
                try context.checkCancellation()
            }
        }
    }

    func group(_ service: EngineService) -> ServiceGroup {
        ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: service)], logger: Self.logger))
    }

    @Test("graceful shutdown drains: the running job finishes, the held ones go back to the source")
    func gracefulShutdownDrains() async throws {
        try await withTaskExecutorPreference(DedicatedThreadExecutor.shared) {
            let gate = Shared(false)
            let harness = try harness(credit: 4, gate: gate)
            harness.source.enqueue(queue: "q", jobType: "gated", payloads: Array(repeating: [], count: 3))
            let services = group(EngineService(engine: harness.engine, drainTimeout: .seconds(300)))
            let running = Task(executorPreference: DedicatedThreadExecutor.shared) { try await services.run() }
            #expect(await eventuallyAsync(timeout: 600) { harness.snapshot("q").inFlight == 1 })
            await services.triggerGracefulShutdown()
            #expect(await eventuallyAsync(timeout: 600) { harness.engine.snapshot().draining })
            // Held jobs go back at once (the drain is flagged just before they are handed back, so wait for
            // them); the running one is still running, inside its drain: its gate is closed.
            #expect(await eventuallyAsync(timeout: 600) { harness.snapshot("q").released == 2 })
            #expect(harness.snapshot("q").inFlight == 1)
            gate.update { $0 = true }
            try await running.value
            let queue = harness.snapshot("q")
            #expect(queue.succeeded == 1)
            #expect(queue.released == 2)
            #expect(harness.source.pendingCount(queue: "q") == 2)
        }
    }

    @Test(
        "a cancelled group cuts the drain short: the running job is released, not waited for", .timeLimit(.minutes(10)))
    func cancellationEndsTheDrain() async throws {
        try await withTaskExecutorPreference(DedicatedThreadExecutor.shared) {
            let gate = Shared(false)
            let harness = try harness(credit: 1, gate: gate)
            harness.source.enqueue(queue: "q", jobType: "gated", payloads: [[]])
            // A drain timeout past the test's time limit, and a gate never opened: only the cancellation
            // can end this drain in time.
            let services = group(EngineService(engine: harness.engine, drainTimeout: .seconds(3600)))
            let running = Task(executorPreference: DedicatedThreadExecutor.shared) { try await services.run() }
            #expect(await eventuallyAsync(timeout: 600) { harness.snapshot("q").inFlight == 1 })
            running.cancel()
            _ = try? await running.value
            #expect(harness.snapshot("q").succeeded == 0)
            #expect(harness.snapshot("q").released == 1)
            #expect(harness.source.pendingCount(queue: "q") == 1)
        }
    }

    @Test("when what it waits for fails, the engine never starts and nothing is delivered")
    func startAfterRefused() async throws {
        try await withTaskExecutorPreference(DedicatedThreadExecutor.shared) {
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
            let running = Task(executorPreference: DedicatedThreadExecutor.shared) { try await services.run() }
            #expect(await eventuallyAsync(timeout: 600) { asked.read() })
            await services.triggerGracefulShutdown()
            try await running.value
            #expect(!started.read())
            #expect(harness.source.maxOutstandingCount(queue: "q") == 0)
            #expect(harness.source.pendingCount(queue: "q") == 1)
            #expect(throws: EngineError.self) { try harness.engine.start() }
        }
    }
}

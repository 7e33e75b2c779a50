import Foundation
import ServiceLifecycle

/// The engine as a ServiceLifecycle `Service`, so that it runs in a `ServiceGroup` beside an HTTP server
/// or an application's own services: started when the group runs, drained on graceful shutdown (running
/// jobs get `drainTimeout`, held ones go back to their sources at once), stopped without a drain when
/// the group is cancelled.
///
/// The engine's workers stay OS threads; this adapter only moves its blocking start and drain off the
/// cooperative pool.
public struct EngineService: Service {
    public let engine: Engine
    public let drainTimeout: Duration
    private let startAfter: @Sendable () async -> Bool
    private let started: @Sendable () -> Void
    private let drained: @Sendable (DrainSummary) -> Void

    /// - Parameters:
    ///   - startAfter: awaited before the engine starts; `false` means "do not start" (say, the HTTP
    ///     server that must answer first could not listen): the service then waits for the group's
    ///     shutdown and closes the engine's sources unused.
    ///   - started: called once every source has started.
    ///   - drained: called with what the drain did, once every source is closed.
    public init(
        engine: Engine, drainTimeout: Duration, startAfter: @escaping @Sendable () async -> Bool = { true },
        started: @escaping @Sendable () -> Void = {}, drained: @escaping @Sendable (DrainSummary) -> Void = { _ in }
    ) {
        self.engine = engine
        self.drainTimeout = drainTimeout
        self.startAfter = startAfter
        self.started = started
        self.drained = drained
    }

    public func run() async throws {
        let engine = engine
        guard await startAfter(), !Task.isCancelled else {
            try? await gracefulShutdown()
            _ = try await OwnThread.run("fairway-engine-drain") { engine.shutdown(drainTimeout: .zero) }
            return
        }
        try await OwnThread.run("fairway-engine-start") { try engine.start() }
        started()
        try? await gracefulShutdown()
        let timeout = Task.isCancelled ? .zero : drainTimeout
        let summary = try await OwnThread.run("fairway-engine-drain") { engine.shutdown(drainTimeout: timeout) }
        drained(summary)
    }
}

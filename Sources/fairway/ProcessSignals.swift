import Fairway
import Logging
import ServiceLifecycle
import UnixSignals

/// The signals of `fairway run`, as a service of its group: the first SIGTERM or SIGINT starts the
/// group's graceful shutdown (the engine drains), a second one ends the drain at once (running jobs are
/// released to their sources), and SIGHUP reloads what can change live (`FairwayService.reload()`).
///
/// It goes first in the group, so that it is the last service told to stop and still hears a second
/// signal while the engine drains. The signals are trapped before the group runs (``trap()``), so one
/// that arrives during start-up is kept, not lost.
struct ProcessSignals: Service {
    let signals: UnixSignalsSequence
    let fairway: FairwayService
    let drainTimeout: Duration
    let logger: Logger
    /// Starts the group's graceful shutdown.
    let shutDown: @Sendable () async -> Void

    static func trap() async -> UnixSignalsSequence {
        await UnixSignalsSequence(trapping: .sigterm, .sigint, .sighup)
    }

    func run() async throws {
        var draining = false
        for await signal in signals.cancelOnGracefulShutdown() {
            switch (signal, draining) {
            case (.sighup, false):
                fairway.reload()
            case (.sighup, true):
                logger.warning("SIGHUP while draining: nothing reloaded")
            case (_, false):
                draining = true
                logger.info(
                    "shutting down",
                    metadata: ["signal": "\(signal)", "drainTimeout": "\(drainTimeout.compactDescription)"])
                await shutDown()
            case (_, true):
                logger.warning("second signal: ending the drain now", metadata: ["signal": "\(signal)"])
                fairway.endDrainNow()
            }
        }
    }
}

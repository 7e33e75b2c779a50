import FairwayRuntime
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// `POST /drain`: the scale-in step a Kubernetes preStop hook calls (`fairway drain`), so that the pod an
/// autoscaler removes gives its work back before it is stopped, whichever pod that is.
extension FairwayHTTPServer {
    /// What a drain did, as `POST /drain` answers once it is over.
    struct DrainAnswer: Encodable {
        var drained = true
        /// Jobs held in memory and handed back to their sources at once.
        var heldReleased: Int
        /// Jobs running when the drain began, and of those the ones that finished in time.
        var runningAtStart: Int
        var runningFinished: Int
        /// Running jobs still unfinished at the drain timeout, released to their sources.
        var runningReleased: Int
        var seconds: Double
        var note = "this process takes no more jobs; stop it (SIGTERM) when convenient"
    }

    /// Stops taking jobs (readiness turns 503 at once), hands held jobs back, gives running ones the drain
    /// timeout to finish and releases the rest, and answers when that is done. The process keeps serving
    /// HTTP until it is stopped. A second call waits for the first drain and reports nothing more.
    func drain(_ request: Request) async throws -> Response {
        if let refusal = authorise(request) { return Self.error(refusal) }
        let wasDraining = engine.snapshot().draining
        if !wasDraining {
            audit.record(
                AuditEntry(
                    actor: Self.actor(of: request), action: "drain", target: "process", before: "taking jobs",
                    after: "draining, \(settings.drainTimeout.compactDescription) for running jobs"))
        }
        let engine = engine
        let timeout = settings.drainTimeout
        let summary = try await OwnThread.run("fairway-http-drain") { engine.shutdown(drainTimeout: timeout) }
        if !wasDraining {
            // The operator's record of it; the SIGTERM that follows has nothing left to report.
            logger.info(
                "drained on request: \(summary.released) jobs released to their sources",
                metadata: summary.logMetadata)
        }
        return Self.json(
            .ok,
            DrainAnswer(
                heldReleased: summary.heldReleased, runningAtStart: summary.runningAtStart,
                runningFinished: summary.runningFinished, runningReleased: summary.runningReleased,
                seconds: (summary.seconds * 1000).rounded() / 1000))
    }
}

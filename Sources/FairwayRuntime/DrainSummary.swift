import Logging

/// What a graceful shutdown did with the jobs it found, for the line `fairway run` logs when it stops.
public struct DrainSummary: Sendable, Equatable {
    /// Jobs held in memory, never started, handed back to their sources at once (they run again elsewhere
    /// or after the restart, their attempts unchanged).
    public var heldReleased = 0
    /// Jobs running when the drain began.
    public var runningAtStart = 0
    /// Of those, the ones still running at the drain timeout, released to their sources unfinished (their
    /// threads or worker processes told to stop).
    public var runningReleased = 0
    /// How long the drain took.
    public var seconds = 0.0

    public init() {}

    /// Running jobs that finished within the drain.
    public var runningFinished: Int { max(0, runningAtStart - runningReleased) }

    /// Jobs given back to their sources: held ones and unfinished running ones.
    public var released: Int { heldReleased + runningReleased }

    /// The fields of the log line that reports a drain.
    public var logMetadata: Logger.Metadata {
        [
            "heldReleased": "\(heldReleased)", "runningFinished": "\(runningFinished)",
            "runningReleased": "\(runningReleased)", "seconds": "\((seconds * 1000).rounded() / 1000)",
        ]
    }
}

/// Watches jobs end, for metrics. Called on worker threads, outside the engine's lock: keep it cheap.
public protocol EngineObserver: AnyObject, Sendable {
    /// A run ended and was settled. `outcome` is nil for a job released unfinished at shutdown;
    /// `waitSeconds` is nil when the source did not know the enqueue time.
    func jobEnded(queue: String, outcome: JobOutcome?, settlement: Settlement, runSeconds: Double, waitSeconds: Double?)
}

/// How many jobs wait at a source, per queue: for metrics and the autoscaler.
public struct QueueDepth: Sendable, Hashable {
    /// Jobs that could run now, not yet handed to this process.
    public var ready: Int
    /// How long the oldest of them has waited, when the source knows.
    public var oldestAgeSeconds: Double?

    public init(ready: Int, oldestAgeSeconds: Double? = nil) {
        self.ready = ready
        self.oldestAgeSeconds = oldestAgeSeconds
    }
}

/// A source that can say how deep its queues are.
public protocol QueueDepthReporting: AnyObject, Sendable {
    /// Asks now, and may block (a file query, a round trip per queue to a broker). The HTTP module's
    /// sampler calls it once a second on a thread of its own and is the only cache of the answer.
    func queueDepths() -> [String: QueueDepth]
}

/// A source whose connection can be up or down (a broker); readiness is false while it is down.
public protocol ConnectionReporting: AnyObject, Sendable {
    var isConnected: Bool { get }
}

/// How a queue's jobs share it by their fairness key (a tenant id): equally, unless a key has a weight of
/// its own, and each key at most `concurrency` jobs at once when set. A queue admitted by a pattern uses
/// the same rules with each admitted queue as a key.
public struct KeyFairness: Sendable, Hashable {
    /// Weights of particular keys; every other key weighs 1.
    public var weights: [String: Double]
    /// The most jobs of one key held or running at once, or nil for no cap: across every consumer of a
    /// SQLite file (its leases are counted when claiming), in this process for RabbitMQ.
    public var concurrency: Int?

    public init(weights: [String: Double] = [:], concurrency: Int? = nil) {
        self.weights = weights
        self.concurrency = concurrency.map { max(1, $0) }
    }
}

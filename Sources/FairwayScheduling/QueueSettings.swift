/// How the scheduler measures the service a queue receives.
public enum CostMode: String, Sendable, CaseIterable {
    /// Every job costs 1: queues share dispatches in proportion to their weights.
    case count
    /// A job costs its measured run time: queues share worker-seconds in proportion to their weights,
    /// so a queue of long jobs cannot crowd out a queue of short ones.
    case time
}

/// A token-bucket rate limit: a queue may start at most `perSecond` jobs a second on average,
/// and at most `burst` at once after a quiet spell.
public struct RateLimit: Sendable, Hashable {
    /// Tokens added per second.
    public var perSecond: Double
    /// The bucket's capacity; at least 1.
    public var burst: Double

    public init(perSecond: Double, burst: Double? = nil) {
        self.perSecond = perSecond
        self.burst = max(1, burst ?? max(1, perSecond.rounded(.up)))
    }
}

/// What the scheduler needs to know about one queue. Every field can change while running.
public struct QueueSettings: Sendable, Hashable {
    /// The queue's share relative to the others; must be greater than zero.
    public var weight: Double
    /// The most jobs of this queue that may run at once.
    public var maxConcurrency: Int
    /// An optional limit on how fast jobs of this queue start.
    public var rateLimit: RateLimit?
    /// A paused queue is skipped until it is resumed; its jobs stay where they are.
    public var paused: Bool

    public init(weight: Double = 1, maxConcurrency: Int = .max, rateLimit: RateLimit? = nil, paused: Bool = false) {
        precondition(weight > 0 && weight.isFinite, "weight must be a finite number greater than 0")
        precondition(maxConcurrency > 0, "maxConcurrency must be at least 1")
        self.weight = weight
        self.maxConcurrency = maxConcurrency
        self.rateLimit = rateLimit
        self.paused = paused
    }

    /// One line for logs and the audit trail: `weight 4.0, maxConcurrency 8, rate 10.0/s burst 10.0, paused`.
    public var summary: String {
        var parts = ["weight \(weight)"]
        if maxConcurrency != .max { parts.append("maxConcurrency \(maxConcurrency)") }
        if let rateLimit { parts.append("rate \(rateLimit.perSecond)/s burst \(rateLimit.burst)") }
        if paused { parts.append("paused") }
        return parts.joined(separator: ", ")
    }
}

/// Identifies a queue inside one ``FairScheduler``: a dense index, cheap to store and compare.
public struct QueueID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let index: Int

    public init(_ index: Int) { self.index = index }

    public static func < (lhs: QueueID, rhs: QueueID) -> Bool { lhs.index < rhs.index }

    public var description: String { "queue#\(index)" }
}

/// Identifies a group of queues inside one ``FairScheduler``: a dense index.
public struct GroupID: Hashable, Sendable, CustomStringConvertible {
    public let index: Int

    public init(_ index: Int) { self.index = index }

    public var description: String { "group#\(index)" }
}

/// One scheduling decision: run the next job of `queue`, charged `charge` units of cost up front.
public struct Dispatch: Sendable, Hashable {
    public let queue: QueueID
    /// The cost charged at dispatch: 1 in count mode, the queue's estimated run time (seconds) in time mode.
    /// Hand it back to ``FairScheduler/complete(_:charge:cost:)``.
    public let charge: Double
}

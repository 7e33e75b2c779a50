import Foundation

/// The fixed delays a retry can wait, each a queue whose messages expire back into their queue: rounding
/// each backoff up to a tier keeps every delay queue first-in first-out.
enum DelayTiers {
    static let milliseconds = [
        100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000,
        10_800_000, 43_200_000, 86_400_000,
    ]

    static func tier(for delay: Duration) -> Int {
        let wanted = Int((delay.seconds * 1000).rounded(.up))
        return milliseconds.first { $0 >= wanted } ?? milliseconds.last!
    }

    /// The queue whose messages wait `tier` milliseconds, then go to `queue`.
    static func queueName(for queue: String, tier: Int) -> String {
        "fairway.delay.\(queue).\(tier)ms"
    }

    /// The arguments of that queue: every declaration of it must give the same ones.
    static func arguments(for queue: String, tier: Int) -> [(String, AMQPConnection.QueueArgument)] {
        [
            ("x-message-ttl", .int(Int64(tier))),
            ("x-dead-letter-exchange", .string("")),
            ("x-dead-letter-routing-key", .string(queue)),
            ("x-expires", .int(Int64(tier) + 3_600_000)),
        ]
    }
}

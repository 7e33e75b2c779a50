/// Durable counts of runs that ended with their process, by key, for a source whose broker cannot tell a
/// crash from any other redelivery (RabbitMQ's classic queues). The source adds a count when it reclaims a
/// dead process's run journal, reads it when the message comes back, and forgets it once the message is
/// settled. Implemented over a SQLite file by `FairwaySQLite.DeliveryCounter`; the composition root
/// chooses, so that no source module knows another.
public protocol CrashCounting: Sendable {
    /// Adds one to the count of each key (a key listed twice gets two).
    func add(_ keys: [String]) throws
    /// The count of `key`, 0 when it has none.
    func count(_ key: String) throws -> Int
    /// Forgets keys whose messages were settled.
    func remove(_ keys: [String]) throws
}

import FairwayRuntime
import Foundation
import NIOConcurrencyHelpers

/// A small durable count per key, in a SQLite file of its own: how many times each message's process ended
/// while running it, for a source whose broker cannot tell a crash from any other redelivery.
///
/// Counts are added when a dead process's run journal is reclaimed, read when a message comes back, and
/// forgotten when the message is settled. Safe to share between threads (every RabbitMQ connection's I/O
/// thread uses the one counter): each call holds the counter's lock.
public final class DeliveryCounter: CrashCounting, @unchecked Sendable {
    // Unchecked Sendable: the connection is only used while `lock` is held.
    private let connection: SQLiteConnection
    /// One SQLite connection and its statement cache serve every caller, one at a time: five I/O threads
    /// counting redeliveries at once after a reconnect corrupted the heap.
    private let lock = NIOLock()

    public init(path: String) throws {
        connection = try SQLiteConnection(path: path, mode: .readWriteCreate)
        try connection.execute(
            """
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = NORMAL;
            CREATE TABLE IF NOT EXISTS deliveries (key TEXT PRIMARY KEY, count INTEGER NOT NULL, seen_at INTEGER NOT NULL)
                WITHOUT ROWID;
            """
        )
    }

    /// Adds one to the count of each key (a key listed twice gets two), in one transaction.
    public func add(_ keys: [String]) throws {
        guard !keys.isEmpty else { return }
        lock.lock()
        defer { lock.unlock() }
        try connection.transaction {
            for key in keys {
                try connection.cached(
                    """
                    INSERT INTO deliveries(key, count, seen_at) VALUES (?1, 1, ?2)
                    ON CONFLICT(key) DO UPDATE SET count = count + 1, seen_at = ?2
                    """
                ).run([.text(key), .int(Milliseconds.now)])
            }
        }
    }

    /// The count of `key`, 0 when it has none.
    public func count(_ key: String) throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        return try connection.query("SELECT count FROM deliveries WHERE key = ?1", [.text(key)]) { $0.int(0) }.first
            ?? 0
    }

    /// Forgets keys whose messages were settled.
    public func remove(_ keys: [String]) throws {
        guard !keys.isEmpty else { return }
        lock.lock()
        defer { lock.unlock() }
        try connection.transaction {
            for key in keys {
                try connection.cached("DELETE FROM deliveries WHERE key = ?1").run([.text(key)])
            }
        }
    }

    /// Forgets records older than `age`, for messages that were settled by another process.
    public func prune(olderThan age: Duration) throws {
        let cutoff = Milliseconds.now - Int64(age.components.seconds * 1000)
        lock.lock()
        defer { lock.unlock() }
        try connection.cached("DELETE FROM deliveries WHERE seen_at < ?1").run([.int(cutoff)])
    }
}

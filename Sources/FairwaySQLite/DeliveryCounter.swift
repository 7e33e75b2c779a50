/// A small durable count per key, in a SQLite file of its own: the local record that lets a source count
/// redeliveries of a message whose earlier deliveries never settled (the process died while running it),
/// where the broker does not count them itself.
public final class DeliveryCounter: @unchecked Sendable {
    private let connection: SQLiteConnection

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

    /// Adds one to the count of `key`, durably, and returns the new count.
    public func increment(_ key: String) throws -> Int {
        try connection.query(
            """
            INSERT INTO deliveries(key, count, seen_at) VALUES (?1, 1, ?2)
            ON CONFLICT(key) DO UPDATE SET count = count + 1, seen_at = ?2 RETURNING count
            """,
            [.text(key), .int(Milliseconds.now)]
        ) { $0.int(0) }.first ?? 1
    }

    /// Forgets keys whose messages were settled.
    public func remove(_ keys: [String]) throws {
        guard !keys.isEmpty else { return }
        try connection.transaction {
            for key in keys {
                try connection.cached("DELETE FROM deliveries WHERE key = ?1").run([.text(key)])
            }
        }
    }

    /// Forgets records older than `age`, for messages that were settled by another process.
    public func prune(olderThan age: Duration) throws {
        let cutoff = Milliseconds.now - Int64(age.components.seconds * 1000)
        try connection.cached("DELETE FROM deliveries WHERE seen_at < ?1").run([.int(cutoff)])
    }
}

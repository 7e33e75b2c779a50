/// A job to put on a queue, for any backend: the SQLite file's `SQLiteQueue` and the RabbitMQ publisher
/// take the same value.
public struct NewJob: Sendable, Hashable {
    public var queue: String
    public var type: String
    /// JSON text. Empty means `{}`.
    public var payload: [UInt8]
    /// Run no sooner than this from now.
    public var delay: Duration
    /// Higher runs first within its queue; equal priorities run in enqueue order.
    public var priority: Int

    public init(queue: String, type: String, payload: [UInt8] = [], delay: Duration = .zero, priority: Int = 0) {
        self.queue = queue
        self.type = type
        self.payload = payload
        self.delay = delay
        self.priority = priority
    }
}

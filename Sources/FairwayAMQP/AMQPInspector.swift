/// Reads queues of a broker without consuming from them through a source: message counts and the
/// messages of a dead-letter queue. For operators' tools and tests.
public final class AMQPInspector {
    private let connection: AMQPConnection

    /// A message taken from a queue, with Fairway's dead-letter headers when it has them.
    public struct Message: Sendable, Hashable {
        public var type: String?
        public var body: [UInt8]
        public var reason: String?
        public var attempts: Int?
        public var originalQueue: String?
    }

    public init(url: AMQPURL, caCertificate: String? = nil) throws {
        connection = try AMQPConnection(url: url, heartbeat: 0, caCertificate: caCertificate)
        try connection.openChannel(1)
    }

    /// Messages ready in a queue (approximate right after publishing). Throws if it does not exist.
    public func count(_ queue: String) throws -> Int {
        try connection.declareQueue(1, queue, passive: true)
    }

    /// Takes every ready message of a queue.
    public func drain(_ queue: String) throws -> [Message] {
        var messages: [Message] = []
        while let message = try connection.get(1, queue: queue) {
            messages.append(
                Message(
                    type: message.type, body: message.body, reason: message.reason, attempts: message.attempts,
                    originalQueue: message.originalQueue
                )
            )
        }
        return messages
    }

    /// Deletes a queue; no error when it does not exist.
    public func delete(_ queue: String) {
        try? connection.deleteQueue(1, queue)
    }
}

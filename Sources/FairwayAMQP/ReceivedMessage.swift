import CRabbitMQ

/// A message the broker delivered that rabbitmq-c cannot decode (for example a header table with an empty
/// key, which the broker accepts from producers). The connection cannot be read past it.
struct UndecodableMessage: Error, CustomStringConvertible {
    let channel: UInt16
    let deliveryTag: UInt64
    let detail: String

    var description: String { "a message rabbitmq-c cannot decode (\(detail))" }
}

/// A message received from the broker, copied out of rabbitmq-c's buffers.
struct ReceivedMessage {
    var channel: UInt16
    var deliveryTag: UInt64
    var redelivered: Bool
    var body: [UInt8]
    var type: String?
    var messageID: String?
    var timestamp: UInt64?
    /// `x-fairway-attempt`: attempts already made before this message was published (retries), as sent;
    /// nil when absent. Untrusted: the source validates it.
    var priorAttempts: HeaderValue?
    /// `x-fairway-attempt-signature`: Fairway's signature of that count (``AttemptSigner``).
    var attemptSignature: String?
    var lastError: String?
    /// Dead-letter headers: why, after how many attempts, from which queue.
    var reason: String?
    var attempts: Int?
    var originalQueue: String?
    /// `x-fairway-key`: the job's fairness key (a tenant id), as sent. Untrusted: the source validates it.
    var fairnessKey: String?
}

/// The header that carries a job's fairness key.
enum FairnessKeyHeader {
    static let name = "x-fairway-key"
    /// The longest key kept; a longer one is dropped (the job runs without a key) and the drop is logged.
    static let maxBytes = 255

    /// `key` when it is one: non-empty UTF-8 text of at most ``maxBytes``; nil otherwise.
    static func valid(_ key: String?) -> String? {
        guard let key, !key.isEmpty, key.utf8.count <= maxBytes, !key.contains("\u{FFFD}") else { return nil }
        return key
    }

    /// The header for a key, to put on a message (nothing for no key).
    static func headers(_ key: String?) -> [(String, AMQPConnection.QueueArgument)] {
        key.map { [(name, .string($0))] } ?? []
    }
}

/// A header as a producer sent it, for validation: an integer, or some other kind of field.
enum HeaderValue: Equatable, CustomStringConvertible {
    case integer(Int64)
    case unsignedOutOfRange(UInt64)
    case other(kind: UInt8)

    var description: String {
        switch self {
        case .integer(let value): return "\(value)"
        case .unsignedOutOfRange(let value): return "\(value)"
        case .other(let kind): return "a field of kind '\(Character(Unicode.Scalar(kind)))', not an integer"
        }
    }
}

/// Something the broker sent that is not a message.
enum BrokerEvent {
    /// A publisher confirm: the broker has (ack) or has not (nack) taken responsibility for publishes up to
    /// `tag` (all of them when `multiple`).
    case confirm(ack: Bool, tag: UInt64, multiple: Bool)
    /// The broker closed a channel, e.g. because its queue does not exist.
    case channelClosed(channel: UInt16, code: Int, text: String)
    /// The broker cancelled a consumer (its queue was deleted).
    case consumerCancelled(channel: UInt16)
}

extension ReceivedMessage {
    /// Copies a delivery out of rabbitmq-c's buffers, which the next receive reuses.
    init(_ envelope: inout amqp_envelope_t) {
        let properties = fw_envelope_properties(&envelope)!
        let flags = properties.pointee._flags
        func header(_ key: String) -> String? {
            var buffer = [CChar](repeating: 0, count: 2048)
            let length = fw_header_string(properties, key, &buffer, Int32(buffer.count))
            guard length >= 0 else { return nil }
            return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let attempts = fw_header_int(properties, "x-fairway-attempts", -1)
        self.init(
            channel: envelope.channel,
            deliveryTag: envelope.delivery_tag,
            redelivered: envelope.redelivered != 0,
            body: envelope.message.body.array,
            type: flags & UInt32(AMQP_BASIC_TYPE_FLAG) != 0 ? properties.pointee.type.text : nil,
            messageID: flags & UInt32(AMQP_BASIC_MESSAGE_ID_FLAG) != 0 ? properties.pointee.message_id.text : nil,
            timestamp: flags & UInt32(AMQP_BASIC_TIMESTAMP_FLAG) != 0 ? properties.pointee.timestamp : nil,
            priorAttempts: Self.headerValue(properties, "x-fairway-attempt"),
            attemptSignature: header("x-fairway-attempt-signature"),
            lastError: header("x-fairway-last-error"),
            reason: header("x-fairway-reason"),
            attempts: attempts >= 0 ? Int(attempts) : nil,
            originalQueue: header("x-fairway-queue"),
            fairnessKey: header(FairnessKeyHeader.name)
        )
    }

    private static func headerValue(_ properties: UnsafeMutablePointer<amqp_basic_properties_t>, _ key: String)
        -> HeaderValue?
    {
        var kind: UInt8 = 0
        var value: Int64 = 0
        var unsigned: UInt64 = 0
        guard fw_header_field(properties, key, &kind, &value, &unsigned) != 0 else { return nil }
        switch kind {
        case UInt8(ascii: "L"):
            return unsigned <= UInt64(Int64.max) ? .integer(Int64(unsigned)) : .unsignedOutOfRange(unsigned)
        case 0: return .integer(value)
        default: return .other(kind: kind)
        }
    }
}

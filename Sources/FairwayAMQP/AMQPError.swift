import CRabbitMQ

/// An error from the broker or the connection, with what was being done. Never holds a password.
public struct AMQPError: Error, CustomStringConvertible, Sendable {
    public let message: String
    /// The AMQP reply code when the broker closed a channel or the connection (404 not found, 403 access
    /// refused, 406 precondition failed), or 0.
    public let code: Int
    /// True when the connection itself is gone and must be opened again.
    public let connectionLost: Bool

    public var description: String { message }
}

extension amqp_rpc_reply_t {
    /// What the reply says, its AMQP code (0 when none) and whether it closed the connection.
    var summary: (text: String, code: Int, isConnectionClose: Bool) {
        switch reply_type {
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return (String(cString: amqp_error_string2(library_error)), 0, true)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            switch reply.id {
            case AMQP_CONNECTION_CLOSE_METHOD:
                let close = reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                return ("\(close.reply_code) \(close.reply_text.text)", Int(close.reply_code), true)
            case AMQP_CHANNEL_CLOSE_METHOD:
                let close = reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                return ("\(close.reply_code) \(close.reply_text.text)", Int(close.reply_code), false)
            default:
                return ("the broker answered with method \(reply.id)", 0, false)
            }
        default:
            return ("no reply", 0, true)
        }
    }
}

extension amqp_bytes_t {
    /// The bytes, copied out of rabbitmq-c's buffer.
    var array: [UInt8] {
        guard len > 0, let bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: len))
    }

    /// The bytes as UTF-8 text, invalid sequences replaced.
    var text: String { String(decoding: array, as: UTF8.self) }
}

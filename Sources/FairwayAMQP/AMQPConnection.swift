import CRabbitMQ
import Foundation

/// One connection to a broker through rabbitmq-c. Not thread-safe: exactly one thread uses it.
final class AMQPConnection {
    let url: AMQPURL
    private var state: amqp_connection_state_t?
    private var socket: OpaquePointer?
    private var nextPublishTag: UInt64 = 1

    /// Opens a connection and logs in.
    init(url: AMQPURL, heartbeat: Int, timeout: Duration = .seconds(10), caCertificate: String? = nil) throws {
        self.url = url
        guard let state = amqp_new_connection() else {
            throw AMQPError(message: "cannot allocate a connection", code: 0, connectionLost: true)
        }
        self.state = state
        if url.tls {
            guard let ssl = amqp_ssl_socket_new(state) else {
                close()
                throw AMQPError(message: "cannot create a TLS socket", code: 0, connectionLost: true)
            }
            amqp_ssl_socket_set_verify_peer(ssl, 1)
            amqp_ssl_socket_set_verify_hostname(ssl, 1)
            fw_tls_watch(ssl)
            if let caCertificate, amqp_ssl_socket_set_cacert(ssl, caCertificate) != AMQP_STATUS_OK.rawValue {
                close()
                throw AMQPError(
                    message: "cannot read the CA certificate \(caCertificate)", code: 0, connectionLost: true)
            }
            socket = ssl
        } else {
            socket = amqp_tcp_socket_new(state)
        }
        var wait = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        let opened = amqp_socket_open_noblock(socket, url.host, Int32(url.port), &wait)
        guard opened == AMQP_STATUS_OK.rawValue else {
            let reason = Self.describeOpenFailure(opened, url: url, caCertificate: caCertificate)
            close()
            throw AMQPError(
                message: "cannot connect to \(url.host):\(url.port): \(reason)", code: 0, connectionLost: true)
        }
        let reply = fw_login(state, url.vhost, Int32(heartbeat), url.user, url.password)
        if reply.reply_type != AMQP_RESPONSE_NORMAL {
            let detail = reply.summary
            close()
            let refused =
                detail.code == 403 || reply.library_error == AMQP_STATUS_CONNECTION_CLOSED.rawValue
                || reply.library_error == AMQP_STATUS_SOCKET_CLOSED.rawValue
            throw AMQPError(
                message: refused
                    ? "login refused for user '\(url.user)' on vhost '\(url.vhost)' at \(url.host):\(url.port) (wrong user or password, or no access to the vhost)"
                    : "login as '\(url.user)' failed: \(detail.text)",
                code: detail.code == 0 && refused ? 403 : detail.code,
                connectionLost: true
            )
        }
    }

    deinit { close() }

    /// Why a connection could not be opened, naming the TLS cause when there is one.
    private static func describeOpenFailure(_ status: Int32, url: AMQPURL, caCertificate: String?) -> String {
        let authorities = caCertificate.map { "the CA in \($0)" } ?? "the system's CAs"
        switch status {
        case AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue:
            let why = fw_tls_verify_error_text().map { String(cString: $0) } ?? "no certificate was presented"
            let untrusted = why.contains("issuer") || why.contains("self-signed") || why.contains("self signed")
            let meaning = untrusted ? ": it is not signed by a CA you trust" : ""
            return "the broker's TLS certificate was refused: \(why)\(meaning) (checked against \(authorities))"
        case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue:
            return "the broker's TLS certificate is not for host '\(url.host)': connect by a name the certificate lists"
        case AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue:
            return "the TLS handshake failed (is \(url.port) a TLS port? amqps:// uses 5671 by default)"
        default:
            return String(cString: amqp_error_string2(status))
        }
    }

    /// The socket's file descriptor, for poll.
    var fileDescriptor: Int32 { socket.map { amqp_socket_get_sockfd($0) } ?? -1 }

    /// True when rabbitmq-c holds received bytes or frames not yet read.
    var hasBufferedInput: Bool {
        guard let state else { return false }
        return amqp_data_in_buffer(state) != 0 || amqp_frames_enqueued(state) != 0
    }

    func close() {
        guard let state else { return }
        amqp_connection_close(state, AMQP_REPLY_SUCCESS)
        amqp_destroy_connection(state)
        self.state = nil
        socket = nil
    }

    // MARK: - Channels and queues

    func openChannel(_ channel: UInt16) throws {
        try check(fw_channel_open(state, channel), "opening channel \(channel)")
    }

    /// Acknowledges the broker's close of a channel (after an error on it), so that it can be opened again.
    func acknowledgeChannelClose(_ channel: UInt16) {
        _ = fw_channel_close_ok(state, channel)
    }

    func setPrefetch(_ channel: UInt16, _ count: Int) throws {
        try check(fw_basic_qos(state, channel, UInt16(clamping: count)), "setting prefetch on channel \(channel)")
    }

    func enableConfirms(_ channel: UInt16) throws {
        try check(fw_confirm_select(state, channel), "enabling publisher confirms")
        nextPublishTag = 1
    }

    /// Declares a queue (or, when `passive`, checks that it exists). Returns its message count.
    @discardableResult
    func declareQueue(
        _ channel: UInt16,
        _ name: String,
        passive: Bool,
        durable: Bool = true,
        exclusive: Bool = false,
        arguments: [(String, QueueArgument)] = []
    ) throws -> Int {
        var table = fw_table()
        // The keys and strings must live until the call returns.
        let strings = arguments.map { ($0.0.utf8CString, $0.1) }
        var count: UInt32 = 0
        return try withTable(strings, &table) { table in
            try check(
                fw_queue_declare(
                    state, channel, name, passive ? 1 : 0, durable ? 1 : 0, exclusive ? 1 : 0, table, &count),
                passive ? "checking queue '\(name)'" : "declaring queue '\(name)'"
            )
            return Int(count)
        }
    }

    enum QueueArgument {
        case string(String)
        case int(Int64)
        case bool(Bool)
    }

    private func withTable<T>(
        _ entries: [(ContiguousArray<CChar>, QueueArgument)],
        _ table: inout fw_table,
        _ body: (UnsafeMutablePointer<fw_table>) throws -> T
    ) rethrows -> T {
        // Keep every C string alive while the table points at them.
        let values: [ContiguousArray<CChar>] = entries.map {
            if case .string(let text) = $0.1 { return text.utf8CString }
            return ContiguousArray<CChar>([0])
        }
        return try withExtendedLifetime((entries, values)) {
            for (index, entry) in entries.enumerated() {
                entry.0.withUnsafeBufferPointer { key in
                    switch entry.1 {
                    case .string:
                        values[index].withUnsafeBufferPointer { value in
                            fw_table_add_string(&table, key.baseAddress, value.baseAddress)
                        }
                    case .int(let number):
                        fw_table_add_int(&table, key.baseAddress, number)
                    case .bool(let flag):
                        fw_table_add_bool(&table, key.baseAddress, flag ? 1 : 0)
                    }
                }
            }
            return try body(&table)
        }
    }

    /// Starts consuming; returns the consumer tag.
    @discardableResult
    func consume(_ channel: UInt16, queue: String) throws -> String {
        var tag = [CChar](repeating: 0, count: 256)
        try check(fw_basic_consume(state, channel, queue, &tag, Int32(tag.count)), "consuming from queue '\(queue)'")
        let bytes = tag.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    func cancel(_ channel: UInt16, consumerTag: String) throws {
        try check(fw_basic_cancel(state, channel, consumerTag), "cancelling the consumer on channel \(channel)")
    }

    func deleteQueue(_ channel: UInt16, _ name: String) throws {
        try check(fw_queue_delete(state, channel, name), "deleting queue '\(name)'")
    }

    /// Takes one message from a queue without a consumer (basic.get, auto-ack), or nil when it is empty.
    /// Takes one message; with `acknowledge` false it stays the broker's until acknowledged, and goes back
    /// to its queue when the channel or connection closes without that.
    func get(_ channel: UInt16, queue: String, acknowledge: Bool = true) throws -> ReceivedMessage? {
        guard let state else { throw AMQPError(message: "connection closed", code: 0, connectionLost: true) }
        amqp_maybe_release_buffers(state)
        let reply = amqp_basic_get(state, channel, amqp_cstring_bytes(queue), acknowledge ? 1 : 0)
        try check(reply, "getting from queue '\(queue)'")
        guard reply.reply.id == AMQP_BASIC_GET_OK_METHOD else { return nil }
        let ok = reply.reply.decoded.assumingMemoryBound(to: amqp_basic_get_ok_t.self).pointee
        var envelope = amqp_envelope_t()
        envelope.channel = channel
        envelope.delivery_tag = ok.delivery_tag
        envelope.redelivered = ok.redelivered
        try check(amqp_read_message(state, channel, &envelope.message, 0), "reading a message from '\(queue)'")
        defer { amqp_destroy_message(&envelope.message) }
        return ReceivedMessage(&envelope)
    }

    // MARK: - Acknowledgements and publishing

    func ack(_ channel: UInt16, _ tag: UInt64, multiple: Bool) throws {
        try checkStatus(amqp_basic_ack(state, channel, tag, multiple ? 1 : 0), "acknowledging")
    }

    func reject(_ channel: UInt16, _ tag: UInt64, requeue: Bool) throws {
        try checkStatus(amqp_basic_reject(state, channel, tag, requeue ? 1 : 0), "rejecting")
    }

    /// Publishes a persistent message; returns its publisher-confirm sequence number on a confirm channel.
    @discardableResult
    func publish(
        _ channel: UInt16,
        exchange: String = "",
        routingKey: String,
        type: String?,
        messageID: String?,
        timestamp: UInt64,
        headers: [(String, QueueArgument)],
        body: [UInt8]
    ) throws -> UInt64 {
        var table = fw_table()
        let entries = headers.map { ($0.0.utf8CString, $0.1) }
        let status = withTable(entries, &table) { table in
            body.withUnsafeBytes { bytes in
                fw_publish(
                    state, channel, exchange, routingKey, type ?? "", messageID ?? "", timestamp, table,
                    bytes.baseAddress, bytes.count
                )
            }
        }
        try checkStatus(status, "publishing to '\(routingKey)'")
        defer { nextPublishTag += 1 }
        return nextPublishTag
    }

    // MARK: - Receiving

    enum Received {
        case message(ReceivedMessage)
        case event(BrokerEvent)
        case nothing
    }

    /// Reads the next message or event without waiting; `.nothing` when none is buffered or on the socket.
    func receive() throws -> Received {
        guard let state else { throw AMQPError(message: "connection closed", code: 0, connectionLost: true) }
        // rabbitmq-c's release walks every channel × every frame queued while an RPC waited (deliveries of
        // channels already consuming during set-up): quadratic at start with many queues and a deep
        // prefetch. Nothing can be released while frames are queued anyway, so wait until none are.
        if amqp_frames_enqueued(state) == 0 {
            amqp_maybe_release_buffers(state)
        }
        var envelope = amqp_envelope_t()
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        let reply = amqp_consume_message(state, &envelope, &zero, 0)
        if reply.reply_type == AMQP_RESPONSE_NORMAL {
            defer { amqp_destroy_envelope(&envelope) }
            return .message(ReceivedMessage(&envelope))
        }
        if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION {
            if reply.library_error == AMQP_STATUS_TIMEOUT.rawValue { return .nothing }
            if reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue {
                return try readFrame()
            }
            // The delivery was announced, its properties could not be decoded.
            if envelope.delivery_tag != 0 && envelope.channel != 0
                && (reply.library_error == AMQP_STATUS_INVALID_PARAMETER.rawValue
                    || reply.library_error == AMQP_STATUS_BAD_AMQP_DATA.rawValue)
            {
                throw UndecodableMessage(
                    channel: envelope.channel, deliveryTag: envelope.delivery_tag,
                    detail: String(cString: amqp_error_string2(reply.library_error)))
            }
        }
        let detail = reply.summary
        throw AMQPError(message: "connection lost: \(detail.text)", code: detail.code, connectionLost: true)
    }

    private func readFrame() throws -> Received {
        var frame = amqp_frame_t()
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        let status = amqp_simple_wait_frame_noblock(state, &frame, &zero)
        if status == AMQP_STATUS_TIMEOUT.rawValue { return .nothing }
        try checkStatus(status, "reading a frame")
        let channel = frame.channel
        switch fw_frame_method(&frame) {
        case AMQP_BASIC_ACK_METHOD:
            let ack = fw_frame_decoded(&frame).assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            return .event(.confirm(ack: true, tag: ack.delivery_tag, multiple: ack.multiple != 0))
        case AMQP_BASIC_NACK_METHOD:
            let nack = fw_frame_decoded(&frame).assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            return .event(.confirm(ack: false, tag: nack.delivery_tag, multiple: nack.multiple != 0))
        case AMQP_CHANNEL_CLOSE_METHOD:
            let close = fw_frame_decoded(&frame).assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let text = close.reply_text.text
            var ok = amqp_channel_close_ok_t()
            amqp_send_method(state, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok)
            return .event(.channelClosed(channel: channel, code: Int(close.reply_code), text: text))
        case AMQP_CONNECTION_CLOSE_METHOD:
            let close = fw_frame_decoded(&frame).assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            var ok = amqp_connection_close_ok_t()
            amqp_send_method(state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok)
            throw AMQPError(
                message: "the broker closed the connection: \(close.reply_code) \(close.reply_text.text)",
                code: Int(close.reply_code), connectionLost: true
            )
        case AMQP_BASIC_CANCEL_METHOD:
            return .event(.consumerCancelled(channel: channel))
        case AMQP_BASIC_RETURN_METHOD:
            var message = amqp_message_t()
            _ = amqp_read_message(state, channel, &message, 0)
            amqp_destroy_message(&message)
            return .nothing
        default:
            return .nothing
        }
    }

    // MARK: - Errors

    private func check(_ reply: amqp_rpc_reply_t, _ doing: String) throws {
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else { return }
        let detail = reply.summary
        let lost = reply.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || detail.isConnectionClose
        throw AMQPError(message: "\(doing): \(detail.text)", code: detail.code, connectionLost: lost)
    }

    private func checkStatus(_ status: Int32, _ doing: String) throws {
        guard status != AMQP_STATUS_OK.rawValue else { return }
        throw AMQPError(
            message: "\(doing): \(String(cString: amqp_error_string2(status)))", code: 0, connectionLost: true
        )
    }
}

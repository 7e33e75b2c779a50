import FairwayRuntime
import Foundation

/// The `<queue>.dead` queues as dead letters for the dashboard and the admin API.
///
/// A broker queue cannot be read without taking from it, so each call takes the messages on a connection of
/// its own without acknowledging them, and closing that connection gives back every message it did not
/// settle (RabbitMQ's management UI reads queues the same way, "ack mode: requeue"). A requeue publishes a
/// copy to the job's queue (attempts reset, a new message id, as a requeued SQLite job gets a new row) and
/// only then acknowledges the dead letter, so a failure between the two leaves a duplicate, never a loss. At most ``deadLetterScanLimit`` messages of each dead-letter
/// queue are read per call.
extension AMQPSource: DeadLetterInspecting {
    /// Messages read from one dead-letter queue per call, at most.
    public static let deadLetterScanLimit = 10_000
    /// Channels one reading connection opens, one per queue, before it is replaced by a new one.
    static let channelsPerConnection = 1_000

    public func deadLetters(matching filter: DeadLetterFilter, limit: Int, offset: Int) throws -> [DeadLetterRecord] {
        var found: [DeadLetterRecord] = []
        try visitDeadLetters(matching: filter) { _, _, _, record in
            found.append(record)
            return found.count >= offset + limit
        }
        return Array(found.dropFirst(offset).prefix(limit))
    }

    public func deadLetterGroups(matching filter: DeadLetterFilter) throws -> [DeadLetterGroup] {
        var groups: [String: DeadLetterGroup] = [:]
        try visitDeadLetters(matching: filter) { _, _, _, record in
            let shape = DeadLetterFilter.shape(of: record.reason)
            groups[
                "\(record.queue)\u{0}\(shape)",
                default: DeadLetterGroup(
                    queue: record.queue, shape: shape, example: record.reason, count: 0, latest: nil)
            ].count += 1
            return false
        }
        return groups.values.sorted { ($0.count, $1.queue) > ($1.count, $0.queue) }
    }

    public func requeueDeadLetters(matching filter: DeadLetterFilter) throws -> Int {
        var count = 0
        try visitDeadLetters(matching: filter) { connection, channel, message, record in
            try connection.publish(
                channel, routingKey: record.queue, type: message.type, messageID: UUID().uuidString,
                timestamp: message.timestamp ?? UInt64(Date().timeIntervalSince1970),
                headers: FairnessKeyHeader.headers(message.fairnessKey), body: message.body)
            try connection.ack(channel, message.deliveryTag, multiple: false)
            count += 1
            return false
        }
        return count
    }

    public func deleteDeadLetters(matching filter: DeadLetterFilter) throws -> Int {
        var count = 0
        try visitDeadLetters(matching: filter) { connection, channel, message, _ in
            try connection.ack(channel, message.deliveryTag, multiple: false)
            count += 1
            return false
        }
        return count
    }

    /// Reads the dead-letter queues of the served queues (or of `filter.queue`) and calls `visit` with each
    /// message that matches, until it returns true. Whatever `visit` does not acknowledge goes back.
    /// One call at a time, in this process (``deadLetterLock``) and among the processes on the broker
    /// (``DeadLetterReaderLock``): a call hides the messages it holds from any other.
    private func visitDeadLetters(
        matching filter: DeadLetterFilter,
        _ visit: (AMQPConnection, UInt16, ReceivedMessage, DeadLetterRecord) throws -> Bool
    ) throws {
        try deadLetterLock.withLock {
            let replicas = try DeadLetterReaderLock.acquire(url: options.url, caCertificate: options.caCertificate)
            defer { replicas?.release() }
            let served = depthLock.withLock { queueNames }
            let queues = filter.queue.map { queue in served.contains(queue) ? [queue] : [] } ?? served
            var connection: AMQPConnection?
            defer { connection?.close() }
            for (index, queue) in queues.enumerated() {
                let channel = UInt16(index % Self.channelsPerConnection + 1)
                if channel == 1 {
                    connection?.close()
                    connection = try AMQPConnection(
                        url: options.url, heartbeat: 0, caCertificate: options.caCertificate)
                }
                guard let connection else { return }
                try connection.openChannel(channel)
                let dead = queue + options.deadLetterSuffix
                let ready: Int
                do {
                    ready = try connection.declareQueue(channel, dead, passive: true)
                } catch {
                    // No dead letters yet: the queue was never declared. The broker closed the channel.
                    connection.acknowledgeChannelClose(channel)
                    continue
                }
                if try visitQueue(dead, of: queue, ready: ready, served: served, filter, connection, channel, visit) {
                    return
                }
            }
        }
    }

    /// Reads one dead-letter queue; true when `visit` asked to stop.
    private func visitQueue(
        _ dead: String, of queue: String, ready: Int, served: [String], _ filter: DeadLetterFilter,
        _ connection: AMQPConnection, _ channel: UInt16,
        _ visit: (AMQPConnection, UInt16, ReceivedMessage, DeadLetterRecord) throws -> Bool
    ) throws -> Bool {
        for position in 0..<min(ready, Self.deadLetterScanLimit) {
            guard let message = try connection.get(channel, queue: dead, acknowledge: false) else { break }
            let record = DeadLetterRecord(
                id: message.messageID ?? "\(dead)#\(position)", queue: message.originalQueue ?? queue,
                type: message.type ?? "", payload: String(decoding: message.body.prefix(65_536), as: UTF8.self),
                attempts: message.attempts ?? 0, reason: message.reason ?? "",
                enqueuedAt: message.timestamp.map(Double.init), diedAt: nil, source: name,
                fairnessKey: FairnessKeyHeader.valid(message.fairnessKey))
            guard Self.matches(record, filter), served.contains(record.queue) else { continue }
            if try visit(connection, channel, message, record) { return true }
        }
        return false
    }

    static func matches(_ record: DeadLetterRecord, _ filter: DeadLetterFilter) -> Bool {
        if let type = filter.type, record.type != type { return false }
        if let reason = filter.reason, !record.reason.contains(reason) { return false }
        if let shape = filter.shape, DeadLetterFilter.shape(of: record.reason) != shape { return false }
        if let text = filter.text, !record.payload.contains(text) && record.id != text { return false }
        if let ids = filter.ids, !ids.contains(record.id) { return false }
        return true
    }
}

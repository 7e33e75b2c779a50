import FairwayRuntime
import Foundation

/// Publishes jobs to a broker and waits for its confirms: the connection under ``AMQPJobProducer`` and
/// `fairway enqueue --amqp`. Each job is a persistent message on the default exchange, routed to its queue
/// (or, when delayed, to the delay queue that expires into it), with the job type in the AMQP `type`
/// property, a message id and a timestamp. One connection, one thread at a time.
public final class AMQPPublisher {
    private let connection: AMQPConnection
    private let url: AMQPURL
    private let declare: Bool
    private let queueType: AMQPSource.QueueType
    private var declared: Set<String> = []
    private let channel: UInt16 = 1
    /// Queue names to suggest from when a queue does not exist (the broker cannot list them over AMQP).
    public var knownQueues: [String] = []
    /// Queues with a `globalConcurrency`, declared with a single active consumer when this publisher
    /// creates them, as their consumers declare them.
    public var singleActiveConsumerQueues: Set<String> = []

    /// - Parameters:
    ///   - declare: declare missing queues (durable, of `queueType`); when false, a queue must already
    ///     exist (a consumer declared it) and a missing one is refused with ``ProducerRefusal``.
    ///   - caCertificate: a PEM file of certificate authorities for amqps://, beyond the system's.
    public init(
        url: AMQPURL, declare: Bool = true, queueType: AMQPSource.QueueType = .classic, caCertificate: String? = nil
    ) throws {
        connection = try AMQPConnection(url: url, heartbeat: 0, caCertificate: caCertificate)
        try connection.openChannel(channel)
        try connection.enableConfirms(channel)
        self.url = url
        self.declare = declare
        self.queueType = queueType
    }

    /// Publishes the jobs and returns their message ids once the broker confirmed every one. Throws, having
    /// published nothing, when a queue does not exist (and `declare` is false); throws if the broker
    /// refused any. A delay is rounded up to the next delay tier (100 ms, 250 ms, 500 ms, 1 s, 2 s, 5 s, …).
    @discardableResult
    public func publish(_ jobs: [NewJob]) throws -> [String] {
        // Every queue is checked before anything is published, so that a refused batch publishes nothing.
        for queue in Set(jobs.map(\.queue)).sorted() where !declared.contains(queue) {
            try ensureExists(queue)
        }
        var outstanding: Set<UInt64> = []
        var refused = 0
        var ids: [String] = []
        ids.reserveCapacity(jobs.count)
        for job in jobs {
            var routingKey = job.queue
            if job.delay > .zero {
                let tier = DelayTiers.tier(for: job.delay)
                routingKey = DelayTiers.queueName(for: job.queue, tier: tier)
                if !declared.contains(routingKey) {
                    try connection.declareQueue(
                        channel, routingKey, passive: false, arguments: DelayTiers.arguments(for: job.queue, tier: tier)
                    )
                    declared.insert(routingKey)
                }
            }
            let id = UUID().uuidString
            let tag = try connection.publish(
                channel,
                routingKey: routingKey,
                type: job.type,
                messageID: id,
                timestamp: UInt64(Date().timeIntervalSince1970),
                headers: FairnessKeyHeader.headers(job.fairnessKey),
                body: job.payload.isEmpty ? Array("{}".utf8) : job.payload
            )
            ids.append(id)
            outstanding.insert(tag)
            // Read confirms now and then, so that large batches do not pile up unread.
            if outstanding.count >= 1024 {
                try drain(&outstanding, &refused, wait: false)
            }
        }
        let deadline = MonotonicClock.after(seconds: 30)
        while !outstanding.isEmpty {
            guard MonotonicClock.now < deadline else {
                throw AMQPError(
                    message: "the broker did not confirm \(outstanding.count) messages within 30 s", code: 0,
                    connectionLost: false)
            }
            try drain(&outstanding, &refused, wait: true)
        }
        if refused > 0 {
            throw AMQPPublishRefused(refused: refused, total: jobs.count)
        }
        return ids
    }

    /// Checks that the queue exists; a missing one is declared (when `declare`) or refused with a
    /// ``ProducerRefusal``, and the channel the broker closed over it is opened again. A queue that exists
    /// is never declared again, so a producer cannot clash with the arguments its consumers declared.
    private func ensureExists(_ queue: String) throws {
        do {
            try connection.declareQueue(channel, queue, passive: true)
        } catch let error as AMQPError where error.code == 404 && !error.connectionLost {
            connection.acknowledgeChannelClose(channel)
            try connection.openChannel(channel)
            try connection.enableConfirms(channel)
            guard declare else {
                throw ProducerRefusal.undeclaredQueue(queue: queue, in: "the broker at \(url)", known: knownQueues)
            }
            try connection.declareQueue(
                channel, queue, passive: false,
                arguments: QueueDeclaration.arguments(
                    type: queueType, singleActiveConsumer: singleActiveConsumerQueues.contains(queue)))
        }
        declared.insert(queue)
    }

    private func drain(_ outstanding: inout Set<UInt64>, _ refused: inout Int, wait: Bool) throws {
        while true {
            switch try connection.receive() {
            case .event(.confirm(let ack, let tag, let multiple)):
                let confirmed = multiple ? outstanding.filter { $0 <= tag } : [tag]
                for item in confirmed where outstanding.remove(item) != nil && !ack {
                    refused += 1
                }
            case .event(.channelClosed(_, let code, let text)):
                throw AMQPError(
                    message: "the broker closed the channel: \(code) \(text)", code: code, connectionLost: false)
            case .event, .message:
                continue
            case .nothing:
                if wait && !outstanding.isEmpty {
                    WakeupDescriptor().poll(with: connection.fileDescriptor, timeout: 0.5)
                }
                return
            }
        }
    }

    public func close() { connection.close() }
}

/// The broker nacked publishes: a queue at its `max-length` with `overflow: reject-publish` (queue full), or a
/// broker out of resources. The others were confirmed.
public struct AMQPPublishRefused: Error, CustomStringConvertible, Equatable {
    public var refused: Int
    public var total: Int

    public var description: String {
        "the broker refused \(refused) of \(total) messages: the queue is full (its max-length policy rejects"
            + " publishes) or the broker is short of resources; retry later"
    }
}

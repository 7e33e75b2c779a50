import FairwayRuntime
import Foundation

/// Publishes jobs to a broker and waits for its confirms: the AMQP side of `fairway enqueue --amqp`.
/// Each job is a persistent message on the default exchange, routed to its queue, with the job type in
/// the AMQP `type` property, a message id and a timestamp.
public final class AMQPPublisher {
    private let connection: AMQPConnection
    private let declare: Bool
    private let queueType: AMQPSource.QueueType
    private var declared: Set<String> = []
    private let channel: UInt16 = 1

    /// - Parameter caCertificate: a PEM file of certificate authorities for amqps://, beyond the system's.
    public init(
        url: AMQPURL, declare: Bool = true, queueType: AMQPSource.QueueType = .classic, caCertificate: String? = nil
    ) throws {
        connection = try AMQPConnection(url: url, heartbeat: 0, caCertificate: caCertificate)
        try connection.openChannel(channel)
        try connection.enableConfirms(channel)
        self.declare = declare
        self.queueType = queueType
    }

    /// Publishes the jobs and returns once the broker confirmed every one. Throws if any was refused.
    public func publish(_ jobs: [NewJob]) throws {
        var outstanding: Set<UInt64> = []
        var refused = 0
        for job in jobs {
            if job.delay > .zero {
                throw AMQPError(
                    message: "--delay is not supported for amqp: publish later, or let a retry delay it", code: 0,
                    connectionLost: false)
            }
            if !declared.contains(job.queue) {
                if declare {
                    try connection.declareQueue(
                        channel, job.queue, passive: false, arguments: [("x-queue-type", .string(queueType.rawValue))])
                } else {
                    try connection.declareQueue(channel, job.queue, passive: true)
                }
                declared.insert(job.queue)
            }
            let tag = try connection.publish(
                channel,
                routingKey: job.queue,
                type: job.type,
                messageID: UUID().uuidString,
                timestamp: UInt64(Date().timeIntervalSince1970),
                headers: [],
                body: job.payload.isEmpty ? Array("{}".utf8) : job.payload
            )
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

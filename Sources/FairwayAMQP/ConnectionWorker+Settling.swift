import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Settling: acks batched per channel, retries and dead letters published with confirms.
extension ConnectionWorker {
    // MARK: - Settling

    func apply(_ settlement: Settlement, to delivery: Delivery, on connection: AMQPConnection) throws {
        guard let entry = inFlight.removeValue(forKey: delivery.receipt), entry.generation == generation else {
            // It came on a connection that is gone: the broker delivers it again.
            return
        }
        let queue = queueNames[delivery.queue] ?? ""
        switch settlement {
        case .ack:
            trackers[entry.channel]?.settled(entry.tag)
            if let key = entry.counterKey { counterKeysToForget.append(key) }
        case .release:
            try connection.reject(entry.channel, entry.tag, requeue: true)
            trackers[entry.channel]?.handled(entry.tag)
        case .retry(let after, let reason):
            let delay = DelayTiers.tier(for: after)
            let delayQueue = DelayTiers.queueName(for: queue, tier: delay)
            if !declaredQueues.contains(delayQueue) {
                try connection.declareQueue(
                    Self.publishChannel, delayQueue, passive: false,
                    arguments: DelayTiers.arguments(for: queue, tier: delay))
                declaredQueues.insert(delayQueue)
            }
            let signature = signer.signature(
                queue: queue, attempt: delivery.attempt, messageID: entry.messageID.map(Self.shortString),
                body: delivery.payload)
            try publishCopy(
                of: delivery, entry: entry, to: delayQueue, on: connection,
                headers: [
                    ("x-fairway-attempt", .int(Int64(delivery.attempt))),
                    ("x-fairway-attempt-signature", .string(signature)),
                    ("x-fairway-last-error", .string(String(reason.prefix(1000)))),
                ] + FairnessKeyHeader.headers(delivery.fairnessKey)
            )
        case .deadLetter(let reason):
            let deadQueue = queue + options.deadLetterSuffix
            if !declaredQueues.contains(deadQueue) {
                try connection.declareQueue(Self.publishChannel, deadQueue, passive: false)
                declaredQueues.insert(deadQueue)
            }
            try publishCopy(
                of: delivery, entry: entry, to: deadQueue, on: connection,
                headers: [
                    ("x-fairway-reason", .string(String(reason.prefix(1000)))),
                    ("x-fairway-attempts", .int(Int64(delivery.attempt))),
                    ("x-fairway-queue", .string(queue)),
                    ("x-fairway-died-at", .int(Int64(Date().timeIntervalSince1970))),
                ] + FairnessKeyHeader.headers(delivery.fairnessKey)
            )
        }
    }

    func publishCopy(
        of delivery: Delivery, entry: InFlight, to target: String, on connection: AMQPConnection,
        headers: [(String, AMQPConnection.QueueArgument)]
    ) throws {
        // The type and id arrived as bytes and were decoded leniently (invalid UTF-8 became U+FFFD): the copy
        // must still fit AMQP's short strings, or it could never be published.
        let tag = try connection.publish(
            Self.publishChannel,
            routingKey: target,
            type: Self.shortString(delivery.jobType),
            messageID: entry.messageID.map(Self.shortString),
            timestamp: (delivery.enqueuedAt ?? WallClock.now) / 1_000_000_000,
            headers: headers,
            body: delivery.payload
        )
        pendingConfirms[tag] = PendingCopy(channel: entry.channel, tag: entry.tag, counterKey: entry.counterKey)
    }

    /// `text` cut to at most 255 UTF-8 bytes, on a character boundary: what an AMQP short string holds.
    static func shortString(_ text: String) -> String {
        guard text.utf8.count > 255 else { return text }
        var result = ""
        for character in text {
            guard result.utf8.count + character.utf8.count <= 255 else { break }
            result.append(character)
        }
        return result
    }

    func flushAcks(_ connection: AMQPConnection) throws {
        for channel in Array(trackers.keys) {
            guard var tracker = trackers[channel], tracker.hasWork else { continue }
            let plan = tracker.takeAcks()
            trackers[channel] = tracker
            if let upTo = plan.multipleUpTo {
                try connection.ack(channel, upTo, multiple: true)
            }
            for tag in plan.single {
                try connection.ack(channel, tag, multiple: false)
            }
        }
    }

    func forgetCounterKeys() {
        guard !counterKeysToForget.isEmpty else { return }
        try? counter.remove(counterKeysToForget)
        counterKeysToForget.removeAll()
    }

    /// After a lost connection: the broker will deliver again everything that was not acknowledged, so
    /// held deliveries are taken back from the engine and settlements of running ones will be ignored.
    func dropConnection(reason: String) {
        connection?.close()
        connection = nil
        let worker = UInt64(index)
        let dropped = sink.withdrawHeld { $0.receipt >> 48 == worker }
        inFlight.removeAll()
        pendingSetUp.removeAll()
        pendingConfirms.removeAll()
        trackers.removeAll()
        consumerTags.removeAll()
        consumersCancelled = false
        generation += 1
        if dropped > 0 {
            logger.warning(
                "dropped held messages of a lost connection; the broker delivers them again",
                metadata: ["count": "\(dropped)", "reason": "\(reason)"]
            )
        }
    }
}

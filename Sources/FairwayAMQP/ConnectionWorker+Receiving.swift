import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Receiving: each delivery checked, its attempts and crashes counted, and handed to the engine.
extension ConnectionWorker {
    // MARK: - Receiving

    /// Turns a message into a delivery, or settles it here when it can never run.
    func accept(_ message: ReceivedMessage, on connection: AMQPConnection, delivering: Bool) throws
        -> Delivery?
    {
        let queue = Int(message.channel) - 2
        guard queues.indices.contains(queue), trackers[message.channel] != nil else { return nil }
        trackers[message.channel]!.delivered(message.deliveryTag)
        if !delivering {
            try connection.reject(message.channel, message.deliveryTag, requeue: true)
            trackers[message.channel]!.handled(message.deliveryTag)
            return nil
        }
        let binding = queues[queue]
        let key = CrashKey.of(queue: binding.name, messageID: message.messageID, body: message.body)
        // Only a message delivered before can have been running when a process ended.
        var crashes = 0
        var counterKey: String?
        if message.redelivered {
            crashes = (try? counter.count(CrashKey.text(key))) ?? 0
            if crashes > 0 { counterKey = CrashKey.text(key) }
        }
        let limit = options.maxAttempts[binding.name] ?? .max
        let prior = validatedPriorAttempts(message, queue: binding.name, limit: limit)
        let (sum, overflow) = prior.addingReportingOverflow(crashes)
        let attempt = overflow ? Int.max : sum &+ 1
        var rejection: String?
        if attempt > limit {
            let runs = attempt - 1
            let times = crashes == 1 ? "once" : "\(crashes) times"
            rejection = RetryPolicy.gaveUp(
                "its process ended while running it \(times) (a crash or a kill)", after: runs)
        } else if message.type?.isEmpty ?? true {
            rejection = "the message has no type: set the AMQP 'type' property to the job type"
        } else if !message.body.isEmpty,
            (try? JSONSerialization.jsonObject(with: Data(message.body), options: [.fragmentsAllowed])) == nil
        {
            rejection = "the body is not valid JSON"
        }
        let sequence = nextSequence
        nextSequence += 1
        let receipt = UInt64(index) << 48 | (sequence & 0xFFFF_FFFF_FFFF)
        inFlight[receipt] = InFlight(
            generation: generation, channel: message.channel, tag: message.deliveryTag, messageID: message.messageID,
            counterKey: counterKey
        )
        let delivery = Delivery(
            queue: binding.id,
            jobType: message.type ?? "",
            payload: message.body,
            attempt: attempt,
            enqueuedAt: message.timestamp.flatMap { Self.nanoseconds(fromTimestamp: $0) },
            receipt: receipt,
            key: key,
            jobID: message.messageID.flatMap { $0.isEmpty ? nil : $0 },
            suspect: crashes > 0,
            fairnessKey: validatedFairnessKey(message, queue: binding.name)
        )
        if let rejection {
            try apply(.deadLetter(reason: rejection), to: delivery, on: connection)
            return nil
        }
        return delivery
    }

    /// A producer's `timestamp` property (seconds since 1970) in nanoseconds, or nil when it cannot be one
    /// (past the year 2554, where the nanoseconds overflow).
    static func nanoseconds(fromTimestamp seconds: UInt64) -> UInt64? {
        let (value, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? nil : value
    }

    /// The message's fairness key when it is one: non-empty text of at most 255 bytes. Any other is dropped
    /// with a warning, and the job runs without a key: a key only orders jobs, it is never worth losing one.
    func validatedFairnessKey(_ message: ReceivedMessage, queue: String) -> String? {
        guard let key = message.fairnessKey, !key.isEmpty else { return nil }
        guard let valid = FairnessKeyHeader.valid(key) else {
            logger.warning(
                "ignored an x-fairway-key header: a key is UTF-8 text of at most 255 bytes; the job runs without one",
                metadata: ["queue": "\(queue)", "bytes": "\(key.utf8.count)"])
            return nil
        }
        return valid
    }

    /// The attempts a retry copy says were made before it (`x-fairway-attempt`), when Fairway wrote them: an
    /// integer from 1 to one less than the queue's attempts (a copy is only published with attempts left),
    /// signed by ``AttemptSigner``. Anything else is a producer's value, ignored with a warning: it can
    /// neither skip retries by claiming attempts that never ran nor make a dead letter's count absurd.
    func validatedPriorAttempts(_ message: ReceivedMessage, queue: String, limit: Int) -> Int {
        guard let raw = message.priorAttempts else { return 0 }
        let highest = limit == .max ? 10_000 : limit - 1
        let problem: String
        if case .integer(let value) = raw, value >= 1, value <= Int64(highest) {
            guard let signature = message.attemptSignature else {
                logIgnoredAttempt(queue, raw, "it is not signed (x-fairway-attempt-signature)")
                return 0
            }
            let id = message.messageID.map(Self.shortString)
            if signer.verify(signature, queue: queue, attempt: Int(value), messageID: id, body: message.body) {
                return Int(value)
            }
            problem = "its signature does not match (a different attemptKey, or a forged count)"
        } else {
            problem = "no retry of this queue can carry it (allowed: 1...\(highest))"
        }
        logIgnoredAttempt(queue, raw, problem)
        return 0
    }

    func logIgnoredAttempt(_ queue: String, _ value: HeaderValue, _ problem: String) {
        logger.warning(
            "ignored an x-fairway-attempt header: the message starts at attempt 1",
            metadata: ["queue": "\(queue)", "value": "\(value)", "why": "\(problem)"])
    }

    func handle(_ event: BrokerEvent, on connection: AMQPConnection) throws {
        switch event {
        case .confirm(let ack, let tag, let multiple):
            let confirmed = multiple ? pendingConfirms.keys.filter { $0 <= tag } : [tag]
            for publishTag in confirmed {
                guard let copy = pendingConfirms.removeValue(forKey: publishTag) else { continue }
                if ack {
                    trackers[copy.channel]?.settled(copy.tag)
                    if let key = copy.counterKey { counterKeysToForget.append(key) }
                } else {
                    // The broker did not take the copy: run the original again rather than lose it.
                    try connection.reject(copy.channel, copy.tag, requeue: true)
                    trackers[copy.channel]?.handled(copy.tag)
                }
            }
        case .channelClosed(let channel, let code, let text):
            if channel == Self.publishChannel {
                throw AMQPError(
                    message: "the broker closed the publish channel: \(code) \(text)", code: code, connectionLost: true)
            }
            let queue = Int(channel) - 2
            trackers[channel] = nil
            consumerTags[channel] = nil
            failedQueues[queue] = MonotonicClock.after(seconds: 30)
            let name = queues.indices.contains(queue) ? queues[queue].name : "?"
            logger.error(
                "the broker closed a queue's channel; serving the others",
                metadata: ["queue": "\(name)", "error": "\(code) \(text)"]
            )
        case .consumerCancelled(let channel):
            let queue = Int(channel) - 2
            failedQueues[queue] = MonotonicClock.after(seconds: 30)
            consumerTags[channel] = nil
            logger.error("the broker cancelled a consumer (queue deleted?)", metadata: ["channel": "\(channel)"])
        }
    }

    /// Stops consuming the queue whose message could not be decoded, for a while: the connection must be
    /// opened again, and consuming that queue at once would only meet the same message. Nothing is lost:
    /// the message stays at the head of its queue until an operator moves it (docs/amqp.md).
    func holdBack(_ error: UndecodableMessage) {
        let queue = Int(error.channel) - 2
        guard queues.indices.contains(queue) else { return }
        let wait = min(600, (heldBack[queue]?.wait ?? 15) * 2)
        heldBack[queue] = (MonotonicClock.after(seconds: wait), wait)
        logger.error(
            "a message in a queue cannot be decoded; not consuming that queue for a while, serving the others",
            metadata: [
                "queue": "\(queues[queue].name)", "error": "\(error)",
                "retryIn": "\(Int(wait))s",
                "fix": "move the message away (management UI or a shovel); it is still in the queue",
            ])
    }

    func retryFailedQueues(_ connection: AMQPConnection) throws {
        let now = MonotonicClock.now
        for (queue, held) in heldBack where held.until <= now && lock.withLock({ life == .delivering }) {
            try setUp(queue: queue, on: connection)
            heldBack[queue]?.until = .max
            logger.info("consuming from a held-back queue again", metadata: ["queue": "\(queues[queue].name)"])
        }
        guard !failedQueues.isEmpty, lock.withLock({ life == .delivering }) else { return }
        for (queue, due) in failedQueues where due <= now {
            // The channel was closed by the broker; open it again.
            try setUp(queue: queue, on: connection)
            if failedQueues[queue] == nil {
                logger.info("consuming from a queue again", metadata: ["queue": "\(queues[queue].name)"])
            }
        }
        if failedQueues.isEmpty && pendingSetUp.isEmpty { lock.withLock { status = .consumingAll } }
    }
}

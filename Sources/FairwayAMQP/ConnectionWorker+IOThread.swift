import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The I/O thread: connects, sets up channels and consumers, and serves until the connection drops.
extension ConnectionWorker {
    // MARK: - The I/O thread

    func run() {
        var backoff = 0.1
        while lock.withLock({ life < .closing }) {
            do {
                try connect()
                backoff = 0.1
                try serve()
            } catch let error as UndecodableMessage {
                holdBack(error)
                dropConnection(reason: error.description)
            } catch let error as AMQPError {
                lock.withLock {
                    status = .degraded
                    lock.broadcast()
                }
                dropConnection(reason: error.message)
                if lock.withLock({ life >= .closing }) { break }
                let wait = backoff * Double.random(in: 0.5...1.0)
                logger.error(
                    "broker connection failed; retrying",
                    metadata: [
                        "broker": "\(options.url)", "error": "\(error.message)",
                        "retryIn": "\(String(format: "%.1fs", wait))",
                    ]
                )
                wakeup.wait(timeout: wait)
                backoff = min(Self.longestReconnectDelay, backoff * 2)
            } catch {
                logger.error("unexpected error in the AMQP source", metadata: ["error": "\(error)"])
                dropConnection(reason: "\(error)")
                wakeup.wait(timeout: backoff)
            }
        }
        connection?.close()
        connection = nil
        lock.withLock {
            life = .finished
            status = .degraded
            lock.broadcast()
        }
    }

    func connect() throws {
        let connection = try AMQPConnection(
            url: options.url, heartbeat: options.heartbeat, caCertificate: options.caCertificate
        )
        self.connection = connection
        generation += 1
        try connection.openChannel(Self.publishChannel)
        try connection.enableConfirms(Self.publishChannel)
        declaredQueues = []
        consumerTags = [:]
        trackers = [:]
        let now = MonotonicClock.now
        // A held-back queue waits for its time; one consumed again since (until: .max) is set up.
        pendingSetUp = queues.indices.filter { queue in
            heldBack[queue].map { $0.until <= now || $0.until == .max } ?? true
        }
        try setUpPending(connection)
    }

    /// Sets up the next chunk of pending queues; once none are left, the connection counts as connected
    /// (``AMQPSource/start(queues:sink:)`` returns then, while deliveries already flow).
    func setUpPending(_ connection: AMQPConnection) throws {
        guard !pendingSetUp.isEmpty else { return }
        guard lock.withLock({ life == .delivering }) else {
            // Stopping: start no further consumers.
            pendingSetUp.removeAll()
            lock.withLock {
                if status == .firstAttemptPending { status = .degraded }
                lock.broadcast()
            }
            return
        }
        let chunk = pendingSetUp.prefix(Self.setUpChunk)
        for queue in chunk {
            try setUp(queue: queue, on: connection)
        }
        pendingSetUp.removeFirst(chunk.count)
        guard pendingSetUp.isEmpty else { return }
        lock.withLock {
            status = failedQueues.isEmpty ? .consumingAll : .degraded
            lock.broadcast()
        }
        logger.info(
            "consuming from the broker",
            metadata: ["broker": "\(options.url)", "queues": "\(queues.count - failedQueues.count)"]
        )
    }

    /// Opens a queue's channel, declares or checks the queue, sets its prefetch and starts consuming. A
    /// queue the broker refuses is logged and tried again later; the others carry on.
    func setUp(queue: Int, on connection: AMQPConnection) throws {
        let binding = queues[queue]
        let channel = channel(of: queue)
        do {
            try connection.openChannel(channel)
            if options.declare {
                try connection.declareQueue(
                    channel, binding.name, passive: false,
                    arguments: QueueDeclaration.arguments(
                        type: options.queueType, singleActiveConsumer: binding.globalConcurrency != nil)
                )
            } else {
                try connection.declareQueue(channel, binding.name, passive: true)
                if binding.globalConcurrency != nil {
                    // It exists; declaring it again with the arguments the cap needs creates nothing and
                    // fails if they differ, so a cap is never silently unenforced.
                    try connection.declareQueue(
                        channel, binding.name, passive: false,
                        arguments: QueueDeclaration.arguments(type: options.queueType, singleActiveConsumer: true))
                }
            }
            try connection.setPrefetch(channel, binding.credit)
            consumerTags[channel] = try connection.consume(channel, queue: binding.name)
            trackers[channel] = AckTracker()
            failedQueues[queue] = nil
        } catch let error as AMQPError where !error.connectionLost {
            failedQueues[queue] = MonotonicClock.after(seconds: 30)
            let reason =
                switch error.code {
                case 404: "queue '\(binding.name)' does not exist on vhost '\(options.url.vhost)' (declare is off)"
                case 406:
                    QueueDeclaration.mismatch(
                        binding.name, singleActiveConsumer: binding.globalConcurrency != nil,
                        broker: error.message)
                default: "queue '\(binding.name)': \(error.message)"
                }
            logger.error("cannot consume from a queue; serving the others", metadata: ["error": "\(reason)"])
        }
    }

    func serve() throws {
        guard let connection else { return }
        let pollTimeout = options.heartbeat > 0 ? min(1.0, Double(options.heartbeat) / 2) : 1.0
        while true {
            let (settlements, mayDeliver, stopping) = lock.withLock { () -> ([(Delivery, Settlement)], Bool, Bool) in
                let taken = pendingSettlements
                pendingSettlements.removeAll(keepingCapacity: true)
                return (taken, life == .delivering, life >= .closing)
            }
            if !mayDeliver && !consumersCancelled {
                cancelConsumers(connection)
            }
            for (delivery, settlement) in settlements {
                try apply(settlement, to: delivery, on: connection)
            }
            try flushAcks(connection)
            forgetCounterKeys()
            if stopping && pendingConfirms.isEmpty && lock.withLock({ pendingSettlements.isEmpty }) {
                return
            }
            try setUpPending(connection)
            try retryFailedQueues(connection)
            var batch: [Delivery] = []
            var readAny = false
            while batch.count < 4096 {
                switch try connection.receive() {
                case .nothing:
                    break
                case .message(let message):
                    readAny = true
                    if let delivery = try accept(message, on: connection, delivering: mayDeliver) {
                        batch.append(delivery)
                    }
                    continue
                case .event(let event):
                    readAny = true
                    try handle(event, on: connection)
                    continue
                }
                break
            }
            if !batch.isEmpty {
                sink.deliver(contentsOf: batch)
            }
            if readAny || connection.hasBufferedInput { continue }
            try flushAcks(connection)
            if lock.withLock({ !pendingSettlements.isEmpty || (life >= .closing && !stopping) }) { continue }
            if !pendingSetUp.isEmpty { continue }
            wakeup.poll(with: connection.fileDescriptor, timeout: pollTimeout)
        }
    }

    func cancelConsumers(_ connection: AMQPConnection) {
        consumersCancelled = true
        for (channel, tag) in consumerTags {
            try? connection.cancel(channel, consumerTag: tag)
        }
    }
}

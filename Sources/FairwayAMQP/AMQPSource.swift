import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Jobs from a RabbitMQ broker: push consumption through rabbitmq-c, one I/O thread per connection.
///
/// Each queue gets a channel and a consumer whose prefetch is the queue's credit, so the broker never
/// pushes more than the scheduler can use and the choice between queues stays with the scheduler. The I/O
/// thread is the only caller of rabbitmq-c on its connection: workers hand it settlements and wake it, and
/// it never waits on a worker. Acknowledgements are batched (`multiple` over contiguous delivery tags);
/// retries and dead letters are published with publisher confirms, and the original is acknowledged only
/// once the broker confirmed the copy.
///
/// A crash is charged to the messages that were running, not to those merely held: each run is written to a
/// ``RunJournal``, and a later process adds the runs of a dead one's journal to a local count per message
/// (the broker's own redelivery flag and `x-delivery-count` cannot tell a held message from a running one).
public final class AMQPSource: JobSource, ConnectionReporting, QueueDepthReporting, @unchecked Sendable {
    public enum QueueType: String, Sendable, CaseIterable {
        case classic
        case quorum
    }

    public struct Options: Sendable {
        public var url: AMQPURL
        /// Heartbeat interval in seconds, 0 to disable.
        public var heartbeat: Int = 30
        /// Declare the queues (durable, of `queueType`); when false they must exist.
        public var declare: Bool = true
        public var queueType: QueueType = .classic
        /// Queues served by one connection (and one I/O thread); more queues open more connections.
        public var queuesPerConnection: Int = 200
        /// The suffix of each queue's dead-letter queue.
        public var deadLetterSuffix: String = ".dead"
        /// A PEM file of certificate authorities for amqps://, beyond the system's.
        public var caCertificate: String?
        /// Where the crashes of messages are counted, with the run journals beside it; a temporary
        /// folder by default. Keep it on storage that outlives a restart of the process (a volume in a
        /// container) for a poison message to be quarantined.
        public var deliveryCounterPath: String?
        /// Most attempts per queue, to quarantine a message that keeps ending its process.
        public var maxAttempts: [String: Int] = [:]
        /// The key that signs the attempt count of retry copies, the same on every consumer of these
        /// queues; nil derives one from the account's credentials (``AttemptSigner``).
        public var attemptKey: [UInt8]?

        public init(url: AMQPURL) { self.url = url }
    }

    public let name = "amqp"
    public let options: Options
    private let logger: Logger
    /// Set once in `start`, before any connection starts, and read from worker threads (settlements) and
    /// the HTTP sampler: appending while connection 0 already delivered corrupted the heap.
    private let connectionList = NIOLockedValueBox<[ConnectionWorker]>([])
    private var connections: [ConnectionWorker] { connectionList.withLockedValue { $0 } }
    private let counter: any CrashCounting
    private let journal: RunJournal

    /// Opens a source; `crashCounter` opens the durable crash counts at the path the options give (or
    /// a default one), which also names the run journals (`FairwaySQLite.DeliveryCounter.init(path:)`).
    public init(
        options: Options, crashCounter: (_ path: String) throws -> any CrashCounting,
        logger: Logger = Logger(label: "fairway.amqp")
    ) throws {
        self.options = options
        self.logger = logger
        let path =
            options.deliveryCounterPath
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "fairway-amqp-deliveries-\(options.url.host)-\(options.url.port).db"
            ).path
        counter = try crashCounter(path)
        let prefix = path + ".running-"
        // Runs of processes that died: each was running when its process ended.
        let orphans = RunJournal.orphans(withPrefix: prefix)
        do {
            try counter.add(orphans.flatMap { $0.keys.map(CrashKey.text) })
            orphans.forEach(RunJournal.discard)
            let charged = orphans.reduce(0) { $0 + $1.keys.count }
            if charged > 0 {
                logger.info(
                    "charged an attempt to the messages a process was running when it ended",
                    metadata: ["messages": "\(charged)"])
            }
        } catch {
            orphans.forEach(RunJournal.keep)
            throw error
        }
        journal = try RunJournal(prefix: prefix, owner: "amqp pid \(getpid())")
    }

    public func runStarting(_ delivery: Delivery) -> RunJournal.Mark {
        journal.begin(delivery.key)
    }

    public func runEnded(_ mark: RunJournal.Mark) {
        journal.end(mark)
    }

    /// True while every connection is open and consuming.
    public var isConnected: Bool { !connections.isEmpty && connections.allSatisfy(\.isConnected) }

    public func start(queues: [QueueBinding], sink: any DeliverySink) throws {
        depthLock.withLock { queueNames = queues.map(\.name) }
        let size = max(1, options.queuesPerConnection)
        let workers = stride(from: 0, to: queues.count, by: size).enumerated().map { index, start in
            ConnectionWorker(
                index: index, queues: Array(queues[start..<min(queues.count, start + size)]), options: options,
                sink: sink, counter: counter, logger: logger
            )
        }
        connectionList.withLockedValue { $0 = workers }
        for worker in workers {
            worker.start()
        }
        // Wait briefly for the first connection so that a wrong address or password shows up at once in
        // the log; the source keeps trying in the background either way.
        for worker in connections {
            worker.waitForFirstAttempt(timeout: 15)
        }
    }

    private let depthLock = NSLock()
    private var cachedDepths: (at: Date, depths: [String: QueueDepth])?
    private var inspector: AMQPInspector?
    private var queueNames: [String] = []

    /// Messages ready in each queue at the broker (not counting those delivered to consumers), asked of the
    /// broker at most every two seconds on a connection of its own.
    public func queueDepths() -> [String: QueueDepth] {
        depthLock.withLock {
            if let cachedDepths, Date().timeIntervalSince(cachedDepths.at) < 2 { return cachedDepths.depths }
            var depths: [String: QueueDepth] = cachedDepths?.depths ?? [:]
            do {
                if inspector == nil {
                    inspector = try AMQPInspector(url: options.url, caCertificate: options.caCertificate)
                }
                for name in queueNames {
                    depths[name] = QueueDepth(ready: try inspector!.count(name))
                }
            } catch {
                inspector = nil
            }
            cachedDepths = (Date(), depths)
            return depths
        }
    }

    public func settle(_ delivery: Delivery, _ settlement: Settlement) {
        let index = Int(delivery.receipt >> 48)
        guard let worker = connectionList.withLockedValue({ index < $0.count ? $0[index] : nil }) else { return }
        worker.settle(delivery, settlement)
    }

    public func stopDelivering() {
        for worker in connections { worker.stopDelivering() }
    }

    public func close() {
        for worker in connections { worker.close() }
        journal.remove()
    }
}

/// A message's durable name for crash counting: its queue, message id and body, hashed (FNV-1a, 64 bits).
enum CrashKey {
    static func of(queue: String, messageID: String?, body: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
        mix(queue.utf8)
        mix([0])
        mix((messageID ?? "").utf8)
        mix([0])
        mix(body)
        return hash == 0 ? 1 : hash
    }

    static func text(_ key: UInt64) -> String { "crash-" + String(key, radix: 16) }
}

/// One connection, its channels and its I/O thread.
final class ConnectionWorker: @unchecked Sendable {
    let index: Int
    let queues: [QueueBinding]
    /// The name of each queue this connection serves, by the engine's identifier: looked up per settlement.
    let queueNames: [QueueID: String]
    let options: AMQPSource.Options
    let sink: any DeliverySink
    let counter: any CrashCounting
    let signer: AttemptSigner
    let logger: Logger
    private let wakeup = WakeupDescriptor()

    private let lock = NSCondition()
    // Guarded by `lock`.
    private var pendingSettlements: [(Delivery, Settlement)] = []
    private var delivering = true
    private var closing = false
    private var finished = false
    private var attempted = false
    private var connected = false

    // Touched only by the I/O thread.
    private var connection: AMQPConnection?
    private var generation: UInt64 = 0
    private var nextSequence: UInt64 = 1
    private var inFlight: [UInt64: InFlight] = [:]
    private var trackers: [UInt16: AckTracker] = [:]
    private var pendingConfirms: [UInt64: PendingCopy] = [:]
    private var consumerTags: [UInt16: String] = [:]
    private var declaredQueues: Set<String> = []
    private var failedQueues: [Int: Date] = [:]
    /// Queues still to be set up after a connect: done a chunk at a time between receives, so that the
    /// first queues' deliveries are served while the others are still being declared.
    private var pendingSetUp: [Int] = []
    /// Queues set up per turn of the I/O loop.
    private static let setUpChunk = 16
    /// Queues not consumed until the date because their head message cannot be decoded, with the wait
    /// before the next try (doubling up to ten minutes).
    private var heldBack: [Int: (until: Date, wait: Double)] = [:]
    private var cancelled = false
    private var counterKeysToForget: [String] = []

    static let publishChannel: UInt16 = 1

    struct InFlight {
        var generation: UInt64
        var channel: UInt16
        var tag: UInt64
        var messageID: String?
        var counterKey: String?
    }

    /// A retry or dead-letter copy published and waiting for its confirm before the original is acked.
    struct PendingCopy {
        var channel: UInt16
        var tag: UInt64
        var counterKey: String?
    }

    init(
        index: Int, queues: [QueueBinding], options: AMQPSource.Options, sink: any DeliverySink,
        counter: any CrashCounting, logger: Logger
    ) {
        self.index = index
        self.queues = queues
        self.queueNames = Dictionary(uniqueKeysWithValues: queues.map { ($0.id, $0.name) })
        self.options = options
        self.sink = sink
        self.counter = counter
        self.signer = options.attemptKey.map { AttemptSigner(key: $0) } ?? AttemptSigner(deriveFrom: options.url)
        self.logger = logger
    }

    var isConnected: Bool { lock.withLock { connected } }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "fairway-amqp-\(index)"
        thread.start()
    }

    func waitForFirstAttempt(timeout: Double) {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        while !attempted && Date() < deadline {
            _ = lock.wait(until: deadline)
        }
        lock.unlock()
    }

    func settle(_ delivery: Delivery, _ settlement: Settlement) {
        lock.withLock { pendingSettlements.append((delivery, settlement)) }
        wakeup.signal()
    }

    func stopDelivering() {
        lock.withLock { delivering = false }
        wakeup.signal()
    }

    func close() {
        lock.withLock { closing = true }
        wakeup.signal()
        lock.lock()
        while !finished {
            lock.wait()
        }
        lock.unlock()
    }

    private func channel(of queue: Int) -> UInt16 { UInt16(queue + 2) }

    /// Reconnects wait 0.1 s, doubling up to this, each cut by a random half at most (so that many
    /// consumers do not knock at once): a broker that comes back is served again within about a second,
    /// and one that stays down sees one connection attempt per second per connection.
    static let longestReconnectDelay = 1.0

    // MARK: - The I/O thread

    private func run() {
        var backoff = 0.1
        while !lock.withLock({ closing }) {
            do {
                try connect()
                backoff = 0.1
                try serve()
            } catch let error as UndecodableMessage {
                holdBack(error)
                dropConnection(reason: error.description)
            } catch let error as AMQPError {
                lock.withLock {
                    connected = false
                    attempted = true
                    lock.broadcast()
                }
                dropConnection(reason: error.message)
                if lock.withLock({ closing }) { break }
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
            finished = true
            connected = false
            lock.broadcast()
        }
    }

    private func connect() throws {
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
        let now = Date()
        // A held-back queue waits for its time; one consumed again since (until: distantFuture) is set up.
        pendingSetUp = queues.indices.filter { queue in
            heldBack[queue].map { $0.until <= now || $0.until == .distantFuture } ?? true
        }
        try setUpPending(connection)
    }

    /// Sets up the next chunk of pending queues; once none are left, the connection counts as connected
    /// (``AMQPSource/start(queues:sink:)`` returns then, while deliveries already flow).
    private func setUpPending(_ connection: AMQPConnection) throws {
        guard !pendingSetUp.isEmpty else { return }
        guard lock.withLock({ delivering && !closing }) else {
            // Stopping: start no further consumers.
            pendingSetUp.removeAll()
            lock.withLock {
                attempted = true
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
            connected = failedQueues.isEmpty
            attempted = true
            lock.broadcast()
        }
        logger.info(
            "consuming from the broker",
            metadata: ["broker": "\(options.url)", "queues": "\(queues.count - failedQueues.count)"]
        )
    }

    /// Opens a queue's channel, declares or checks the queue, sets its prefetch and starts consuming. A
    /// queue the broker refuses is logged and tried again later; the others carry on.
    private func setUp(queue: Int, on connection: AMQPConnection) throws {
        let binding = queues[queue]
        let channel = channel(of: queue)
        do {
            try connection.openChannel(channel)
            if options.declare {
                try connection.declareQueue(
                    channel, binding.name, passive: false,
                    arguments: [("x-queue-type", .string(options.queueType.rawValue))]
                )
            } else {
                try connection.declareQueue(channel, binding.name, passive: true)
            }
            try connection.setPrefetch(channel, binding.credit)
            consumerTags[channel] = try connection.consume(channel, queue: binding.name)
            trackers[channel] = AckTracker()
            failedQueues[queue] = nil
        } catch let error as AMQPError where !error.connectionLost {
            failedQueues[queue] = Date().addingTimeInterval(30)
            let reason =
                error.code == 404
                ? "queue '\(binding.name)' does not exist on vhost '\(options.url.vhost)' (declare is off)"
                : "queue '\(binding.name)': \(error.message)"
            logger.error("cannot consume from a queue; serving the others", metadata: ["error": "\(reason)"])
        }
    }

    private func serve() throws {
        guard let connection else { return }
        let pollTimeout = options.heartbeat > 0 ? min(1.0, Double(options.heartbeat) / 2) : 1.0
        while true {
            let (settlements, mayDeliver, stopping) = lock.withLock { () -> ([(Delivery, Settlement)], Bool, Bool) in
                let taken = pendingSettlements
                pendingSettlements.removeAll(keepingCapacity: true)
                return (taken, delivering, closing)
            }
            if !mayDeliver && !cancelled {
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
            if lock.withLock({ !pendingSettlements.isEmpty || (closing && !stopping) }) { continue }
            if !pendingSetUp.isEmpty { continue }
            wakeup.poll(with: connection.fileDescriptor, timeout: pollTimeout)
        }
    }

    private func cancelConsumers(_ connection: AMQPConnection) {
        cancelled = true
        for (channel, tag) in consumerTags {
            try? connection.cancel(channel, consumerTag: tag)
        }
    }

    // MARK: - Receiving

    /// Turns a message into a delivery, or settles it here when it can never run.
    private func accept(_ message: ReceivedMessage, on connection: AMQPConnection, delivering: Bool) throws
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
            suspect: crashes > 0
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

    /// The attempts a retry copy says were made before it (`x-fairway-attempt`), when Fairway wrote them: an
    /// integer from 1 to one less than the queue's attempts (a copy is only published with attempts left),
    /// signed by ``AttemptSigner``. Anything else is a producer's value, ignored with a warning: it can
    /// neither skip retries by claiming attempts that never ran nor make a dead letter's count absurd.
    private func validatedPriorAttempts(_ message: ReceivedMessage, queue: String, limit: Int) -> Int {
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

    private func logIgnoredAttempt(_ queue: String, _ value: HeaderValue, _ problem: String) {
        logger.warning(
            "ignored an x-fairway-attempt header: the message starts at attempt 1",
            metadata: ["queue": "\(queue)", "value": "\(value)", "why": "\(problem)"])
    }

    private func handle(_ event: BrokerEvent, on connection: AMQPConnection) throws {
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
            failedQueues[queue] = Date().addingTimeInterval(30)
            let name = queues.indices.contains(queue) ? queues[queue].name : "?"
            logger.error(
                "the broker closed a queue's channel; serving the others",
                metadata: ["queue": "\(name)", "error": "\(code) \(text)"]
            )
        case .consumerCancelled(let channel):
            let queue = Int(channel) - 2
            failedQueues[queue] = Date().addingTimeInterval(30)
            consumerTags[channel] = nil
            logger.error("the broker cancelled a consumer (queue deleted?)", metadata: ["channel": "\(channel)"])
        }
    }

    /// Stops consuming the queue whose message could not be decoded, for a while: the connection must be
    /// opened again, and consuming that queue at once would only meet the same message. Nothing is lost:
    /// the message stays at the head of its queue until an operator moves it (docs/amqp.md).
    private func holdBack(_ error: UndecodableMessage) {
        let queue = Int(error.channel) - 2
        guard queues.indices.contains(queue) else { return }
        let wait = min(600, (heldBack[queue]?.wait ?? 15) * 2)
        heldBack[queue] = (Date().addingTimeInterval(wait), wait)
        logger.error(
            "a message in a queue cannot be decoded; not consuming that queue for a while, serving the others",
            metadata: [
                "queue": "\(queues[queue].name)", "error": "\(error)",
                "retryIn": "\(Int(wait))s",
                "fix": "move the message away (management UI or a shovel); it is still in the queue",
            ])
    }

    private func retryFailedQueues(_ connection: AMQPConnection) throws {
        let now = Date()
        for (queue, held) in heldBack where held.until <= now && lock.withLock({ delivering }) {
            try setUp(queue: queue, on: connection)
            heldBack[queue]?.until = .distantFuture
            logger.info("consuming from a held-back queue again", metadata: ["queue": "\(queues[queue].name)"])
        }
        guard !failedQueues.isEmpty, lock.withLock({ delivering }) else { return }
        for (queue, due) in failedQueues where due <= now {
            // The channel was closed by the broker; open it again.
            try setUp(queue: queue, on: connection)
            if failedQueues[queue] == nil {
                logger.info("consuming from a queue again", metadata: ["queue": "\(queues[queue].name)"])
            }
        }
        if failedQueues.isEmpty && pendingSetUp.isEmpty { lock.withLock { connected = true } }
    }

    // MARK: - Settling

    private func apply(_ settlement: Settlement, to delivery: Delivery, on connection: AMQPConnection) throws {
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
            let delayQueue = "fairway.delay.\(queue).\(delay)ms"
            if !declaredQueues.contains(delayQueue) {
                try connection.declareQueue(
                    Self.publishChannel, delayQueue, passive: false,
                    arguments: [
                        ("x-message-ttl", .int(Int64(delay))),
                        ("x-dead-letter-exchange", .string("")),
                        ("x-dead-letter-routing-key", .string(queue)),
                        ("x-expires", .int(Int64(delay) + 3_600_000)),
                    ]
                )
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
                ]
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
                ]
            )
        }
    }

    private func publishCopy(
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

    private func flushAcks(_ connection: AMQPConnection) throws {
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

    private func forgetCounterKeys() {
        guard !counterKeysToForget.isEmpty else { return }
        try? counter.remove(counterKeysToForget)
        counterKeysToForget.removeAll()
    }

    /// After a lost connection: the broker will deliver again everything that was not acknowledged, so
    /// held deliveries are taken back from the engine and settlements of running ones will be ignored.
    private func dropConnection(reason: String) {
        connection?.close()
        connection = nil
        let worker = UInt64(index)
        let dropped = sink.withdrawHeld { $0.receipt >> 48 == worker }
        inFlight.removeAll()
        pendingSetUp.removeAll()
        pendingConfirms.removeAll()
        trackers.removeAll()
        consumerTags.removeAll()
        cancelled = false
        generation += 1
        if dropped > 0 {
            logger.warning(
                "dropped held messages of a lost connection; the broker delivers them again",
                metadata: ["count": "\(dropped)", "reason": "\(reason)"]
            )
        }
    }
}

/// The fixed delays a retry can wait, each a queue whose messages expire back into their queue: rounding
/// each backoff up to a tier keeps every delay queue first-in first-out.
enum DelayTiers {
    static let milliseconds = [
        100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000,
        10_800_000, 43_200_000, 86_400_000,
    ]

    static func tier(for delay: Duration) -> Int {
        let wanted = Int((delay.seconds * 1000).rounded(.up))
        return milliseconds.first { $0 >= wanted } ?? milliseconds.last!
    }
}

/// Which delivery tags of a channel are settled, so that acknowledgements go out as one `multiple` ack
/// for the contiguous settled prefix and single acks beyond a gap.
struct AckTracker {
    private var outstanding: [UInt64] = []
    private var head = 0
    private var settledTags: Set<UInt64> = []
    /// Tags acknowledged singly or rejected: no longer outstanding at the broker.
    private var done: Set<UInt64> = []

    var hasWork: Bool { !settledTags.isEmpty }

    mutating func delivered(_ tag: UInt64) { outstanding.append(tag) }
    mutating func settled(_ tag: UInt64) { settledTags.insert(tag) }
    mutating func handled(_ tag: UInt64) { done.insert(tag) }

    mutating func takeAcks() -> (multipleUpTo: UInt64?, single: [UInt64]) {
        var highest: UInt64?
        while head < outstanding.count {
            let tag = outstanding[head]
            if settledTags.remove(tag) != nil {
                highest = tag
            } else if done.remove(tag) == nil {
                break
            }
            head += 1
        }
        if head > 1024 {
            outstanding.removeFirst(head)
            head = 0
        }
        let single = settledTags.sorted()
        settledTags.removeAll(keepingCapacity: true)
        done.formUnion(single)
        return (highest, single)
    }
}

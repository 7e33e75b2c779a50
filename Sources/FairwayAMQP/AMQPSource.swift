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
    // Unchecked Sendable: the connection list is a locked box; the last depths, inspector and queue names are guarded by `depthLock`.
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
        if let pattern = queues.first(where: { $0.pattern != nil }) {
            // AMQP has no way to consume queues that do not exist yet, nor to be told when one is created
            // without a plugin; docs/tenants.md says what to do instead.
            throw AMQPError(
                message:
                    "queue '\(pattern.name)': a pattern cannot be served from RabbitMQ, which cannot announce new queues to a consumer; use one queue with keys: true and an x-fairway-key header per tenant (docs/tenants.md)",
                code: 0, connectionLost: false)
        }
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

    let depthLock = NIOLock()
    /// Held while dead letters are read, requeued or deleted: each of those takes the messages it reads,
    /// so two at once (the page's refresh and a click on requeue) would hide messages from each other.
    let deadLetterLock = NIOLock()
    // Guarded by `depthLock`.
    private var lastDepths: [String: QueueDepth] = [:]
    private var inspector: AMQPInspector?
    var queueNames: [String] = []

    /// Messages ready in each queue at the broker (not counting those delivered to consumers), asked now on
    /// a connection of its own. A queue the broker could not be asked about keeps its last known depth.
    public func queueDepths() -> [String: QueueDepth] {
        depthLock.withLock {
            do {
                if inspector == nil {
                    inspector = try AMQPInspector(url: options.url, caCertificate: options.caCertificate)
                }
                for name in queueNames {
                    lastDepths[name] = QueueDepth(ready: try inspector!.count(name))
                }
            } catch {
                inspector = nil
            }
            return lastDepths
        }
    }

    public func settle(_ delivery: Delivery, _ settlement: Settlement) {
        let index = Int(delivery.receipt >> 48)
        guard let worker = connectionList.withLockedValue({ index < $0.count ? $0[index] : nil }) else { return }
        worker.settle(delivery, settlement)
    }

    /// Each connection's share in one hand-over: one wake-up of its thread, however many.
    public func settle(contentsOf settlements: [(Delivery, Settlement)]) {
        let workers = connectionList.withLockedValue { $0 }
        var start = 0
        while start < settlements.count {
            let index = Int(settlements[start].0.receipt >> 48)
            var end = start + 1
            while end < settlements.count && Int(settlements[end].0.receipt >> 48) == index { end += 1 }
            if index < workers.count {
                workers[index].settle(contentsOf: settlements[start..<end])
            }
            start = end
        }
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

import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging
import NIOConcurrencyHelpers

/// One connection, its channels and its I/O thread.
///
/// One duty per file: this one holds the state and the calls other threads make; the I/O thread's loop
/// and channel set-up are in `ConnectionWorker+IOThread.swift`, receiving in
/// `ConnectionWorker+Receiving.swift`, settling in `ConnectionWorker+Settling.swift`. Members are internal
/// so that those files can share them; those guarded by `lock` say so, the rest are the I/O thread's.
final class ConnectionWorker: @unchecked Sendable {
    // Unchecked Sendable: members shared with other threads are guarded by `lock` and say so; the rest belong to the I/O thread.
    let index: Int
    let queues: [QueueBinding]
    /// The name of each queue this connection serves, by the engine's identifier: looked up per settlement.
    let queueNames: [QueueID: String]
    let options: AMQPSource.Options
    let sink: any DeliverySink
    let counter: any CrashCounting
    let signer: AttemptSigner
    let logger: Logger
    let wakeup = WakeupDescriptor()

    let lock = MonotonicCondition()
    // Guarded by `lock`.
    var pendingSettlements: [(Delivery, Settlement)] = []
    var life = Life.delivering
    var status = Status.firstAttemptPending

    // Touched only by the I/O thread.
    var connection: AMQPConnection?
    var generation: UInt64 = 0
    var nextSequence: UInt64 = 1
    var inFlight: [UInt64: InFlight] = [:]
    var trackers: [UInt16: AckTracker] = [:]
    var pendingConfirms: [UInt64: PendingCopy] = [:]
    var consumerTags: [UInt16: String] = [:]
    var declaredQueues: Set<String> = []
    /// Queues the broker refused, with when to try again (``MonotonicClock``).
    var failedQueues: [Int: UInt64] = [:]
    /// Queues still to be set up after a connect: done a chunk at a time between receives, so that the
    /// first queues' deliveries are served while the others are still being declared.
    var pendingSetUp: [Int] = []
    /// Queues set up per turn of the I/O loop.
    static let setUpChunk = 16
    /// Queues not consumed until the date because their head message cannot be decoded, with the wait
    /// before the next try (doubling up to ten minutes).
    var heldBack: [Int: (until: UInt64, wait: Double)] = [:]
    /// True once this connection's consumers were cancelled for a drain; a new connection starts without.
    var consumersCancelled = false
    var counterKeysToForget: [String] = []

    static let publishChannel: UInt16 = 1

    /// Where the worker is in its life, as the engine's threads move it on. Only ever forward.
    enum Life: Comparable {
        /// Consuming, and handing deliveries to the engine.
        case delivering
        /// A drain: consumers are cancelled, what is held still settles, new deliveries go back to the broker.
        case draining
        /// ``close()`` was called: the I/O thread waits for its last confirms, then ends.
        case closing
        /// The I/O thread has ended.
        case finished
    }

    /// What the connection achieved, for readiness and for ``AMQPSource/start(queues:sink:)``.
    enum Status {
        /// No connection attempt has ended yet.
        case firstAttemptPending
        /// Connected, with a consumer on every queue.
        case consumingAll
        /// Not connected, or some queues refused: retrying.
        case degraded
    }

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

    var isConnected: Bool { lock.withLock { status == .consumingAll } }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "fairway-amqp-\(index)"
        thread.start()
    }

    func waitForFirstAttempt(timeout: Double) {
        let deadline = MonotonicClock.after(seconds: timeout)
        lock.lock()
        while status == .firstAttemptPending && MonotonicClock.now < deadline {
            lock.wait(untilMonotonic: deadline)
        }
        lock.unlock()
    }

    func settle(_ delivery: Delivery, _ settlement: Settlement) {
        settle(contentsOf: CollectionOfOne((delivery, settlement)))
    }

    /// Several at once: one hold of the lock and one wake-up of the connection's thread.
    func settle(contentsOf settlements: some Collection<(Delivery, Settlement)>) {
        lock.withLock { pendingSettlements.append(contentsOf: settlements) }
        wakeup.signal()
    }

    func stopDelivering() {
        lock.withLock { life = max(life, .draining) }
        wakeup.signal()
    }

    func close() {
        lock.withLock { life = max(life, .closing) }
        wakeup.signal()
        lock.lock()
        while life != .finished {
            lock.wait()
        }
        lock.unlock()
    }

    func channel(of queue: Int) -> UInt16 { UInt16(queue + 2) }

    /// Reconnects wait 0.1 s, doubling up to this, each cut by a random half at most (so that many
    /// consumers do not knock at once): a broker that comes back is served again within about a second,
    /// and one that stays down sees one connection attempt per second per connection.
    static let longestReconnectDelay = 1.0
}

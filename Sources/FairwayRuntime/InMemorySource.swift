import DequeModule
import FairwayScheduling
import Foundation
import NIOConcurrencyHelpers

/// A source that keeps its jobs in memory: for unit tests of the scheduler and the pool, and for demos.
/// Nothing survives the process; use the SQLite source for anything that must.
///
/// It honours the credit protocol exactly like a durable source: at most `credit` deliveries of a queue are
/// unsettled at once, and each settlement lets the next job of that queue through.
public final class InMemorySource: JobSource, @unchecked Sendable {
    // Unchecked Sendable: every stored var is guarded by `lock`.
    /// A job waiting in the source.
    public struct Job: Sendable, Hashable {
        public var id: UInt64
        public var queue: String
        public var jobType: String
        public var payload: [UInt8]
        /// Runs so far (each delivery counts one, a release takes it back).
        public var attempts: Int = 0
        public var enqueuedAt: UInt64
        public var lastError: String?
        /// Delivered as a suspect (its last run ended with its process), so that it runs alone.
        public var suspect = false
    }

    /// A job that ended in the dead letters, with why.
    public struct DeadLetter: Sendable, Hashable {
        public var job: Job
        public var reason: String
    }

    public let name: String
    private let lock = NIOLock()
    private var sink: (any DeliverySink)?
    private var bindings: [String: QueueBinding] = [:]
    private var delivering = false
    private var nextID: UInt64 = 1
    private var pending: [String: Deque<Job>] = [:]
    private var unsettled: [UInt64: Job] = [:]
    private var outstanding: [String: Int] = [:]
    private var maxOutstanding: [String: Int] = [:]
    private var settlementLog: [UInt64: [Settlement]] = [:]
    private var recordSettlements: Bool
    private var acked = 0
    private var deadLetters: [DeadLetter] = []
    private var delayed = 0
    /// Called after each settlement with the job and what became of it, outside the source's lock.
    private let onSettle: (@Sendable (Job, Settlement) -> Void)?

    /// - Parameters:
    ///   - recordSettlements: keep every settlement per job, for tests that check none is settled twice.
    ///   - onSettle: observes settlements (the demo uses it to keep every queue backlogged).
    public init(
        name: String = "memory",
        recordSettlements: Bool = false,
        onSettle: (@Sendable (Job, Settlement) -> Void)? = nil
    ) {
        self.name = name
        self.recordSettlements = recordSettlements
        self.onSettle = onSettle
    }

    // MARK: - Producing

    /// Adds a job; returns its id. A `suspect` job is delivered as one whose last run ended with its
    /// process, as a durable source does after a crash, so that the engine runs it alone.
    @discardableResult
    public func enqueue(
        queue: String, jobType: String, payload: [UInt8] = [], delay: Duration = .zero, suspect: Bool = false
    ) -> UInt64 {
        lock.lock()
        let id = nextID
        nextID += 1
        var made = Job(id: id, queue: queue, jobType: jobType, payload: payload, enqueuedAt: WallClock.now)
        made.suspect = suspect
        let job = made
        if delay > .zero {
            delayed += 1
            lock.unlock()
            later(delay) { self.makeReady(job) }
            return id
        }
        pending[queue, default: []].append(job)
        let batch = takeDeliverableLocked(queue: queue)
        let sink = self.sink
        lock.unlock()
        push(batch, to: sink)
        return id
    }

    /// Adds many jobs of one queue at once.
    public func enqueue(queue: String, jobType: String, payloads: [[UInt8]]) {
        lock.lock()
        let now = WallClock.now
        for payload in payloads {
            pending[queue, default: []].append(
                Job(id: nextID, queue: queue, jobType: jobType, payload: payload, enqueuedAt: now)
            )
            nextID += 1
        }
        let batch = takeDeliverableLocked(queue: queue)
        let sink = self.sink
        lock.unlock()
        push(batch, to: sink)
    }

    // MARK: - Inspection

    /// Jobs waiting in the source (not delivered), by queue.
    public func pendingCount(queue: String) -> Int { lock.withLock { pending[queue]?.count ?? 0 } }
    /// Jobs delivered and not yet settled, by queue.
    public func outstandingCount(queue: String) -> Int { lock.withLock { outstanding[queue] ?? 0 } }
    /// The most deliveries of a queue that were ever unsettled at once.
    public func maxOutstandingCount(queue: String) -> Int { lock.withLock { maxOutstanding[queue] ?? 0 } }
    /// Jobs acknowledged (succeeded).
    public var ackedCount: Int { lock.withLock { acked } }
    /// Jobs waiting out a delay or a retry backoff.
    public var delayedCount: Int { lock.withLock { delayed } }
    /// The dead letters, oldest first.
    public var deadLettered: [DeadLetter] { lock.withLock { deadLetters } }
    /// Every settlement, by job id, when recording was asked for.
    public var settlements: [UInt64: [Settlement]] { lock.withLock { settlementLog } }
    /// Jobs anywhere in the source: waiting, delayed or delivered and unsettled.
    public var liveJobCount: Int {
        lock.withLock { pending.values.reduce(0) { $0 + $1.count } + delayed + unsettled.count }
    }

    // MARK: - JobSource

    public func start(queues: [QueueBinding], sink: any DeliverySink) throws {
        lock.lock()
        self.sink = sink
        delivering = true
        var batches: [[Delivery]] = []
        for binding in queues {
            bindings[binding.name] = binding
            batches.append(takeDeliverableLocked(queue: binding.name))
        }
        lock.unlock()
        for batch in batches {
            push(batch, to: sink)
        }
    }

    /// One at a time, without the batch's arrays: the thread pool settles every job this way, and the
    /// benchmarks compare that path with worker processes.
    public func settle(_ delivery: Delivery, _ settlement: Settlement) {
        lock.lock()
        guard let (job, retryDelay) = settleLocked(delivery, settlement) else {
            lock.unlock()
            preconditionFailure("settled job \(delivery.receipt) twice or never delivered it")
        }
        // A release comes from an engine that is stopping or refused the job: pushing it (or the next one)
        // straight back would recurse into a refusal again, until the stack overflows. It waits instead.
        let batch = settlement == .release ? [] : takeDeliverableLocked(queue: job.queue)
        let sink = self.sink
        lock.unlock()
        if let retryDelay {
            later(retryDelay) { self.makeReady(job) }
        }
        onSettle?(job, settlement)
        push(batch, to: sink)
    }

    /// Settles them under one hold of the lock, and pushes the jobs they let through in one batch.
    public func settle(contentsOf settlements: [(Delivery, Settlement)]) {
        lock.lock()
        var settled: [(job: Job, settlement: Settlement, retryDelay: Duration?)] = []
        settled.reserveCapacity(settlements.count)
        var batch: [Delivery] = []
        for (delivery, settlement) in settlements {
            guard let (job, retryDelay) = settleLocked(delivery, settlement) else {
                lock.unlock()
                preconditionFailure("settled job \(delivery.receipt) twice or never delivered it")
            }
            settled.append((job, settlement, retryDelay))
            if settlement != .release {
                batch.append(contentsOf: takeDeliverableLocked(queue: job.queue))
            }
        }
        let sink = self.sink
        lock.unlock()
        for (job, settlement, retryDelay) in settled {
            if let retryDelay {
                later(retryDelay) { self.makeReady(job) }
            }
            onSettle?(job, settlement)
        }
        push(batch, to: sink)
    }

    /// Records one settlement; returns the job, and how long it waits before it is ready again when retried.
    /// Nil when the delivery is not unsettled.
    private func settleLocked(_ delivery: Delivery, _ settlement: Settlement) -> (Job, Duration?)? {
        guard var job = unsettled.removeValue(forKey: delivery.receipt) else { return nil }
        if recordSettlements {
            settlementLog[job.id, default: []].append(settlement)
        }
        outstanding[job.queue, default: 0] -= 1
        var retryDelay: Duration?
        switch settlement {
        case .ack:
            acked += 1
        case .retry(let after, let reason):
            job.lastError = reason
            delayed += 1
            retryDelay = after
        case .deadLetter(let reason):
            job.lastError = reason
            deadLetters.append(DeadLetter(job: job, reason: reason))
        case .release:
            job.attempts -= 1
            pending[job.queue, default: []].prepend(job)
        }
        return (job, retryDelay)
    }

    public func stopDelivering() {
        lock.withLock { delivering = false }
    }

    public func close() {}

    // MARK: - Internals

    private func makeReady(_ job: Job) {
        lock.lock()
        delayed -= 1
        pending[job.queue, default: []].append(job)
        let batch = takeDeliverableLocked(queue: job.queue)
        let sink = self.sink
        lock.unlock()
        push(batch, to: sink)
    }

    private func takeDeliverableLocked(queue: String) -> [Delivery] {
        guard delivering, let binding = bindings[queue] else { return [] }
        var used = outstanding[queue] ?? 0
        guard used < binding.credit, pending[queue]?.isEmpty == false else { return [] }
        var batch: [Delivery] = []
        while used < binding.credit, var job = pending[queue]?.popFirst() {
            job.attempts += 1
            unsettled[job.id] = job
            used += 1
            batch.append(
                Delivery(
                    queue: binding.id,
                    jobType: job.jobType,
                    payload: job.payload,
                    attempt: job.attempts,
                    enqueuedAt: job.enqueuedAt,
                    receipt: job.id,
                    suspect: job.suspect
                )
            )
        }
        outstanding[queue] = used
        if used > maxOutstanding[queue] ?? 0 { maxOutstanding[queue] = used }
        return batch
    }

    private func push(_ batch: [Delivery], to sink: (any DeliverySink)?) {
        guard let sink, !batch.isEmpty else { return }
        if batch.count == 1 {
            sink.deliver(batch[0])
        } else {
            sink.deliver(contentsOf: batch)
        }
    }

    private func later(_ delay: Duration, _ body: @escaping @Sendable () -> Void) {
        let nanos = max(0, Int(delay.seconds * 1e9))
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(nanos), execute: body)
    }
}

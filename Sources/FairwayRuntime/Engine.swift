import DequeModule
import FairwayJobs
import FairwayProcessWorkers
import FairwayScheduling
import Foundation
import Logging

/// How the engine runs: pool size, how service is measured, and the queues it serves.
public struct EngineConfiguration: Sendable {
    /// Worker threads in the pool.
    public var workers: Int
    public var costMode: CostMode
    public var queues: [QueueDefinition]
    /// The most extra threads started to stand in for workers stuck in handlers past their timeout.
    /// Beyond it, a stuck handler costs the pool a worker until it returns.
    public var maxReplacementWorkers: Int

    public init(
        workers: Int = ProcessInfo.processInfo.activeProcessorCount,
        costMode: CostMode = .count,
        queues: [QueueDefinition],
        maxReplacementWorkers: Int? = nil
    ) {
        self.workers = max(1, workers)
        self.costMode = costMode
        self.queues = queues
        self.maxReplacementWorkers = maxReplacementWorkers ?? max(1, workers)
    }
}

/// Errors the engine reports to its owner.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    case duplicateQueue(String)
    case unknownQueue(String)
    case alreadyStarted
    case sourceFailed(source: String, reason: String)

    public var description: String {
        switch self {
        case .duplicateQueue(let name): return "queue '\(name)' is defined twice"
        case .unknownQueue(let name): return "no queue named '\(name)'"
        case .alreadyStarted: return "the engine was already started"
        case .sourceFailed(let source, let reason): return "source '\(source)' failed to start: \(reason)"
        }
    }
}

/// The path of a job: sources push deliveries into per-queue buffers, the fair scheduler picks the next
/// queue, a pool of OS threads runs the handlers, and each outcome is settled back at its source before the
/// queue's slot returns to the scheduler.
///
/// Workers wait on a condition variable and are woken by arrivals and completions; nothing polls.
/// A handler that throws, times out or cannot decode its payload costs its own job only.
public final class Engine: @unchecked Sendable {
    private enum Phase { case created, running, draining, stopped }

    public let configuration: EngineConfiguration
    private let runner: JobRunner
    /// The worker-process pool of each queue, by queue index; nil for thread queues. Queues with the same
    /// process settings share a pool.
    private let processPools: [WorkerProcessPool?]
    private let sources: [any JobSource]
    private let logger: Logger
    private let observer: (any EngineObserver)?

    private let monitor = Monitor()
    private let workAvailable: Monitor.Condition
    private let watchdogWake: Monitor.Condition
    private let stateChanged: Monitor.Condition

    // Everything below is guarded by `monitor`.
    private var phase = Phase.created
    /// False until every source has started (a broker with a thousand queues takes seconds to set up).
    private var sourcesStarted = false
    private var scheduler: FairScheduler
    private var definitions: [QueueDefinition]
    private var buffers: [Deque<Delivery>]
    private var counters: [QueueSnapshot]
    private var queueIDs: [String: QueueID] = [:]
    private var slots: [WorkerSlot] = []
    private var liveThreads = 0
    private var stuckThreads = 0
    private var idleWorkers = 0
    private var busyWorkers = 0
    private var nextSlotNumber = 0
    private var watchdogDeadline: UInt64 = .max
    private var drainCutShort = false
    /// The worker running a suspect job (one whose last run ended with its process): while set, no other
    /// worker starts a job, so a second crash can be charged to that job alone.
    private var exclusiveSlot: WorkerSlot?

    public init(
        configuration: EngineConfiguration,
        registry: JobRegistry,
        sources: [any JobSource],
        observer: (any EngineObserver)? = nil,
        logger: Logger = Logger(label: "fairway")
    ) throws {
        self.observer = observer
        self.configuration = configuration
        self.runner = JobRunner(registry: registry)
        var pools: [ProcessWorkerSettings: WorkerProcessPool] = [:]
        self.processPools = configuration.queues.map { definition in
            guard case .process(let settings) = definition.isolation else { return nil }
            if let shared = pools[settings] { return shared }
            let pool = WorkerProcessPool(settings: settings)
            pools[settings] = pool
            return pool
        }
        self.sources = sources
        self.logger = logger
        self.workAvailable = Monitor.Condition(monitor)
        self.watchdogWake = Monitor.Condition(monitor)
        self.stateChanged = Monitor.Condition(monitor)
        var scheduler = FairScheduler(costMode: configuration.costMode)
        let now = MonotonicClock.now
        for definition in configuration.queues {
            guard queueIDs[definition.name] == nil else { throw EngineError.duplicateQueue(definition.name) }
            queueIDs[definition.name] = scheduler.addQueue(definition.settings, now: now)
        }
        self.scheduler = scheduler
        self.definitions = configuration.queues
        self.buffers = Array(repeating: Deque(), count: configuration.queues.count)
        self.counters = configuration.queues.map {
            QueueSnapshot(name: $0.name, settings: $0.settings, held: 0, inFlight: 0)
        }
    }

    // MARK: - Lifecycle

    /// Starts the worker pool and then every source. Returns once all are running.
    public func start() throws {
        try monitor.withLock {
            guard phase == .created else { throw EngineError.alreadyStarted }
            phase = .running
            for _ in 0..<configuration.workers {
                spawnWorkerLocked()
            }
            startThread(name: "fairway-watchdog") { [self] in watchdogMain() }
        }
        let bindings = definitions.enumerated().map { index, definition in
            QueueBinding(id: QueueID(index), name: definition.name, credit: definition.credit)
        }
        for (index, source) in sources.enumerated() {
            do {
                try source.start(queues: bindings, sink: SourceSink(engine: self, sourceIndex: index))
            } catch {
                logger.error("source failed to start", metadata: ["source": "\(source.name)", "error": "\(error)"])
                shutdown(drainTimeout: .zero)
                throw EngineError.sourceFailed(source: source.name, reason: "\(error)")
            }
        }
        monitor.withLock { sourcesStarted = true }
    }

    /// Stops gracefully: no new deliveries, held jobs released to their sources at once, running jobs given
    /// until `drainTimeout` to finish, then released too. Returns when every source is closed.
    public func shutdown(drainTimeout: Duration) {
        let alreadyStopping = monitor.withLock { () -> Bool in
            guard phase == .running || phase == .created else { return true }
            phase = .draining
            return false
        }
        if alreadyStopping {
            waitUntilStopped()
            return
        }
        for source in sources {
            source.stopDelivering()
        }
        releaseHeld()
        let deadline = MonotonicClock.now &+ UInt64(max(0, drainTimeout.seconds) * 1e9)
        var abandoned: [(Delivery, WorkerSlot)] = []
        monitor.withLock {
            while busyWorkers > 0 && MonotonicClock.now < deadline && !drainCutShort {
                stateChanged.wait(until: deadline)
            }
            for slot in slots where slot.state == .running {
                if slot.claim(.abandoned), let delivery = slot.delivery {
                    slot.cancelJob()
                    abandoned.append((delivery, slot))
                }
            }
        }
        for (delivery, _) in abandoned {
            sources[delivery.sourceIndex].settle(delivery, .release)
        }
        monitor.withLock {
            for (delivery, slot) in abandoned {
                counters[delivery.queue.index].released += 1
                finishLocked(slot, outcome: nil, settlement: .release, cost: 0)
                stuckThreads += 1
            }
            phase = .stopped
            workAvailable.broadcast()
            watchdogWake.signal()
        }
        for source in sources {
            source.close()
        }
        for pool in uniquePools {
            pool.shutdown()
        }
        monitor.withLock {
            stateChanged.broadcast()
        }
    }

    /// Ends a drain in progress at once: jobs still running are released to their sources as if the drain
    /// timeout had passed (a second SIGTERM). Does nothing outside a shutdown.
    public func endDrainNow() {
        monitor.withLock {
            drainCutShort = true
            stateChanged.broadcast()
        }
    }

    /// Blocks until ``shutdown(drainTimeout:)`` has finished.
    public func waitUntilStopped() {
        monitor.withLock {
            while phase != .stopped {
                stateChanged.wait()
            }
        }
    }

    // MARK: - Queues

    /// The identifier the engine gave a queue.
    public func queueID(named name: String) -> QueueID? {
        monitor.withLock { queueIDs[name] }
    }

    /// Changes a queue's weight, concurrency, rate limit or pause state while running.
    public func updateQueue(named name: String, settings: QueueSettings) throws {
        try monitor.withLock {
            guard let id = queueIDs[name] else { throw EngineError.unknownQueue(name) }
            scheduler.update(id, settings: settings, now: MonotonicClock.now)
            definitions[id.index].settings = settings
            counters[id.index].settings = settings
            if idleWorkers > 0 && scheduler.hasEligibleQueue {
                workAvailable.broadcast()
            }
            // A rate limit may now wake sooner than idle workers planned to.
            if scheduler.nextTokenTime != nil {
                workAvailable.broadcast()
            }
        }
    }

    /// Counters for every queue and the pool, taken at one instant.
    public func snapshot() -> EngineSnapshot {
        monitor.withLock {
            var queues = counters
            for index in queues.indices {
                queues[index].held = buffers[index].count
                queues[index].inFlight = scheduler.inFlight(QueueID(index))
                queues[index].oldestHeldEnqueuedAt = buffers[index].first?.enqueuedAt
            }
            var snapshot = EngineSnapshot(
                queues: queues,
                workers: configuration.workers,
                busyWorkers: busyWorkers,
                stuckWorkers: stuckThreads,
                draining: phase == .draining || phase == .stopped
            )
            snapshot.starting = !sourcesStarted && (phase == .created || phase == .running)
            snapshot.workerProcesses = uniquePools.reduce(WorkerProcessCounts()) { $0 + $1.counts }
            return snapshot
        }
    }

    // MARK: - Deliveries

    fileprivate func deliver(_ delivery: Delivery, sourceIndex: Int) {
        var delivery = delivery
        delivery.sourceIndex = sourceIndex
        monitor.lock()
        guard phase == .running else {
            monitor.unlock()
            sources[sourceIndex].settle(delivery, .release)
            return
        }
        let queue = delivery.queue
        buffers[queue.index].append(delivery)
        scheduler.arrived(queue, now: MonotonicClock.now)
        if idleWorkers > 0 && scheduler.hasEligibleQueue {
            workAvailable.signal()
        }
        monitor.unlock()
    }

    fileprivate func deliver(_ batch: [Delivery], sourceIndex: Int) {
        var refused: [Delivery] = []
        monitor.lock()
        if phase == .running {
            let now = MonotonicClock.now
            for var delivery in batch {
                delivery.sourceIndex = sourceIndex
                buffers[delivery.queue.index].append(delivery)
                scheduler.arrived(delivery.queue, now: now)
            }
            if idleWorkers > 0 && scheduler.hasEligibleQueue {
                workAvailable.signal()
            }
        } else {
            refused = batch
        }
        monitor.unlock()
        for delivery in refused {
            sources[sourceIndex].settle(delivery, .release)
        }
    }

    fileprivate func withdrawHeld(sourceIndex: Int, where predicate: (Delivery) -> Bool) -> Int {
        monitor.withLock {
            let now = MonotonicClock.now
            var taken = 0
            for index in buffers.indices where !buffers[index].isEmpty {
                let before = buffers[index].count
                buffers[index].removeAll { $0.sourceIndex == sourceIndex && predicate($0) }
                let removed = before - buffers[index].count
                if removed > 0 {
                    scheduler.withdrew(QueueID(index), count: removed, now: now)
                    taken += removed
                }
            }
            return taken
        }
    }

    /// Hands every held, not-started delivery back to its source.
    private func releaseHeld() {
        var held: [Delivery] = []
        monitor.withLock {
            let now = MonotonicClock.now
            for index in buffers.indices where !buffers[index].isEmpty {
                let count = buffers[index].count
                held.append(contentsOf: buffers[index])
                buffers[index].removeAll()
                scheduler.withdrew(QueueID(index), count: count, now: now)
                counters[index].released += count
            }
            workAvailable.broadcast()
        }
        for delivery in held {
            sources[delivery.sourceIndex].settle(delivery, .release)
        }
    }

    // MARK: - Workers

    private func spawnWorkerLocked() {
        let slot = WorkerSlot(number: nextSlotNumber)
        nextSlotNumber += 1
        slots.append(slot)
        liveThreads += 1
        startThread(name: "fairway-worker-\(slot.number)") { [self] in workerMain(slot) }
    }

    private func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.name = name
        thread.stackSize = 8 << 20
        thread.start()
    }

    private func workerMain(_ slot: WorkerSlot) {
        monitor.lock()
        while let (delivery, definition) = takeNextLocked(slot) {
            monitor.unlock()
            let context = JobContext(
                queue: definition.name,
                jobType: delivery.jobType,
                jobID: String(delivery.receipt),
                attempt: delivery.attempt,
                maxAttempts: definition.retry.maxAttempts,
                deadline: .now + definition.timeout,
                cancellation: slot.cancellation,
                logger: logger
            )
            let source = sources[delivery.sourceIndex]
            let mark = source.runStarting(delivery)
            let outcome: JobOutcome
            if let pool = processPools[delivery.queue.index] {
                outcome = runInProcess(delivery, context: context, timeout: definition.timeout, pool: pool, slot: slot)
            } else {
                outcome = runner.run(
                    delivery,
                    context: context,
                    executor: { slot.executor },
                    taskStarted: { task in
                        monitor.withLock { slot.task = task }
                        if slot.state == .abandoned { task.cancel() }
                    }
                )
            }
            source.runEnded(mark)
            let ended = MonotonicClock.now
            if slot.claim(.finishing) {
                // Jitter only for a failure: drawing it costs a getrandom system call (2 % of a drain).
                let settlement = definition.retry.settlement(
                    for: outcome,
                    attempt: delivery.attempt,
                    random: outcome == .succeeded ? 0 : Double.random(in: 0..<1)
                )
                sources[delivery.sourceIndex].settle(delivery, settlement)
                let cost = Double(ended &- slot.startedAt) / 1e9
                observer?.jobEnded(
                    queue: definition.name, outcome: outcome, settlement: settlement, runSeconds: cost,
                    waitSeconds: slot.waitSeconds
                )
                monitor.lock()
                finishLocked(slot, outcome: outcome, settlement: settlement, cost: cost)
            } else {
                // The watchdog or the shutdown settled this job already; its result is discarded.
                monitor.lock()
                stuckThreads -= 1
                slot.task = nil
                slot.setState(.idle)
                if liveThreads - stuckThreads > configuration.workers || phase == .stopped {
                    break
                }
            }
        }
        liveThreads -= 1
        slots.removeAll { $0 === slot }
        stateChanged.broadcast()
        monitor.unlock()
    }

    /// Each worker-process pool once.
    private var uniquePools: [WorkerProcessPool] {
        var seen = Set<ObjectIdentifier>()
        return processPools.compactMap { $0 }.filter { seen.insert(ObjectIdentifier($0)).inserted }
    }

    /// Runs a job of a process-isolated queue in a worker process, blocking this worker thread until it ends.
    private func runInProcess(
        _ delivery: Delivery, context: JobContext, timeout: Duration, pool: WorkerProcessPool, slot: WorkerSlot
    ) -> JobOutcome {
        var job = WorkerMessage(kind: .job)
        job.id = context.jobID
        job.queue = context.queue
        job.jobType = delivery.jobType
        job.attempt = delivery.attempt
        job.maxAttempts = context.maxAttempts
        job.timeoutSeconds = timeout.seconds
        let result = pool.run(job, payload: delivery.payload) { cancel in
            monitor.withLock { slot.cancelProcess = cancel }
            if slot.state == .abandoned { cancel() }
        }
        monitor.withLock { slot.cancelProcess = nil }
        switch result {
        case .finished(.success, _):
            return .succeeded
        case .finished(.failure, let reason):
            return .failed(reason: reason ?? "the worker reported a failure without a reason")
        case .finished(.rejected, let reason):
            return .rejected(reason: reason ?? "the worker rejected the job without a reason")
        case .crashed(let reason):
            // A worker killed after its job timed out is the timeout's doing, already reported.
            guard slot.state != .abandoned else { return .crashed(reason: reason) }
            logger.warning(
                "worker process crashed",
                metadata: ["queue": "\(context.queue)", "job": "\(delivery.jobType)", "reason": "\(reason)"])
            return .crashed(reason: reason)
        case .notStarted(let reason):
            logger.error(
                "worker process could not start", metadata: ["queue": "\(context.queue)", "reason": "\(reason)"])
            return .failed(reason: reason)
        }
    }

    /// Waits for the next job the scheduler picks, or returns nil when the worker should exit.
    private func takeNextLocked(_ slot: WorkerSlot) -> (Delivery, QueueDefinition)? {
        while true {
            guard phase == .running else { return nil }
            if liveThreads - stuckThreads > configuration.workers { return nil }
            let now = MonotonicClock.now
            if exclusiveSlot == nil, let dispatch = scheduler.next(now: now) {
                let index = dispatch.queue.index
                let delivery = buffers[index].removeFirst()
                let definition = definitions[index]
                slot.delivery = delivery
                slot.dispatch = dispatch
                slot.startedAt = now
                // A suspect's clock starts once it runs alone, below.
                slot.deadline = delivery.suspect ? .max : now &+ UInt64(max(0, definition.timeout.seconds) * 1e9)
                slot.cancellation.reset()
                slot.setState(.running)
                busyWorkers += 1
                slot.waitSeconds = nil
                if let enqueuedAt = delivery.enqueuedAt {
                    let wall = WallClock.now
                    let wait = wall > enqueuedAt ? Double(wall - enqueuedAt) / 1e9 : 0
                    counters[index].waitSeconds += wait
                    counters[index].waitSamples += 1
                    slot.waitSeconds = wait
                }
                if slot.deadline < watchdogDeadline {
                    watchdogWake.signal()
                }
                if delivery.suspect {
                    // Alone: wait for the jobs already running to end, and start no other meanwhile.
                    exclusiveSlot = slot
                    while busyWorkers > 1 && phase == .running {
                        stateChanged.wait()
                    }
                    if slot.state == .abandoned {
                        // The shutdown released it while it waited: it never ran.
                        stuckThreads -= 1
                        slot.setState(.idle)
                        continue
                    }
                    let started = MonotonicClock.now
                    slot.startedAt = started
                    slot.deadline = started &+ UInt64(max(0, definition.timeout.seconds) * 1e9)
                    if slot.deadline < watchdogDeadline {
                        watchdogWake.signal()
                    }
                } else if idleWorkers > 0 && scheduler.hasEligibleQueue {
                    workAvailable.signal()
                }
                return (delivery, definition)
            }
            idleWorkers += 1
            if let wake = scheduler.nextTokenTime {
                workAvailable.wait(until: wake)
            } else {
                workAvailable.wait()
            }
            idleWorkers -= 1
        }
    }

    /// Returns a finished job's slot to the scheduler and counts its outcome. Called with the monitor held,
    /// after the job's settlement was handed to its source.
    private func finishLocked(_ slot: WorkerSlot, outcome: JobOutcome?, settlement: Settlement, cost: Double) {
        guard let dispatch = slot.dispatch else { return }
        let index = dispatch.queue.index
        scheduler.complete(dispatch.queue, charge: dispatch.charge, cost: cost, now: MonotonicClock.now)
        busyWorkers -= 1
        counters[index].busySeconds += cost
        switch outcome {
        case .succeeded: counters[index].succeeded += 1
        case .failed: counters[index].failed += 1
        case .timedOut: counters[index].timedOut += 1
        case .rejected: counters[index].rejected += 1
        case .crashed: counters[index].crashed += 1
        case nil: break
        }
        switch settlement {
        case .ack: break
        case .retry: counters[index].retried += 1
        case .deadLetter: counters[index].deadLettered += 1
        case .release: break
        }
        slot.dispatch = nil
        slot.delivery = nil
        slot.deadline = .max
        if exclusiveSlot === slot {
            exclusiveSlot = nil
            workAvailable.broadcast()
        }
        if exclusiveSlot != nil {
            stateChanged.broadcast()
        }
        if slot.state == .finishing {
            slot.setState(.idle)
        }
        if busyWorkers == 0 {
            stateChanged.broadcast()
        }
        if idleWorkers > 0 && scheduler.hasEligibleQueue {
            workAvailable.signal()
        }
    }

    // MARK: - Watchdog

    /// Ends jobs that run past their queue's timeout: settles them as timed out, gives their slot back to
    /// the scheduler, and starts a replacement thread while the stuck handler keeps its own.
    private func watchdogMain() {
        monitor.lock()
        while phase != .stopped {
            let now = MonotonicClock.now
            var expired: [(Delivery, WorkerSlot, QueueDefinition)] = []
            var earliest = UInt64.max
            for slot in slots where slot.state == .running {
                if slot.deadline <= now {
                    if slot.claim(.abandoned), let delivery = slot.delivery {
                        slot.cancelJob()
                        expired.append((delivery, slot, definitions[delivery.queue.index]))
                    }
                } else {
                    earliest = min(earliest, slot.deadline)
                }
            }
            if !expired.isEmpty {
                monitor.unlock()
                var settled: [(WorkerSlot, JobOutcome, Settlement, Double)] = []
                for (delivery, slot, definition) in expired {
                    let outcome = JobOutcome.timedOut(after: definition.timeout)
                    let settlement = definition.retry.settlement(
                        for: outcome,
                        attempt: delivery.attempt,
                        random: Double.random(in: 0..<1)
                    )
                    sources[delivery.sourceIndex].settle(delivery, settlement)
                    observer?.jobEnded(
                        queue: definition.name, outcome: outcome, settlement: settlement,
                        runSeconds: definition.timeout.seconds, waitSeconds: nil
                    )
                    logger.warning(
                        "job timed out",
                        metadata: [
                            "queue": "\(definition.name)", "job": "\(delivery.jobType)",
                            "timeout": "\(definition.timeout.compactDescription)",
                        ]
                    )
                    settled.append((slot, outcome, settlement, definition.timeout.seconds))
                }
                monitor.lock()
                for (slot, outcome, settlement, cost) in settled {
                    stuckThreads += 1
                    finishLocked(slot, outcome: outcome, settlement: settlement, cost: cost)
                }
                let replacements = configuration.maxReplacementWorkers
                while phase == .running && liveThreads - stuckThreads < configuration.workers
                    && liveThreads < configuration.workers + replacements
                {
                    spawnWorkerLocked()
                }
                continue
            }
            watchdogDeadline = earliest
            if earliest == .max {
                watchdogWake.wait()
            } else {
                watchdogWake.wait(until: earliest)
            }
        }
        monitor.unlock()
    }
}

/// The sink a source pushes into; it stamps each delivery with the source it came from.
private struct SourceSink: DeliverySink {
    let engine: Engine
    let sourceIndex: Int

    func deliver(_ delivery: Delivery) {
        engine.deliver(delivery, sourceIndex: sourceIndex)
    }

    func deliver(contentsOf deliveries: [Delivery]) {
        engine.deliver(deliveries, sourceIndex: sourceIndex)
    }

    func withdrawHeld(where predicate: @escaping @Sendable (Delivery) -> Bool) -> Int {
        engine.withdrawHeld(sourceIndex: sourceIndex, where: predicate)
    }
}

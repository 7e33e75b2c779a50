import DequeModule
import FairwayJobs
import FairwayScheduling
import Foundation
import Logging

/// The path of a job: sources push deliveries into per-queue buffers, the fair scheduler picks the next
/// queue, a pool of OS threads runs the handlers, and each outcome is settled back at its source before the
/// queue's slot returns to the scheduler.
///
/// Workers wait on a condition variable and are woken by arrivals and completions; nothing polls.
/// A handler that throws, times out or cannot decode its payload costs its own job only.
///
/// One duty per file: this one holds the state, the lifecycle and the queue calls; deliveries from the
/// sources are in `Engine+Deliveries.swift`, the worker threads in `Engine+Workers.swift`, timeouts in
/// `Engine+Watchdog.swift`. Members are internal so that those files can share them; all of them are
/// guarded by `monitor` unless their comment says otherwise.
public final class Engine: @unchecked Sendable {
    // Unchecked Sendable: every stored var is guarded by `monitor` (a pthread mutex) unless its comment names another guard.
    /// The engine's life, only ever forward. Jobs run while starting: a broker with a thousand queues takes
    /// seconds to set up, and the first queues deliver meanwhile.
    enum Phase {
        case created
        /// Workers are up; the sources are still starting.
        case starting
        case running
        case draining
        case stopped

        /// True while deliveries are taken and jobs are started.
        var acceptsWork: Bool { self == .starting || self == .running }
    }

    public let configuration: EngineConfiguration
    let runner: JobRunner
    /// The worker-process pool of each queue, by queue index; nil for thread queues. Queues with the same
    /// process settings share a pool.
    let processPools: [(any IsolatedJobPool)?]
    let sources: [any JobSource]
    let logger: Logger
    let observer: (any EngineObserver)?

    let monitor = Monitor()
    let workAvailable: Monitor.Condition
    let watchdogWake: Monitor.Condition
    let stateChanged: Monitor.Condition

    // Everything below is guarded by `monitor`.
    var phase = Phase.created
    var scheduler: FairScheduler
    var definitions: [QueueDefinition]
    var buffers: [KeyFairBuffer<Delivery>]
    /// Per queue: `definitions[i].keySharing != nil`, kept as a flag because every delivery reads it.
    let keyed: [Bool]
    var counters: [QueueSnapshot]
    var queueIDs: [String: QueueID] = [:]
    var slots: [WorkerSlot] = []
    var liveThreads = 0
    var stuckThreads = 0
    var idleWorkers = 0
    var busyWorkers = 0
    var nextSlotNumber = 0
    var watchdogDeadline: UInt64 = .max
    /// When the drain releases the jobs still running: `.max` until a shutdown sets it, 0 once
    /// ``endDrainNow()`` cut it short (also when that came first: a second signal overtaking the first).
    var drainDeadline: UInt64 = .max
    /// The worker running a suspect job (one whose last run ended with its process): while set, no other
    /// worker starts a job, so a second crash can be charged to that job alone.
    var exclusiveSlot: WorkerSlot?
    /// Each process-isolated queue's recent job run times, by job type: how far ahead its jobs may be sent to
    /// a worker process (`Engine+Pipelines.swift`).
    var runTimes: [RunTimeEstimates]
    /// Starts of worker processes that failed in a row, by pool; a pool is absent once one of its workers
    /// starts. Each queue the pool serves shows it (`QueueSnapshot.failedWorkerStarts`).
    var failedStartsInARow: [ObjectIdentifier: Int] = [:]

    public init(
        configuration: EngineConfiguration,
        registry: JobRegistry,
        sources: [any JobSource],
        observer: (any EngineObserver)? = nil,
        processIsolation: (any ProcessIsolation)? = nil,
        logger: Logger = Logger(label: "fairway")
    ) throws {
        self.observer = observer
        self.configuration = configuration
        self.runner = JobRunner(registry: registry)
        var pools: [ProcessWorkerSettings: any IsolatedJobPool] = [:]
        self.processPools = try configuration.queues.map { definition in
            guard case .process(let settings) = definition.isolation else { return nil }
            guard let processIsolation else { throw EngineError.noProcessIsolation(queue: definition.name) }
            if let shared = pools[settings] { return shared }
            let pool = processIsolation.makePool(settings: settings, logger: logger)
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
        var groupIDs: [String: GroupID] = [:]
        for group in configuration.groups {
            guard groupIDs[group.name] == nil else { throw EngineError.duplicateGroup(group.name) }
            groupIDs[group.name] = scheduler.addGroup(weight: group.weight)
        }
        for definition in configuration.queues {
            guard queueIDs[definition.name] == nil else { throw EngineError.duplicateQueue(definition.name) }
            let group = try definition.group.map { name in
                guard let id = groupIDs[name] else {
                    throw EngineError.unknownGroup(queue: definition.name, group: name)
                }
                return id
            }
            queueIDs[definition.name] = scheduler.addQueue(definition.settings, group: group, now: now)
        }
        self.scheduler = scheduler
        self.definitions = configuration.queues
        self.buffers = configuration.queues.map {
            KeyFairBuffer(keyWeights: $0.keys?.weights ?? [:], keyConcurrency: $0.keys?.concurrency)
        }
        self.keyed = configuration.queues.map { $0.keySharing != nil }
        self.runTimes = Array(repeating: RunTimeEstimates(), count: configuration.queues.count)
        self.counters = configuration.queues.map {
            var counters = QueueSnapshot(name: $0.name, settings: $0.settings, held: 0, inFlight: 0)
            counters.group = $0.group
            return counters
        }
    }

    // MARK: - Lifecycle

    /// Starts the worker pool and then every source. Returns once all are running.
    public func start() throws {
        try monitor.withLock {
            guard phase == .created else { throw EngineError.alreadyStarted }
            phase = .starting
            for _ in 0..<configuration.workers {
                spawnWorkerLocked()
            }
            startThread(name: "fairway-watchdog") { [self] in watchdogMain() }
        }
        let bindings = definitions.enumerated().map { index, definition in
            // A capped queue's credit is a share of the cap: holding more than this process's workers could
            // start would keep permits from other processes' idle workers.
            QueueBinding(
                id: QueueID(index), name: definition.name,
                credit: definition.globalConcurrency == nil
                    ? definition.credit : min(definition.credit, configuration.workers),
                globalConcurrency: definition.globalConcurrency, keys: definition.keySharing)
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
        monitor.withLock {
            if phase == .starting { phase = .running }
        }
    }

    /// Stops gracefully: no new deliveries, held jobs released to their sources at once, running jobs given
    /// until `drainTimeout` to finish, then released too. Returns when every source is closed, with what
    /// the drain did (empty for a call that found the engine already stopping).
    @discardableResult
    public func shutdown(drainTimeout: Duration) -> DrainSummary {
        let started = MonotonicClock.now
        let alreadyStopping = monitor.withLock { () -> Bool in
            guard phase.acceptsWork || phase == .created else { return true }
            phase = .draining
            drainDeadline = min(drainDeadline, MonotonicClock.after(seconds: drainTimeout.seconds))
            return false
        }
        if alreadyStopping {
            waitUntilStopped()
            return DrainSummary()
        }
        for source in sources {
            source.stopDelivering()
        }
        var summary = DrainSummary()
        summary.heldReleased = releaseHeld()
        var abandoned: [(Dispatch, Delivery)] = []
        var unstarted: [PipelinedJob] = []
        monitor.withLock {
            summary.runningAtStart = busyWorkers
            while busyWorkers > 0 && MonotonicClock.now < drainDeadline {
                stateChanged.wait(until: drainDeadline)
            }
            for slot in slots where slot.state == .running {
                // Taken from its slot and its thread counted stuck at once, as the watchdog does.
                if slot.claim(.abandoned), let (dispatch, delivery) = takeJobLocked(from: slot) {
                    slot.cancelJob()
                    stuckThreads += 1
                    abandoned.append((dispatch, delivery))
                    unstarted.append(contentsOf: slot.ahead)
                    slot.ahead.removeAll()
                }
            }
        }
        for (_, delivery) in abandoned {
            sources[delivery.sourceIndex].settle(delivery, .release)
        }
        // Sent ahead to those jobs' worker processes and never started there.
        releaseUnstarted(unstarted)
        summary.heldReleased += unstarted.count
        monitor.withLock {
            for (dispatch, delivery) in abandoned {
                counters[delivery.queue.index].released += 1
                countOutLocked(dispatch, delivery, outcome: nil, settlement: .release, cost: 0)
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
        summary.runningReleased = abandoned.count
        summary.seconds = Double(MonotonicClock.now &- started) / 1e9
        return summary
    }

    /// Ends a drain in progress at once: jobs still running are released to their sources as if the drain
    /// timeout had passed (a second SIGTERM). Called before the shutdown, it makes that drain end at once.
    public func endDrainNow() {
        monitor.withLock {
            drainDeadline = 0
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
            if scheduler.nextEligibleTime != nil {
                workAvailable.broadcast()
            }
        }
    }

    /// Counters for every queue and the pool, taken at one instant.
    public func snapshot() -> EngineSnapshot {
        monitor.withLock {
            var queues = counters
            let now = MonotonicClock.now
            for index in queues.indices {
                queues[index].held = buffers[index].count
                queues[index].inFlight = scheduler.inFlight(QueueID(index))
                queues[index].oldestHeldEnqueuedAt = buffers[index].heads.compactMap(\.enqueuedAt).min()
                queues[index].activeKeys = keyed[index] ? buffers[index].activeKeys : 0
                queues[index].heldOffSeconds = scheduler.heldUntil(QueueID(index), now: now).map {
                    Double($0 - now) / 1e9
                }
                if !failedStartsInARow.isEmpty, let pool = processPools[index] {
                    queues[index].failedWorkerStarts = failedStartsInARow[ObjectIdentifier(pool)] ?? 0
                }
            }
            var snapshot = EngineSnapshot(
                queues: queues,
                workers: configuration.workers,
                busyWorkers: busyWorkers,
                stuckWorkers: stuckThreads,
                draining: phase == .draining || phase == .stopped
            )
            snapshot.starting = phase == .created || phase == .starting
            snapshot.workerProcesses = uniquePools.reduce(WorkerProcessCounts()) { $0 + $1.counts }
            return snapshot
        }
    }
}

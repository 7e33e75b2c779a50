import FairwayProcessWorkers
import FairwayRuntime
import Foundation
import Prometheus
import Synchronization

/// Every metric Fairway exposes, registered once, in one place (the Prometheus registry refuses one name
/// with two types or two help texts). Job-level metrics are recorded as jobs end; levels (depths, busy
/// workers) are read from the engine and the sources at each scrape.
public final class FairwayMetrics: EngineObserver, @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()

    /// The outcome label of `fairway_jobs_completed_total`.
    public enum Outcome: String, CaseIterable, Sendable {
        case success, retry
        case deadLetter = "dead_letter"
        case timeout, crash, released
    }

    static let runBuckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800]
    static let waitBuckets = [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600]

    private struct PerQueue {
        var completed: [Outcome: Counter]
        var run: ValueHistogram
        var wait: ValueHistogram
        var ready: Gauge
        var held: Gauge
        var inFlight: Gauge
        var oldestAge: Gauge
        var weight: Gauge
        var paused: Gauge
    }

    private let queues: [String: PerQueue]
    private let workers: Gauge
    private let busyWorkers: Gauge
    private let stuckWorkers: Gauge
    private let heldJobs: Gauge
    private let draining: Gauge
    private var connected: [String: Gauge] = [:]
    private let processesStarted: Counter
    private let processesCrashed: Counter
    private let processesRecycled: Counter
    private let processesIdle: Gauge
    /// The engine's process counts at the last scrape: counters grow by the difference.
    private let lastProcessCounts = Mutex(WorkerProcessCounts())

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "fairway", metricName: metric, unitName: unit, helpText: help)
    }

    /// Registers the metrics of these queues and sources.
    public init(queueNames: [String], sourceNames: [String]) {
        let registry = self.registry
        var queues: [String: PerQueue] = [:]
        for queue in queueNames {
            let labels = [("queue", queue)]
            queues[queue] = PerQueue(
                completed: Dictionary(
                    uniqueKeysWithValues: Outcome.allCases.map { outcome in
                        (
                            outcome,
                            registry.makeCounter(
                                descriptor: Self.name(
                                    "jobs_completed", "total",
                                    "Runs that ended, by outcome: success, retry, dead_letter, timeout, crash, released."
                                ),
                                labels: labels + [("outcome", outcome.rawValue)]
                            )
                        )
                    }
                ),
                run: registry.makeValueHistogram(
                    descriptor: Self.name("job_run_duration", "seconds", "How long jobs ran."),
                    labels: labels, buckets: Self.runBuckets
                ),
                wait: registry.makeValueHistogram(
                    descriptor: Self.name(
                        "job_wait_duration", "seconds", "How long jobs waited between enqueue and start."),
                    labels: labels, buckets: Self.waitBuckets
                ),
                ready: registry.makeGauge(
                    descriptor: Self.name(
                        "queue_ready", "jobs", "Jobs ready at the source and not yet held by this process."),
                    labels: labels
                ),
                held: registry.makeGauge(
                    descriptor: Self.name("queue_held", "jobs", "Jobs delivered to this process and not yet started."),
                    labels: labels
                ),
                inFlight: registry.makeGauge(
                    descriptor: Self.name("queue_in_flight", "jobs", "Jobs running now."), labels: labels
                ),
                oldestAge: registry.makeGauge(
                    descriptor: Self.name(
                        "queue_oldest_ready_age", "seconds",
                        "Age of the oldest job waiting to start (at the source or held)."
                    ),
                    labels: labels
                ),
                weight: registry.makeGauge(
                    descriptor: Self.name("queue_weight", "", "The queue's scheduling weight."), labels: labels
                ),
                paused: registry.makeGauge(
                    descriptor: Self.name("queue_paused", "", "1 while the queue is paused."), labels: labels
                )
            )
        }
        self.queues = queues
        workers = registry.makeGauge(descriptor: Self.name("workers", "threads", "Worker threads in the pool."))
        busyWorkers = registry.makeGauge(
            descriptor: Self.name("workers_busy", "threads", "Worker threads running a job."))
        stuckWorkers = registry.makeGauge(
            descriptor: Self.name("workers_stuck", "threads", "Threads held by handlers that ran past their timeout.")
        )
        heldJobs = registry.makeGauge(
            descriptor: Self.name("held", "jobs", "Jobs held by this process, not yet started."))
        draining = registry.makeGauge(
            descriptor: Self.name("draining", "", "1 while the process is shutting down."))
        processesStarted = registry.makeCounter(
            descriptor: Self.name("worker_processes_started", "total", "Worker processes started."))
        processesCrashed = registry.makeCounter(
            descriptor: Self.name(
                "worker_processes_crashed", "total", "Worker processes that died mid-job or broke the protocol."))
        processesRecycled = registry.makeCounter(
            descriptor: Self.name(
                "worker_processes_recycled", "total",
                "Worker processes replaced after their job or memory limit, or a timeout."))
        processesIdle = registry.makeGauge(
            descriptor: Self.name("worker_processes_idle", "", "Worker processes waiting for a job."))
        for source in Set(sourceNames) {
            connected[source] = registry.makeGauge(
                descriptor: Self.name("source_connected", "", "1 while the source is connected."),
                labels: [("source", source)]
            )
        }
    }

    public func jobEnded(
        queue: String, outcome: JobOutcome?, settlement: Settlement, runSeconds: Double, waitSeconds: Double?
    ) {
        guard let metrics = queues[queue] else { return }
        let label: Outcome
        switch (outcome, settlement) {
        case (.timedOut, _): label = .timeout
        case (.crashed, _): label = .crash
        case (_, .ack): label = .success
        case (_, .retry): label = .retry
        case (_, .deadLetter): label = .deadLetter
        case (_, .release): label = .released
        }
        metrics.completed[label]?.increment()
        if outcome != nil { metrics.run.record(runSeconds) }
        if let waitSeconds { metrics.wait.record(waitSeconds) }
    }

    /// Sets the levels from the engine and the sources, before a scrape.
    public func refresh(snapshot: EngineSnapshot, depths: [String: QueueDepth], connected sources: [String: Bool]) {
        let now = WallClock.now
        for queue in snapshot.queues {
            guard let metrics = queues[queue.name] else { continue }
            let depth = depths[queue.name]
            metrics.ready.set(to: Double(depth?.ready ?? 0))
            metrics.held.set(to: Double(queue.held))
            metrics.inFlight.set(to: Double(queue.inFlight))
            metrics.weight.set(to: queue.settings.weight)
            metrics.paused.set(to: queue.settings.paused ? 1 : 0)
            var oldest = depth?.oldestAgeSeconds ?? 0
            if let heldSince = queue.oldestHeldEnqueuedAt, now > heldSince {
                oldest = max(oldest, Double(now - heldSince) / 1e9)
            }
            metrics.oldestAge.set(to: oldest)
        }
        workers.set(to: Double(snapshot.workers))
        busyWorkers.set(to: Double(snapshot.busyWorkers))
        stuckWorkers.set(to: Double(snapshot.stuckWorkers))
        heldJobs.set(to: Double(snapshot.held))
        draining.set(to: snapshot.draining ? 1 : 0)
        let counts = snapshot.workerProcesses
        let last = lastProcessCounts.withLock { last in
            defer { last = counts }
            return last
        }
        processesStarted.increment(by: Int64(max(0, counts.started - last.started)))
        processesCrashed.increment(by: Int64(max(0, counts.crashed - last.crashed)))
        processesRecycled.increment(by: Int64(max(0, counts.recycled - last.recycled)))
        processesIdle.set(to: Double(counts.idle))
        for (source, up) in sources {
            connected[source]?.set(to: up ? 1 : 0)
        }
    }

    /// The Prometheus text exposition.
    public func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }
}

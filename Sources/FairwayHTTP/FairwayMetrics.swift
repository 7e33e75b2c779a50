import FairwayRuntime
import Foundation
import NIOConcurrencyHelpers
import Prometheus

/// Every metric Fairway exposes, in one place. Process-wide metrics live on a swift-prometheus registry;
/// the per-queue families are kept as plain numbers and rendered at each scrape, so that 10,000 queues
/// cost a few megabytes and no start-up time. Up to `fullDetailUpTo` queues every per-queue series is
/// exposed; beyond it `/metrics` is compact: run and wait histograms are one series each across all
/// queues, every queue keeps its ready count, and the other per-queue series appear only while non-zero
/// (docs/metrics.md).
public final class FairwayMetrics: EngineObserver, Sendable {
    public let registry = PrometheusCollectorRegistry()

    /// The outcome label of `fairway_jobs_completed_total`.
    public enum Outcome: String, CaseIterable, Sendable {
        case success, retry
        case deadLetter = "dead_letter"
        case timeout, crash, released

        /// Its place in `allCases`: counted on every job, so a switch rather than a search.
        var index: Int {
            switch self {
            case .success: 0
            case .retry: 1
            case .deadLetter: 2
            case .timeout: 3
            case .crash: 4
            case .released: 5
            }
        }
    }

    static let runBuckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800]
    static let waitBuckets = [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600]

    /// True when every per-queue series is exposed; false in the compact form.
    public let fullDetail: Bool
    private let series: [QueueSeries]
    private let seriesByName: [String: QueueSeries]
    /// The compact form's histograms, across all queues.
    private let allRuns: NIOLockedValueBox<HistogramCounts>
    private let allWaits: NIOLockedValueBox<HistogramCounts>
    private let workers: Gauge
    private let busyWorkers: Gauge
    private let stuckWorkers: Gauge
    private let heldJobs: Gauge
    private let draining: Gauge
    private let queueCount: Gauge
    private let connected: [String: Gauge]
    private let processesStarted: Counter
    private let processesCrashed: Counter
    private let processesRecycled: Counter
    private let processesFailedStarts: Counter
    private let processesIdle: Gauge
    private let jobsSentAhead: Counter
    /// The engine's process counts at the last scrape: counters grow by the difference.
    private let lastProcessCounts = NIOLockedValueBox(WorkerProcessCounts())

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "fairway", metricName: metric, unitName: unit, helpText: help)
    }

    /// Sets up the metrics of these queues and sources; full detail while there are at most
    /// `fullDetailUpTo` queues.
    public init(queueNames: [String], sourceNames: [String], fullDetailUpTo: Int) {
        let fullDetail = queueNames.count <= fullDetailUpTo
        self.fullDetail = fullDetail
        series = queueNames.map { QueueSeries(name: $0, histograms: fullDetail) }
        seriesByName = Dictionary(series.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        allRuns = NIOLockedValueBox(HistogramCounts(bounds: Self.runBuckets))
        allWaits = NIOLockedValueBox(HistogramCounts(bounds: Self.waitBuckets))
        let registry = self.registry
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
        queueCount = registry.makeGauge(descriptor: Self.name("queues", "", "Queues this process serves."))
        processesStarted = registry.makeCounter(
            descriptor: Self.name("worker_processes_started", "total", "Worker processes started."))
        processesCrashed = registry.makeCounter(
            descriptor: Self.name(
                "worker_processes_crashed", "total", "Worker processes that died mid-job or broke the protocol."))
        processesRecycled = registry.makeCounter(
            descriptor: Self.name(
                "worker_processes_recycled", "total",
                "Worker processes replaced after their job or memory limit, or a timeout."))
        processesFailedStarts = registry.makeCounter(
            descriptor: Self.name(
                "worker_processes_failed_starts", "total",
                "Worker processes that could not be started; their queue's jobs wait, charged nothing."))
        processesIdle = registry.makeGauge(
            descriptor: Self.name("worker_processes_idle", "", "Worker processes waiting for a job."))
        jobsSentAhead = registry.makeCounter(
            descriptor: Self.name(
                "worker_processes_sent_ahead", "total",
                "Jobs sent to a worker process before it answered the one it ran (pipelining)."))
        var connected: [String: Gauge] = [:]
        for source in Set(sourceNames) {
            connected[source] = registry.makeGauge(
                descriptor: Self.name("source_connected", "", "1 while the source is connected."),
                labels: [("source", source)]
            )
        }
        self.connected = connected
        queueCount.set(to: Double(queueNames.count))
    }

    public func jobEnded(
        queue: String, outcome: JobOutcome?, settlement: Settlement, runSeconds: Double, waitSeconds: Double?
    ) {
        guard let queueSeries = seriesByName[queue] else { return }
        let label: Outcome
        switch (outcome, settlement) {
        case (.timedOut, _): label = .timeout
        case (.crashed, _): label = .crash
        case (_, .ack): label = .success
        case (_, .retry): label = .retry
        case (_, .deadLetter): label = .deadLetter
        case (_, .release): label = .released
        }
        let ran = outcome != nil
        if fullDetail {
            queueSeries.recorded.withLockedValue { recorded in
                recorded.outcomes[label.index] += 1
                if ran { recorded.run?.record(runSeconds) }
                if let waitSeconds { recorded.wait?.record(waitSeconds) }
            }
        } else {
            queueSeries.recorded.withLockedValue { $0.outcomes[label.index] += 1 }
            if ran { allRuns.withLockedValue { $0.record(runSeconds) } }
            if let waitSeconds { allWaits.withLockedValue { $0.record(waitSeconds) } }
        }
    }

    /// The Prometheus text exposition, with the levels read now from the engine and the sources.
    public func exposition(snapshot: EngineSnapshot, depths: [String: QueueDepth], connected sources: [String: Bool])
        -> [UInt8]
    {
        refreshRegistry(snapshot: snapshot, connected: sources)
        var text = PrometheusText(reservingCapacity: series.count * (fullDetail ? 3_000 : 120) + 4_096)
        renderOutcomes(into: &text)
        renderHistograms(into: &text)
        renderLevels(snapshot: snapshot, depths: depths, into: &text)
        var bytes = text.bytes
        bytes.append(contentsOf: registry.emitToBuffer())
        return bytes
    }

    private func renderOutcomes(into text: inout PrometheusText) {
        let name = "fairway_jobs_completed_total"
        text.family(
            name, type: "counter",
            help: "Runs that ended, by outcome: success, retry, dead_letter, timeout, crash, released.")
        let outcomeLabels = Outcome.allCases.map { "outcome=\"\($0.rawValue)\"" }
        for queue in series {
            let outcomes = queue.recorded.withLockedValue { $0.outcomes }
            for (index, count) in outcomes.enumerated() where fullDetail || count > 0 {
                text.sample(name, labels: queue.label, extra: outcomeLabels[index], value: Double(count))
            }
        }
    }

    private func renderHistograms(into text: inout PrometheusText) {
        let run = "fairway_job_run_duration_seconds"
        let wait = "fairway_job_wait_duration_seconds"
        text.family(run, type: "histogram", help: "How long jobs ran.")
        if fullDetail {
            for queue in series {
                queue.recorded.withLockedValue { $0.run }?.render(run, labels: queue.label, into: &text)
            }
        } else {
            allRuns.withLockedValue { $0 }.render(run, labels: [], into: &text)
        }
        text.family(wait, type: "histogram", help: "How long jobs waited between enqueue and start.")
        if fullDetail {
            for queue in series {
                queue.recorded.withLockedValue { $0.wait }?.render(wait, labels: queue.label, into: &text)
            }
        } else {
            allWaits.withLockedValue { $0 }.render(wait, labels: [], into: &text)
        }
    }

    /// The per-queue gauges. In the compact form only the ready count is there for every queue; the
    /// others only while non-zero (weights are in `GET /queues`).
    private func renderLevels(snapshot: EngineSnapshot, depths: [String: QueueDepth], into text: inout PrometheusText) {
        let now = WallClock.now
        let queues = snapshot.queues.compactMap { queue in seriesByName[queue.name].map { (queue, $0.label) } }
        func gauge(_ name: String, _ help: String, always: Bool, _ value: (QueueSnapshot) -> Double) {
            text.family(name, type: "gauge", help: help)
            for (queue, label) in queues {
                let level = value(queue)
                if always || fullDetail || level != 0 { text.sample(name, labels: label, value: level) }
            }
        }
        gauge(
            "fairway_queue_ready_jobs", "Jobs ready at the source and not yet held by this process.", always: true
        ) { Double(depths[$0.name]?.ready ?? 0) }
        gauge(
            "fairway_queue_held_jobs", "Jobs delivered to this process and not yet started.", always: false
        ) { Double($0.held) }
        gauge("fairway_queue_in_flight_jobs", "Jobs running now.", always: false) { Double($0.inFlight) }
        gauge(
            "fairway_queue_oldest_ready_age_seconds", "Age of the oldest job waiting to start (at the source or held).",
            always: false
        ) { queue in
            queue.oldestWaitingSeconds(sourceAge: depths[queue.name]?.oldestAgeSeconds, wallNow: now)
        }
        if fullDetail {
            gauge("fairway_queue_weight", "The queue's scheduling weight.", always: true) { $0.settings.weight }
        }
        gauge("fairway_queue_paused", "1 while the queue is paused.", always: false) { $0.settings.paused ? 1 : 0 }
        gauge(
            "fairway_queue_active_keys",
            "Fairness keys (tenants) with jobs held or running; for a pattern queue, the queues it admitted that have work.",
            always: false
        ) { Double($0.activeKeys) }
        renderGroups(snapshot: snapshot, into: &text)
    }

    /// Per group, summed over its queues at scrape time: one series per group, whatever its members.
    /// `rate(fairway_group_busy_seconds_total[5m]) / fairway_workers` is the group's share of the pool.
    private func renderGroups(snapshot: EngineSnapshot, into text: inout PrometheusText) {
        var groups: [String: (busy: Double, running: Int, held: Int)] = [:]
        for queue in snapshot.queues {
            guard let group = queue.group else { continue }
            groups[group, default: (0, 0, 0)].busy += queue.busySeconds
            groups[group, default: (0, 0, 0)].running += queue.inFlight
            groups[group, default: (0, 0, 0)].held += queue.held
        }
        guard !groups.isEmpty else { return }
        let ordered = groups.sorted { $0.key < $1.key }.map { (PrometheusText.label("group", $0.key), $0.value) }
        let busy = "fairway_group_busy_seconds_total"
        text.family(busy, type: "counter", help: "Worker-seconds spent on the jobs of the group's queues.")
        for (label, value) in ordered { text.sample(busy, labels: label, value: value.busy) }
        let running = "fairway_group_in_flight_jobs"
        text.family(running, type: "gauge", help: "Jobs of the group's queues running now.")
        for (label, value) in ordered { text.sample(running, labels: label, value: Double(value.running)) }
        let held = "fairway_group_held_jobs"
        text.family(
            held, type: "gauge", help: "Jobs of the group's queues delivered to this process and not yet started.")
        for (label, value) in ordered { text.sample(held, labels: label, value: Double(value.held)) }
    }

    private func refreshRegistry(snapshot: EngineSnapshot, connected sources: [String: Bool]) {
        workers.set(to: Double(snapshot.workers))
        busyWorkers.set(to: Double(snapshot.busyWorkers))
        stuckWorkers.set(to: Double(snapshot.stuckWorkers))
        heldJobs.set(to: Double(snapshot.held))
        draining.set(to: snapshot.draining ? 1 : 0)
        let counts = snapshot.workerProcesses
        let last = lastProcessCounts.withLockedValue { last in
            defer { last = counts }
            return last
        }
        processesStarted.increment(by: Int64(max(0, counts.started - last.started)))
        processesCrashed.increment(by: Int64(max(0, counts.crashed - last.crashed)))
        processesRecycled.increment(by: Int64(max(0, counts.recycled - last.recycled)))
        processesFailedStarts.increment(by: Int64(max(0, counts.failedStarts - last.failedStarts)))
        processesIdle.set(to: Double(counts.idle))
        jobsSentAhead.increment(by: Int64(max(0, counts.sentAhead - last.sentAhead)))
        for (source, up) in sources {
            connected[source]?.set(to: up ? 1 : 0)
        }
    }
}

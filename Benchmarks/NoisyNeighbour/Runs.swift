import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Logging
import NIOConcurrencyHelpers

// One run of the noisy neighbour, and the groups run.

func makeEngine(
    path: String, queues: [QueueDefinition], groups: [QueueGroup] = [], recorder: Recorder
) throws -> (Engine, SQLiteSource) {
    var logger = Logger(label: "noisy")
    logger.logLevel = .critical
    let source = try SQLiteSource(path: path, logger: logger)
    try source.queue.declareQueues(
        queues.map { QueueDeclaration(queue: $0.name, jobTypes: nil, keyed: $0.keys != nil && !$0.isPattern) })
    var registry = JobRegistry()
    registry.register(jobParameters) { parameters, context in
        let started = wallNanoseconds()
        recorder.record(
            Start(
                tenant: Int32(parameters["t"] ?? 0), enqueuedAt: UInt64(parameters["at"] ?? 0), startedAt: started,
                jobID: Int64(context.jobID) ?? 0))
        var pause = timespec(tv_sec: 0, tv_nsec: 2_000_000)
        var left = timespec()
        while nanosleep(&pause, &left) != 0 { pause = left }
    }
    let traced = TracingSource(source)
    tracing.withLockedValue { $0 = traced }
    let engine = try Engine(
        configuration: EngineConfiguration(workers: 4, queues: queues, groups: groups),
        registry: registry, sources: [ProcessInfo.processInfo.environment["FAIRWAY_TRACE"] != nil ? traced : source],
        logger: logger)
    return (engine, source)
}

/// 999 quiet tenants, each enqueueing one job every 2–4 s (uniform), from their own connection.
func quietProducer(
    path: String, layout: Layout, until end: UInt64, stop: NIOLockedValueBox<Bool>, recorder: Recorder
) -> Thread {
    let thread = Thread {
        let queue = try! SQLiteQueue(path: path, create: false)
        var rng = SystemRandomNumberGenerator()
        let start = wallNanoseconds()
        var due = (1...999).map { _ in start + UInt64.random(in: 0...3_000_000_000, using: &rng) }
        while wallNanoseconds() < end && !stop.withLockedValue({ $0 }) {
            let now = wallNanoseconds()
            var batch: [NewJob] = []
            for tenant in 0..<999 where due[tenant] <= now {
                batch.append(job(layout, tenant: tenant + 1, at: now))
                due[tenant] = now + UInt64.random(in: 2_000_000_000...4_000_000_000, using: &rng)
            }
            if !batch.isEmpty {
                let ids = try! queue.enqueue(contentsOf: batch)
                let done = wallNanoseconds()
                recorder.committed.withLockedValue { committed in
                    for id in ids { committed[id] = done }
                }
            }
            usleep(5000)
        }
    }
    thread.start()
    return thread
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
}

func run(_ scenario: Scenario) throws -> Result {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("noisy-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let path = folder.appendingPathComponent("q.db").path
    let recorder = Recorder()
    let definition: QueueDefinition
    switch scenario.layout {
    case .keys: definition = QueueDefinition(name: "tenants", keys: KeyFairness())
    case .pattern: definition = QueueDefinition(name: "tenant-*")
    case .plain: definition = QueueDefinition(name: "tenants")
    }
    let (engine, _) = try makeEngine(path: path, queues: [definition], recorder: recorder)
    try engine.start()
    let warmUp: UInt64 = 3_000_000_000
    let began = wallNanoseconds()
    let end = began + warmUp + UInt64(scenario.seconds * 1e9)
    let stop = NIOLockedValueBox(false)
    let producer = quietProducer(path: path, layout: scenario.layout, until: end, stop: stop, recorder: recorder)
    usleep(UInt32(warmUp / 1000))
    let floodAt = wallNanoseconds()
    if scenario.flood {
        let queue = try SQLiteQueue(path: path, create: false)
        let flood = (0..<100_000).map { _ in job(scenario.layout, tenant: -1, at: floodAt) }
        for start in stride(from: 0, to: flood.count, by: scenario.floodChunk) {
            _ = try queue.enqueue(contentsOf: Array(flood[start..<min(flood.count, start + scenario.floodChunk)]))
        }
    }
    var mostKeys = 0
    while wallNanoseconds() < end {
        usleep(200_000)
        mostKeys = max(mostKeys, engine.snapshot().queues.map(\.activeKeys).max() ?? 0)
    }
    stop.withLockedValue { $0 = true }
    while !producer.isFinished { usleep(1000) }
    engine.shutdown(drainTimeout: .seconds(2))
    let starts = recorder.starts.withLockedValue { $0 }
    let window = starts.filter { $0.startedAt >= floodAt && $0.startedAt < end }
    // Quiet jobs enqueued after the flood (or the same moment without it) and started by the end.
    let quiet = window.filter { $0.tenant > 0 && $0.enqueuedAt >= floodAt }
    let committed = recorder.committed.withLockedValue { $0 }
    let waits = quiet.map { Double(max(0, Int64($0.startedAt) - Int64(committed[$0.jobID] ?? $0.enqueuedAt))) / 1e9 }
        .sorted()
    if ProcessInfo.processInfo.environment["FAIRWAY_TRACE"] != nil, let traced = tracing.withLockedValue({ $0 }) {
        let handed = traced.handed.withLockedValue { $0 }
        let toHand = quiet.compactMap { q in
            handed[q.jobID].map { Double(Int64($0) - Int64(committed[q.jobID] ?? $0)) / 1e6 }
        }.sorted()
        let toStart = quiet.compactMap { q in handed[q.jobID].map { Double(Int64(q.startedAt) - Int64($0)) / 1e6 } }
            .sorted()
        let worst = quiet.sorted {
            ($0.startedAt &- (committed[$0.jobID] ?? 0)) > ($1.startedAt &- (committed[$1.jobID] ?? 0))
        }
        .prefix(30).map { q -> String in
            let c = Int64(committed[q.jobID] ?? 0)
            let h = Int64(handed[q.jobID] ?? 0)
            let between = starts.filter { $0.startedAt > UInt64(h) && $0.startedAt < q.startedAt }.count
            return String(
                format: "%.2fs(c%.2f h+%.0fms s+%.0fms n%d)", Double(Int64(q.startedAt) - Int64(floodAt)) / 1e9,
                Double(c - Int64(floodAt)) / 1e9, Double(h - c) / 1e6, Double(Int64(q.startedAt) - h) / 1e6, between)
        }
        print("  worst at (s after flood): \(worst.joined(separator: " "))")
        print(
            "  trace \(scenario.layout) flood=\(scenario.flood): commit->handed p50 \(percentile(toHand, 0.5)) p90 \(percentile(toHand, 0.9)) p99 \(percentile(toHand, 0.99)); handed->start p50 \(percentile(toStart, 0.5)) p90 \(percentile(toStart, 0.9)) p99 \(percentile(toStart, 0.99))"
        )
    }
    let fromCall = quiet.map { Double($0.startedAt &- $0.enqueuedAt) / 1e9 }.sorted()
    return Result(
        scenario: scenario, quietWaits: waits, quietWaitsFromCall: fromCall,
        quietWaitsSteady: quiet.filter { $0.enqueuedAt >= floodAt + 1_000_000_000 }.map {
            Double(max(0, Int64($0.startedAt) - Int64(committed[$0.jobID] ?? $0.enqueuedAt))) / 1e9
        }.sorted(), floodDone: window.filter { $0.tenant == -1 }.count,
        seconds: Double(end - floodAt) / 1e9, activeKeysMost: mostKeys)
}

/// Groups: `system` (weight 8, alone), `vip-{1..100}` in group paid (4), `tenant-*` in group free (1), all
/// backlogged; the free tenants include the flood. Shares of starts over the run against 8:4:1.
func runGroups(seconds: Double) throws -> [(String, Double, Double)] {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("noisy-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let path = folder.appendingPathComponent("q.db").path
    let recorder = Recorder()
    let queues =
        [QueueDefinition(name: "system", settings: QueueSettings(weight: 8))]
        + (1...100).map { QueueDefinition(name: "vip-\($0)", group: "paid") }
        + [QueueDefinition(name: "tenant-*", group: "free")]
    let (engine, source) = try makeEngine(
        path: path, queues: queues,
        groups: [QueueGroup(name: "free", weight: 1), QueueGroup(name: "paid", weight: 4)], recorder: recorder)
    let now = wallNanoseconds()
    let backlog: [NewJob] =
        (0..<40_000).map { _ in
            NewJob(queue: "system", type: "tenant-job", payload: Array("{\"t\":-2,\"at\":\(now)}".utf8))
        }
        + (1...100).flatMap { vip in
            (0..<250).map { _ in
                NewJob(queue: "vip-\(vip)", type: "tenant-job", payload: Array("{\"t\":-3,\"at\":\(now)}".utf8))
            }
        }
        + (0..<100_000).map { _ in job(.pattern, tenant: -1, at: now) }
        + (1...999).flatMap { tenant in (0..<3).map { _ in job(.pattern, tenant: tenant, at: now) } }
    _ = try source.queue.enqueue(contentsOf: backlog)
    try engine.start()
    usleep(UInt32(seconds * 1e6))
    engine.shutdown(drainTimeout: .seconds(2))
    let starts = recorder.starts.withLockedValue { $0 }
    // Skip the first second (the first claims fill every queue's credit at once).
    let first = (starts.map(\.startedAt).min() ?? 0) + 1_000_000_000
    let counted = starts.filter { $0.startedAt >= first }
    let total = Double(counted.count)
    let system = Double(counted.filter { $0.tenant == -2 }.count) / total
    let paid = Double(counted.filter { $0.tenant == -3 }.count) / total
    let free = Double(counted.filter { $0.tenant == -1 || $0.tenant > 0 }.count) / total
    return [("system (8)", system, 8.0 / 13), ("group paid (4)", paid, 4.0 / 13), ("group free (1)", free, 1.0 / 13)]
}

/// Resident memory of this process in bytes (VmRSS).

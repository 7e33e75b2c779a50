import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Logging
import NIOConcurrencyHelpers

// `NoisyNeighbour scale`: 100,000 tenants, 10,000 at a time.

func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (Int(line.split(separator: " ")[1]) ?? 0) * 1024
    }
    return 0
}

/// 100,000 tenants over a run, 10,000 active at once: what a key costs in the engine, and queues
/// admitted by a pattern end to end on SQLite.
func runScale() throws {
    print("keys at scale\n")
    // End to end: `tenant-*` on SQLite, prefetch 10,000 (so the engine holds up to 10,000 keys), 4
    // workers, no-op jobs; 10 waves of 10,000 new queue names with 2 jobs each, each wave enqueued once
    // the one before has drained: 100,000 queues over the run, 10,000 active at once.
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("scale-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let path = folder.appendingPathComponent("q.db").path
    var logger = Logger(label: "scale")
    logger.logLevel = .critical
    let source = try SQLiteSource(path: path, logger: logger)
    var registry = JobRegistry()
    BuiltinJobs.register(in: &registry)
    let engine = try Engine(
        configuration: EngineConfiguration(workers: 4, queues: [QueueDefinition(name: "tenant-*", credit: 10_000)]),
        registry: registry, sources: [source], logger: logger)
    try engine.start()
    let startRSS = residentBytes()
    let producer = try SQLiteQueue(path: path, create: false)
    print("| wave | queues so far | enqueue | drain | jobs/s | most active keys | RSS after |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    var done = 0
    for wave in 0..<10 {
        let names = (0..<10_000).map { "tenant-\(wave * 10_000 + $0)" }
        let jobs = names.flatMap { [NewJob(queue: $0, type: "noop"), NewJob(queue: $0, type: "noop")] }
        let t0 = MonotonicClock.now
        _ = try producer.enqueue(contentsOf: jobs)
        let t1 = MonotonicClock.now
        var most = 0
        done += jobs.count
        while engine.snapshot().queues[0].succeeded < done {
            most = max(most, engine.snapshot().queues[0].activeKeys)
            usleep(2_000)
        }
        let t2 = MonotonicClock.now
        print(
            String(
                format: "| %d | %d | %.2f s | %.2f s | %.0f | %d | %.0f MB |", wave + 1, (wave + 1) * 10_000,
                Double(t1 - t0) / 1e9, Double(t2 - t1) / 1e9, Double(jobs.count) / (Double(t2 - t1) / 1e9), most,
                Double(residentBytes()) / 1e6))
    }
    print(
        String(
            format: "\nRSS at start %.0f MB; active keys at the end %d", Double(startRSS) / 1e6,
            engine.snapshot().queues[0].activeKeys))
    engine.shutdown(drainTimeout: .seconds(2))

    // Memory per active key in the engine's buffer: 100,000 keys of one held job each, against the same
    // 100,000 jobs without keys (resident memory: the allocator's own counters are not exposed to Swift).
    func delivery(_ n: Int) -> Delivery {
        Delivery(queue: QueueID(0), jobType: "noop", payload: Array("{}".utf8), attempt: 1, receipt: UInt64(n))
    }
    let keys = (0..<100_000).map { "tenant-\($0)" }
    let base = residentBytes()
    var plain = KeyFairBuffer<Delivery>()
    for n in 0..<100_000 { plain.append(delivery(n), key: nil) }
    let plainBytes = residentBytes() - base
    var keyed = KeyFairBuffer<Delivery>()
    let before = residentBytes()
    for n in 0..<100_000 { keyed.append(delivery(n), key: keys[n]) }
    let keyedBytes = residentBytes() - before
    while let (_, key) = keyed.popNext() { keyed.finished(key: key) }
    // One more decision past every finish tag forgets the idle keys.
    keyed.append(delivery(0), key: "last")
    _ = keyed.popNext()
    keyed.finished(key: "last")
    print(
        String(
            format:
                "engine buffer, 100,000 held jobs: %.1f MB without keys, %.1f MB with a key each: %.0f bytes per active key beyond its job; active keys after they ran: %d\n",
            Double(plainBytes) / 1e6, Double(keyedBytes) / 1e6, Double(keyedBytes - plainBytes) / 100_000,
            keyed.activeKeys))
    blackHole(plain.count)
}

@inline(never) func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

/// A restart against a deep backlog of many tenants: 10,000 tenants × 10 no-op jobs already in the file,
/// then a consumer opens it (a new `SQLiteSource`, as a restarted process would) with 4 workers and the
/// default prefetch. Times from opening the file to the first job started and to the last, for tenants as
/// keys of one queue, as queues of a pattern, and, as the reference, the same jobs in one plain queue.
/// `fairway run`'s own start (about 50 ms before it opens the file, docs/benchmarks.md) is the same for all.
func runRestart(rounds: Int = 3) throws {
    print("\nrestart against 10,000 tenants × 10 jobs (4 workers, prefetch 32), medians of \(rounds)\n")
    print("| tenants as | first job after opening the file | all 100,000 done | jobs/s | vs plain |")
    print("| --- | ---: | ---: | ---: | ---: |")
    var plainRate = 0.0
    for layout in [Layout.plain, .keys, .pattern] {
        var firsts: [Double] = []
        var dones: [Double] = []
        for _ in 0..<rounds {
            let (first, done) = try restartOnce(layout)
            firsts.append(first)
            dones.append(done)
        }
        let first = firsts.sorted()[rounds / 2]
        let done = dones.sorted()[rounds / 2]
        let rate = 100_000 / done
        if layout == .plain { plainRate = rate }
        print(
            String(
                format: "| %@ | %.0f ms | %.2f s | %.0f | %.2f |", layout.rawValue, first * 1000, done, rate,
                rate / plainRate))
    }
}

private func restartOnce(_ layout: Layout) throws -> (first: Double, done: Double) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("restart-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let path = folder.appendingPathComponent("q.db").path
    let definition: QueueDefinition
    switch layout {
    case .keys: definition = QueueDefinition(name: "tenants", keys: KeyFairness())
    case .pattern: definition = QueueDefinition(name: "tenant-*")
    case .plain: definition = QueueDefinition(name: "tenants")
    }
    // The backlog, written and declared by an earlier run; the round-robin order of a busy producer.
    let file = try SQLiteQueue(path: path, create: true)
    try file.declareQueues([
        QueueDeclaration(queue: definition.name, jobTypes: nil, keyed: definition.keys != nil)
    ])
    let jobs = (0..<10).flatMap { _ in
        (0..<10_000).map { tenant in
            NewJob(
                queue: layout == .pattern ? "tenant-\(tenant)" : "tenants", type: "noop",
                fairnessKey: layout == .keys ? "t\(tenant)" : nil)
        }
    }
    _ = try file.enqueue(contentsOf: jobs)
    var logger = Logger(label: "restart")
    logger.logLevel = .critical
    let started = MonotonicClock.now
    let source = try SQLiteSource(path: path, logger: logger)
    var registry = JobRegistry()
    BuiltinJobs.register(in: &registry)
    let engine = try Engine(
        configuration: EngineConfiguration(workers: 4, queues: [definition]), registry: registry,
        sources: [source], logger: logger)
    try engine.start()
    var first: UInt64?
    while engine.snapshot().queues[0].succeeded < 100_000 {
        if first == nil && engine.snapshot().queues[0].succeeded > 0 { first = MonotonicClock.now }
        usleep(500)
    }
    let done = MonotonicClock.now
    engine.shutdown(drainTimeout: .seconds(2))
    return (Double((first ?? done) - started) / 1e9, Double(done - started) / 1e9)
}

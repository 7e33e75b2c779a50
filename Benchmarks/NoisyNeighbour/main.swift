import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Logging
import NIOConcurrencyHelpers

// The noisy neighbour (issue 15), end to end on a real queue file: an engine embedded as a Swift team would
// embed it, 4 workers, 2 ms jobs; producers write through their own connections to the file, as other
// processes would. One tenant enqueues 100,000 jobs at once while 999 quiet tenants each enqueue a job
// every 2–4 s; the quiet tenants' wait (enqueue to start) is measured with the flood and without it, for
// tenants as keys of one queue, as queues admitted by a pattern, and, as the control, as plain jobs of one
// queue. A last run puts the tenants in a group beside a paid group and a system queue, all backlogged,
// and measures each one's share of the starts against its ideal.
//
//   FAIRWAY_BENCHMARKS=1 swift run -c release --scratch-path .build-benchmarks NoisyNeighbour [seconds]

struct Start {
    var tenant: Int32  // -1: the flood, -2: system, -3: paid, else a quiet tenant's number
    /// When the producer called enqueue (in the payload).
    var enqueuedAt: UInt64
    var startedAt: UInt64
    var jobID: Int64
}

final class Recorder: Sendable {
    let starts = NIOLockedValueBox<[Start]>([])
    /// When each quiet job's enqueue returned (committed), by job id.
    let committed = NIOLockedValueBox<[Int64: UInt64]>([:])
    func record(_ start: Start) { starts.withLockedValue { $0.append(start) } }
}

func wallNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

enum Layout: String {
    /// One queue `tenants` with `keys: true`; each tenant is a key.
    case keys
    /// A pattern `tenant-*`; each tenant is a queue admitted at run time.
    case pattern
    /// One queue, no keys: the control.
    case plain
}

struct Scenario {
    var layout: Layout
    var flood: Bool
    /// Jobs per enqueue call of the flood: 100,000 is one call (one transaction).
    var floodChunk = 100_000
    var seconds: Double
}

struct Result {
    var scenario: Scenario
    /// From the enqueue's commit to the start.
    var quietWaits: [Double]
    /// From the producer's enqueue call to the start: adds the wait for the file's write lock.
    var quietWaitsFromCall: [Double]
    /// From the commit, for jobs enqueued from 1 s after the flood on: past the flood's own write.
    var quietWaitsSteady: [Double]
    var floodDone: Int
    var seconds: Double
    var activeKeysMost: Int
}

let jobParameters = JobName<[String: Int64]>("tenant-job")

func queueName(_ layout: Layout, tenant: Int) -> String {
    switch layout {
    case .keys, .plain: return "tenants"
    case .pattern: return tenant < 0 ? "tenant-flood" : "tenant-\(tenant)"
    }
}

func job(_ layout: Layout, tenant: Int, at: UInt64) -> NewJob {
    NewJob(
        queue: queueName(layout, tenant: tenant), type: "tenant-job",
        payload: Array("{\"t\":\(tenant),\"at\":\(at)}".utf8),
        fairnessKey: layout == .keys ? (tenant < 0 ? "flood" : "quiet-\(tenant)") : nil)
}

/// Notes when each quiet job is handed to the engine (FAIRWAY_TRACE=1), to split a wait into its parts.
final class TracingSource: JobSource, @unchecked Sendable {
    let inner: SQLiteSource
    let handed = NIOLockedValueBox<[Int64: UInt64]>([:])
    init(_ inner: SQLiteSource) { self.inner = inner }
    var name: String { inner.name }
    struct Sink: DeliverySink {
        let inner: any DeliverySink
        let handed: NIOLockedValueBox<[Int64: UInt64]>
        func note(_ deliveries: [Delivery]) {
            let now = wallNanoseconds()
            handed.withLockedValue { for d in deliveries { $0[Int64(d.receipt)] = now } }
        }
        func deliver(_ delivery: Delivery) {
            note([delivery])
            inner.deliver(delivery)
        }
        func deliver(contentsOf deliveries: [Delivery]) {
            note(deliveries)
            inner.deliver(contentsOf: deliveries)
        }
        func withdrawHeld(where predicate: @escaping @Sendable (Delivery) -> Bool) -> Int {
            inner.withdrawHeld(where: predicate)
        }
    }
    func start(queues: [QueueBinding], sink: any DeliverySink) throws {
        try inner.start(queues: queues, sink: Sink(inner: sink, handed: handed))
    }
    func settle(_ delivery: Delivery, _ settlement: Settlement) { inner.settle(delivery, settlement) }
    func stopDelivering() { inner.stopDelivering() }
    func close() { inner.close() }
    func runStarting(_ delivery: Delivery) -> RunJournal.Mark { inner.runStarting(delivery) }
    func runEnded(_ mark: RunJournal.Mark) { inner.runEnded(mark) }
}

let tracing = NIOLockedValueBox<TracingSource?>(nil)

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

if CommandLine.arguments.dropFirst().first == "scale" {
    try runScale()
    exit(0)
}

let seconds = CommandLine.arguments.count > 1 ? Double(CommandLine.arguments[1]) ?? 20 : 20
print("noisy neighbour: 4 workers, 2 ms jobs, 999 quiet tenants (a job each every 2-4 s), flood 100,000")
print("measured \(seconds) s after the flood is enqueued (3 s of quiet traffic before)\n")
print("quiet wait: from the enqueue's commit to the start; from the call: from the producer's enqueue call,")
print("which adds its wait for the file's write lock (the flood's one 100,000-job transaction holds it)\n")
print("steady p99: jobs enqueued from 1 s after the flood's enqueue on\n")
print(
    "| tenants as | flood | quiet jobs | quiet wait p50 | p99 | max | steady p99 | from the call: p99 | max | flood jobs/s | most active keys |"
)
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
var byLayout: [Layout: (Double, Double)] = [:]
var steadyByLayout: [Layout: (Double, Double)] = [:]
for layout in [Layout.keys, .pattern, .plain] {
    for (flood, chunk) in [(false, 100_000), (true, 100_000), (true, 1000)]
    where !(layout == .plain && (!flood || chunk < 100_000)) {
        let result = try run(Scenario(layout: layout, flood: flood, floodChunk: chunk, seconds: seconds))
        let waits = result.quietWaits
        let p50 = percentile(waits, 0.5) * 1000
        let p99 = percentile(waits, 0.99) * 1000
        let most = (waits.last ?? .nan) * 1000
        let callP99 = percentile(result.quietWaitsFromCall, 0.99) * 1000
        let callMost = (result.quietWaitsFromCall.last ?? .nan) * 1000
        let steadyP99 = percentile(result.quietWaitsSteady, 0.99) * 1000
        print(
            String(
                format: "| %@ | %@ | %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.0f | %d |",
                layout.rawValue, flood ? (chunk < 100_000 ? "yes, \(chunk) a call" : "yes, one call") : "no",
                waits.count, p50, p99, most, steadyP99, callP99, callMost,
                Double(result.floodDone) / result.seconds, result.activeKeysMost))
        if flood && chunk < 100_000 {
        } else if flood {
            byLayout[layout, default: (0, 0)].1 = p99
            steadyByLayout[layout, default: (0, 0)].1 = steadyP99
        } else {
            byLayout[layout, default: (0, 0)].0 = p99
            steadyByLayout[layout, default: (0, 0)].0 = steadyP99
        }
    }
}
print("")
for layout in [Layout.keys, .pattern] {
    let (without, with) = byLayout[layout]!
    let (steadyWithout, steadyWith) = steadyByLayout[layout]!
    print(
        String(
            format: "%@: quiet p99 with the flood / without = %.2f, steady %.2f (target <= 2)", layout.rawValue,
            with / without, steadyWith / steadyWithout))
}
print("\ngroups, all backlogged, \(seconds) s (the first second left out):\n")
print("| | share of starts | ideal | off by |")
print("| --- | ---: | ---: | ---: |")
for (name, share, ideal) in try runGroups(seconds: seconds) {
    print(
        String(format: "| %@ | %.1f %% | %.1f %% | %+.1f pp |", name, share * 100, ideal * 100, (share - ideal) * 100))
}

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
    var enqueuedAt: UInt64
    var startedAt: UInt64
}

final class Recorder: Sendable {
    let starts = NIOLockedValueBox<[Start]>([])
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
    var seconds: Double
}

struct Result {
    var scenario: Scenario
    var quietWaits: [Double]
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

func makeEngine(
    path: String, queues: [QueueDefinition], groups: [QueueGroup] = [], recorder: Recorder
) throws -> (Engine, SQLiteSource) {
    var logger = Logger(label: "noisy")
    logger.logLevel = .critical
    let source = try SQLiteSource(path: path, logger: logger)
    try source.queue.declareQueues(
        queues.map { QueueDeclaration(queue: $0.name, jobTypes: nil, keyed: $0.keys != nil && !$0.isPattern) })
    var registry = JobRegistry()
    registry.register(jobParameters) { parameters, _ in
        let started = wallNanoseconds()
        recorder.record(
            Start(
                tenant: Int32(parameters["t"] ?? 0), enqueuedAt: UInt64(parameters["at"] ?? 0), startedAt: started))
        var pause = timespec(tv_sec: 0, tv_nsec: 2_000_000)
        var left = timespec()
        while nanosleep(&pause, &left) != 0 { pause = left }
    }
    let engine = try Engine(
        configuration: EngineConfiguration(workers: 4, queues: queues, groups: groups),
        registry: registry, sources: [source], logger: logger)
    return (engine, source)
}

/// 999 quiet tenants, each enqueueing one job every 2–4 s (uniform), from their own connection.
func quietProducer(path: String, layout: Layout, until end: UInt64, stop: NIOLockedValueBox<Bool>) -> Thread {
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
            if !batch.isEmpty { _ = try! queue.enqueue(contentsOf: batch) }
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
    let producer = quietProducer(path: path, layout: scenario.layout, until: end, stop: stop)
    usleep(UInt32(warmUp / 1000))
    let floodAt = wallNanoseconds()
    if scenario.flood {
        let queue = try SQLiteQueue(path: path, create: false)
        _ = try queue.enqueue(contentsOf: (0..<100_000).map { _ in job(scenario.layout, tenant: -1, at: floodAt) })
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
    let waits = window.filter { $0.tenant > 0 && $0.enqueuedAt >= floodAt }.map {
        Double($0.startedAt &- $0.enqueuedAt) / 1e9
    }.sorted()
    return Result(
        scenario: scenario, quietWaits: waits, floodDone: window.filter { $0.tenant == -1 }.count,
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
        (0..<20_000).map { _ in
            NewJob(queue: "system", type: "tenant-job", payload: Array("{\"t\":-2,\"at\":\(now)}".utf8))
        }
        + (1...100).flatMap { vip in
            (0..<150).map { _ in
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

let seconds = CommandLine.arguments.count > 1 ? Double(CommandLine.arguments[1]) ?? 20 : 20
print("noisy neighbour: 4 workers, 2 ms jobs, 999 quiet tenants (a job each every 2-4 s), flood 100,000")
print("measured \(seconds) s after the flood is enqueued (3 s of quiet traffic before)\n")
print("| tenants as | flood | quiet jobs | quiet wait p50 | p99 | max | flood jobs/s | most active keys |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
var byLayout: [Layout: (Double, Double)] = [:]
for layout in [Layout.keys, .pattern, .plain] {
    for flood in [false, true] where !(layout == .plain && !flood) {
        let result = try run(Scenario(layout: layout, flood: flood, seconds: seconds))
        let waits = result.quietWaits
        let p50 = percentile(waits, 0.5) * 1000
        let p99 = percentile(waits, 0.99) * 1000
        let most = (waits.last ?? .nan) * 1000
        print(
            String(
                format: "| %@ | %@ | %d | %.1f ms | %.1f ms | %.1f ms | %.0f | %d |", layout.rawValue,
                flood ? "yes" : "no", waits.count, p50, p99, most, Double(result.floodDone) / result.seconds,
                result.activeKeysMost))
        if flood { byLayout[layout, default: (0, 0)].1 = p99 } else { byLayout[layout, default: (0, 0)].0 = p99 }
    }
}
print("")
for layout in [Layout.keys, .pattern] {
    let (without, with) = byLayout[layout]!
    print(
        String(format: "%@: quiet p99 with the flood / without = %.2f (target <= 2)", layout.rawValue, with / without))
}
print("\ngroups, all backlogged, \(seconds) s (the first second left out):\n")
print("| | share of starts | ideal | off by |")
print("| --- | ---: | ---: | ---: |")
for (name, share, ideal) in try runGroups(seconds: seconds) {
    print(
        String(format: "| %@ | %.1f %% | %.1f %% | %+.1f pp |", name, share * 100, ideal * 100, (share - ideal) * 100))
}

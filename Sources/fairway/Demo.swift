import ArgumentParser
import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Logging

/// The demo workload: 120 queues in four weight tiers, each kept backlogged with `sleep` jobs of mixed
/// lengths, served by the real engine and pool.
struct Demo {
    /// (weight, number of queues) per tier: as many queues in each, so the tiers' shares differ as their
    /// weights do (8:4:2:1 of the pool).
    static let tiers: [(weight: Double, queues: Int)] = [(8, 30), (4, 30), (2, 30), (1, 30)]
    /// Typical job length per queue, cycling; each job varies ±50% around it.
    static let typicalMilliseconds: [Double] = [0.25, 0.5, 1, 2]
    /// Jobs kept waiting in every queue.
    static let backlog = 64

    var seconds: Double
    var workers: Int
    var cost: CostMode
    var store: DemoStore = .sqlite
    var progress: DemoProgress?

    struct QueueInfo {
        var name: String
        var tier: Int
        var weight: Double
        var typical: Double
    }

    static func queues() -> [QueueInfo] {
        var queues: [QueueInfo] = []
        for (tier, spec) in tiers.enumerated() {
            for number in 1...spec.queues {
                let typical = typicalMilliseconds[queues.count % typicalMilliseconds.count]
                queues.append(
                    QueueInfo(
                        name: "w\(DemoSummary.format(spec.weight))-\(number)", tier: tier, weight: spec.weight,
                        typical: typical)
                )
            }
        }
        return queues
    }

    static func payload(typical: Double) -> [UInt8] {
        let ms = typical * Double.random(in: 0.5...1.5)
        return Array("{\"ms\":\(String(format: "%.3f", ms))}".utf8)
    }

    func run() throws -> DemoSummary {
        let queues = Self.queues()
        let typicalByName = Dictionary(uniqueKeysWithValues: queues.map { ($0.name, $0.typical) })
        let backlog = try DemoBacklog(store: store)
        defer { backlog.remove() }
        backlog.add(
            queues.flatMap { queue in
                (0..<Self.backlog).map { _ in (queue.name, Self.payload(typical: queue.typical)) }
            }
        )
        // Keep every queue backlogged: each finished job is replaced by a new one.
        let source = RefillingSource(wrapping: backlog.source) { finished in
            backlog.add(finished.compactMap { name in typicalByName[name].map { (name, Self.payload(typical: $0)) } })
        }
        let registry = FairwayCommand.registry
        var logger = Logger(label: "fairway.demo")
        logger.logLevel = .warning
        let engine = try Engine(
            configuration: EngineConfiguration(
                workers: workers,
                costMode: cost,
                queues: queues.map {
                    QueueDefinition(name: $0.name, settings: QueueSettings(weight: $0.weight), credit: 32)
                }
            ),
            registry: registry,
            sources: [source],
            logger: logger
        )
        if let sqlite = backlog.source as? SQLiteSource {
            sqlite.setMaxAttempts([:])
        }
        let started = MonotonicClock.now
        try engine.start()
        let end = started + UInt64(seconds * 1e9)
        var last = started
        while true {
            let now = MonotonicClock.now
            if now >= end { break }
            let step = min(end - now, UInt64((progress?.interval ?? 0.25) * 1e9))
            Thread.sleep(forTimeInterval: Double(step) / 1e9)
            if let progress, MonotonicClock.now - last >= UInt64(progress.interval * 1e9) - 1_000_000 {
                last = MonotonicClock.now
                progress.show(summarize(engine.snapshot(), queues: queues, elapsed: Double(last - started) / 1e9))
            }
        }
        let snapshot = engine.snapshot()
        let elapsed = Double(MonotonicClock.now - started) / 1e9
        engine.shutdown(drainTimeout: .seconds(2))
        source.stopRefilling()
        return summarize(snapshot, queues: queues, elapsed: elapsed)
    }

    func summarize(_ snapshot: EngineSnapshot, queues: [QueueInfo], elapsed: Double) -> DemoSummary {
        let services = zip(queues, snapshot.queues).map { info, counters in
            DemoSummary.QueueService(
                name: info.name,
                typicalMilliseconds: info.typical,
                tier: info.tier,
                weight: info.weight,
                completed: counters.completed,
                service: cost == .time ? counters.busySeconds : Double(counters.completed)
            )
        }
        return DemoSummary(
            seconds: elapsed,
            workers: workers,
            cost: cost.rawValue,
            tierWeights: Self.tiers.map(\.weight),
            queues: services
        )
    }
}

/// Where the demo keeps its jobs: a temporary SQLite queue file (the default), or memory.
enum DemoStore: String, CaseIterable, ExpressibleByArgument {
    case sqlite
    case memory
}

/// The demo's jobs and the source that serves them.
final class DemoBacklog: @unchecked Sendable {
    // Unchecked Sendable: guarded state only: DemoBacklog's is set in init and never changed, RefillingSource's is guarded by `condition`.
    let source: any JobSource
    private let directory: URL?
    private let file: SQLiteQueue?
    private let memory: InMemorySource?

    init(store: DemoStore) throws {
        switch store {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "fairway-demo-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let sqlite = try SQLiteSource(path: directory.appendingPathComponent("demo.db").path)
            self.directory = directory
            self.file = sqlite.queue
            self.memory = nil
            self.source = sqlite
        case .memory:
            let memory = InMemorySource(name: "demo")
            self.directory = nil
            self.file = nil
            self.memory = memory
            self.source = memory
        }
    }

    /// Adds `sleep` jobs, as (queue, payload).
    func add(_ jobs: [(String, [UInt8])]) {
        guard !jobs.isEmpty else { return }
        if let file {
            let batch = jobs.map { NewJob(queue: $0.0, type: BuiltinJobs.sleep.rawValue, payload: $0.1) }
            do {
                try file.enqueue(contentsOf: batch)
            } catch {
                printError("fairway demo: cannot add jobs: \(error)")
            }
        } else if let memory {
            for (queue, payload) in jobs {
                memory.enqueue(queue: queue, jobType: BuiltinJobs.sleep.rawValue, payload: payload)
            }
        }
    }

    /// Deletes the temporary queue file.
    func remove() {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }
}

/// Passes everything to the source it wraps, and reports the queues of finished jobs, in batches, from a
/// thread of its own so that workers never wait on the refill.
final class RefillingSource: JobSource, @unchecked Sendable {
    // Unchecked Sendable: guarded state only: DemoBacklog's is set in init and never changed, RefillingSource's is guarded by `condition`.
    let name: String
    private let wrapped: any JobSource
    private let refill: @Sendable ([String]) -> Void
    private let condition = MonotonicCondition()
    private var finished: [String] = []
    private var running = true

    init(wrapping source: any JobSource, refill: @escaping @Sendable ([String]) -> Void) {
        self.name = source.name
        self.wrapped = source
        self.refill = refill
        let thread = Thread { [self] in loop() }
        thread.name = "fairway-demo-refill"
        thread.start()
    }

    func start(queues: [QueueBinding], sink: any DeliverySink) throws {
        let names = Dictionary(uniqueKeysWithValues: queues.map { ($0.id, $0.name) })
        self.names = names
        try wrapped.start(queues: queues, sink: sink)
    }

    private var names: [QueueID: String] = [:]

    func settle(_ delivery: Delivery, _ settlement: Settlement) {
        wrapped.settle(delivery, settlement)
        guard settlement != .release, let name = names[delivery.queue] else { return }
        condition.lock()
        finished.append(name)
        condition.signal()
        condition.unlock()
    }

    func stopDelivering() { wrapped.stopDelivering() }
    func close() { wrapped.close() }

    func stopRefilling() {
        condition.withLock {
            running = false
            condition.signal()
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while finished.isEmpty && running {
                condition.wait()
            }
            let batch = finished
            finished.removeAll(keepingCapacity: true)
            let done = !running
            condition.unlock()
            if done { return }
            refill(batch)
        }
    }
}

/// Shows the demo's progress: redrawn in place on a terminal, one plain line at a time otherwise.
final class DemoProgress {
    let interval: Double
    private let terminal: Bool
    private var drawnLines = 0
    private var headerShown = false

    init(terminal: Bool) {
        self.terminal = terminal
        self.interval = terminal ? 0.25 : 1
    }

    func show(_ summary: DemoSummary) {
        if drawnLines == 0 && !headerShown {
            // Once: what the figures are, before the first of them.
            headerShown = true
            var header = "  " + DemoSummary.meaning(cost: summary.cost) + "\n"
            if !terminal {
                header += "  time     jobs   jobs/s    Jain"
                for tier in summary.tiers {
                    header +=
                        "  "
                        + "w=\(DemoSummary.format(tier.weight)) share/ideal".padding(
                            toLength: 18, withPad: " ", startingAt: 0)
                }
                header += "\n"
            }
            FileHandle.standardOutput.write(Data(header.utf8))
        }
        if terminal {
            var output = drawnLines > 0 ? "\u{1B}[\(drawnLines)A" : ""
            var lines = [
                String(
                    format: "  %6.1f s  %8d jobs  %8.0f jobs/s  Jain %.4f", summary.seconds, summary.completed,
                    summary.throughput, summary.jain)
            ]
            for tier in summary.tiers {
                let width = 30
                let filled = min(width, Int((tier.share / 0.6) * Double(width)))
                let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                lines.append(
                    String(
                        format: "  w=%-3@ %@ %5.1f%% (ideal %5.1f%%) %8d jobs",
                        DemoSummary.format(tier.weight), bar, tier.share * 100, tier.ideal * 100, tier.completed
                    )
                )
            }
            for line in lines {
                output += "\u{1B}[2K" + line + "\n"
            }
            drawnLines = lines.count
            FileHandle.standardOutput.write(Data(output.utf8))
        } else {
            let shares = summary.tiers.map {
                String(format: "  %5.1f%% / %5.1f%%", $0.share * 100, $0.ideal * 100)
            }
            let line =
                String(
                    format: "  %3.0fs %8d %8.0f  %.4f", summary.seconds, summary.completed, summary.throughput,
                    summary.jain)
                + shares.joined() + "\n"
            FileHandle.standardOutput.write(Data(line.utf8))
        }
    }
}

import FairwayAMQP
import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// `globalConcurrency`: a cap on one queue's running jobs across every `fairway run` process, with three
/// real processes on a shared SQLite file and on a real broker. Each job appends a start line, sleeps and
/// appends an end line to one file; the order of the lines shows how many ran at once.
@Suite("global concurrency across processes", .serialized, .loadsMachine, .timeLimit(.minutes(10)))
struct GlobalConcurrencyProcessTests {
    static let cap = 5

    @Test("SQLite: three processes of four workers, cap 5: never more than 5 at once, every process takes part")
    func sqliteCapAcrossProcesses() throws {
        let folder = TestFolder()
        let (file, runs) = try Self.queueFile(in: folder, jobs: 60, ms: 150)
        let config = try folder.config(
            """
            workers: 4
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: db, globalConcurrency: \(Self.cap) }]
            """)
        let processes = try (0..<3).map { _ in try RunningFairway(config: config, folder: folder.url) }
        defer { for process in processes { process.stop() } }
        for process in processes { #expect(process.waitUntilRunning(), "\(process.log)") }
        #expect(eventually(timeout: 60) { (try? file.stats()["db"]?.completed) == 60 }, "\(processes[0].log)")

        let timeline = RunTimeline(path: runs)
        #expect(timeline.finished.count == 60, "every job ran to its end once: \(timeline.finished.count)")
        #expect(timeline.mostAtOnce <= Self.cap, "the cap held across processes: \(timeline.mostAtOnce) at once")
        #expect(timeline.mostAtOnce == Self.cap, "twelve workers used the whole cap: \(timeline.mostAtOnce)")
        let perProcess = processes.map { Self.completed("db", port: $0.httpPort) }
        #expect(perProcess.filter { $0 > 0 }.count >= 2, "the cap is shared, not one process's: \(perProcess)")
        print("sqlite globalConcurrency \(Self.cap): most at once \(timeline.mostAtOnce), per process \(perProcess)")
    }

    @Test("SQLite: kill -9 of the process holding the permits frees them for the others within the lease")
    func sqliteKillFreesPermits() throws {
        let folder = TestFolder()
        let (file, runs) = try Self.queueFile(in: folder, jobs: 10, ms: 60_000)
        let config = try folder.config(
            """
            workers: 5
            drainTimeout: 1s
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: db, globalConcurrency: \(Self.cap), attempts: 5 }]
            """)
        let holder = try RunningFairway(config: config, folder: folder.url)
        defer { holder.stop(signal: SIGKILL) }
        #expect(holder.waitUntilRunning(), "\(holder.log)")
        #expect(eventually(timeout: 10) { RunTimeline(path: runs).started.count == Self.cap })
        let others = try (0..<2).map { _ in try RunningFairway(config: config, folder: folder.url) }
        defer { for other in others { other.stop() } }
        for other in others { #expect(other.waitUntilRunning(), "\(other.log)") }
        Thread.sleep(forTimeInterval: 1.5)
        #expect(RunTimeline(path: runs).started.count == Self.cap, "the others wait while the permits are held")

        let killed = Date()
        holder.stop(signal: SIGKILL)
        #expect(
            eventually(timeout: 35) { RunTimeline(path: runs).started.count > Self.cap },
            "the permits came free within the lease (30 s)")
        let freedAfter = Date().timeIntervalSince(killed)
        // The jobs the killed process was running were charged an attempt and come back as suspects, which
        // run one at a time (a crash must be charged to the job that caused it); they hold the permits.
        #expect(eventually(timeout: 5) { (try? file.stats()["db"]?.leased) == Self.cap }, "no permit is stranded")
        let reruns = RunTimeline(path: runs).started.dropFirst(Self.cap)
        #expect(
            !reruns.isEmpty && reruns.allSatisfy { $0.hasSuffix("attempt=2") },
            "the killed process's running jobs were charged and run again: \(RunTimeline(path: runs).lines)")
        print("sqlite globalConcurrency: permits of a kill -9'd process free after \(freedAfter) s")
    }

    @Test(
        "RabbitMQ: three processes of six workers, cap 5: never more than 5 at once; kill -9 of the active one fails over",
        .usesBroker
    )
    func amqpCapAcrossProcesses() throws {
        try #require(BrokerControl.ready, "the RabbitMQ broker could not be started")
        let folder = TestFolder()
        let queue = "g\(UUID().uuidString.prefix(6).lowercased())"
        defer { BrokerControl.delete([queue]) }
        let runs = folder.path("runs.log")
        let config = try folder.config(
            """
            workers: 6
            drainTimeout: 1s
            sources: [{ kind: amqp, url: "\(AMQPProcessTests.address)" }]
            queues: [{ name: "\(queue)", globalConcurrency: \(Self.cap), attempts: 5 }]
            """)
        let processes = try (0..<3).map { _ in try RunningFairway(config: config, folder: folder.url) }
        defer { for process in processes { process.stop(signal: SIGKILL) } }
        for process in processes { #expect(process.waitUntilRunning(), "\(process.log)") }
        #expect(eventually(timeout: 10) { processes.allSatisfy { $0.log.contains("consuming from the broker") } })
        let publisher = try AMQPPublisher(url: try AMQPURL(AMQPProcessTests.address))
        try publisher.publish((0..<40).map { _ in Self.job(queue, log: runs, ms: 150) })
        #expect(eventually(timeout: 10) { RunTimeline(path: runs).started.count >= 10 })

        // The active consumer dies with jobs running: the broker hands its queue to another consumer.
        let active = processes.first { Self.completed(queue, port: $0.httpPort) > 0 }
        let killed = Date()
        active?.stop(signal: SIGKILL)
        let before = RunTimeline(path: runs).started.count
        // More jobs at once: on a slow machine the first 40 may be nearly all started by now, and the
        // failover needs jobs to show (CI once waited 10 s for starts that no job was left to make).
        try publisher.publish((0..<20).map { _ in Self.job(queue, log: runs, ms: 150) })
        publisher.close()
        #expect(eventually(timeout: 10) { RunTimeline(path: runs).started.count > before + Self.cap })
        let failover = Date().timeIntervalSince(killed)
        #expect(eventually(timeout: 60) { RunTimeline(path: runs).finishedJobs == 60 }, "nothing lost")
        #expect(eventually(timeout: 10) { (try? BrokerControl.count(queue)) == 0 })

        let timeline = RunTimeline(path: runs)
        // Jobs the killed process was running never wrote their end: they are not counted as running on.
        let mostAtOnce = timeline.mostAtOnce(ignoringUnfinished: true)
        #expect(mostAtOnce <= Self.cap, "the cap held across processes and the failover: \(mostAtOnce) at once")
        #expect(mostAtOnce == Self.cap, "the active consumer used the whole cap: \(mostAtOnce)")
        #expect(active != nil, "one process was the active consumer")
        print("amqp globalConcurrency \(Self.cap): most at once \(mostAtOnce), failover after \(failover) s")
    }

    /// A queue file in `folder` with `jobs` jobs of queue `db`, and the file their runs write to.
    static func queueFile(in folder: TestFolder, jobs: Int, ms: Int) throws -> (SQLiteQueue, String) {
        let runs = folder.path("runs.log")
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(contentsOf: (0..<jobs).map { _ in job("db", log: runs, ms: ms) })
        return (file, runs)
    }

    static func job(_ queue: String, log: String, ms: Int) -> NewJob {
        NewJob(
            queue: queue, type: "append",
            payload: Array(#"{"path":"\#(log)","line":"start","end":"end","ms":\#(ms)}"#.utf8))
    }

    /// The jobs of `queue` a process says it completed, from its /metrics.
    static func completed(_ queue: String, port: Int?) -> Int {
        guard let port else { return 0 }
        let body = HTTP.call("GET", port: port, "/metrics").body
        let prefix = #"fairway_jobs_completed_total{queue="\#(queue)",outcome="success"} "#
        guard let line = body.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return 0 }
        return Int(Double(line.dropFirst(prefix.count)) ?? 0)
    }
}

/// The start and end lines the `append` jobs of a test wrote, in the order they were written.
struct RunTimeline {
    let lines: [Substring]

    init(path: String) {
        lines = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n")
    }

    var started: [Substring] { lines.filter { $0.hasPrefix("start ") } }
    /// The runs that wrote their end line, as `id=… attempt=…`.
    var finished: Set<Substring> { Set(lines.filter { $0.hasPrefix("end ") }.map { $0.dropFirst(4) }) }
    /// The jobs with at least one run that ended.
    var finishedJobs: Int { Set(finished.map { $0.split(separator: " ")[0] }).count }

    var mostAtOnce: Int { mostAtOnce(ignoringUnfinished: false) }

    /// The most runs between their start and end lines at one point of the file. An end line closes the
    /// latest open start of the same run; a start never closed (its process was killed, and the job ran
    /// again under the same id and attempt) counts as running to the end of the file unless
    /// `ignoringUnfinished`.
    func mostAtOnce(ignoringUnfinished: Bool) -> Int {
        var open: [Substring: [Int]] = [:]
        var intervals: [(start: Int, end: Int)] = []
        for (position, line) in lines.enumerated() {
            if line.hasPrefix("start ") {
                open[line.dropFirst(6), default: []].append(position)
            } else if line.hasPrefix("end "), let start = open[line.dropFirst(4)]?.popLast() {
                intervals.append((start, position))
            }
        }
        if !ignoringUnfinished {
            intervals += open.values.joined().map { ($0, lines.count) }
        }
        var changes = intervals.flatMap { [($0.start, 1), ($0.end, -1)] }
        changes.sort { $0.0 < $1.0 }
        var running = 0
        var most = 0
        for (_, change) in changes {
            running += change
            most = max(most, running)
        }
        return most
    }
}

/// What an operator meets when a queue's arguments and its `globalConcurrency` disagree on the broker.
@Suite("global concurrency on an existing RabbitMQ queue", .usesBroker, .timeLimit(.minutes(10)))
struct GlobalConcurrencyDeclarationTests {
    @Test("a queue declared without a single active consumer is refused by name; publishers never clash")
    func existingQueueWithoutSingleActiveConsumer() throws {
        try #require(BrokerControl.ready, "the RabbitMQ broker could not be started")
        let folder = TestFolder()
        let plain = "p\(UUID().uuidString.prefix(6).lowercased())"
        let capped = "c\(UUID().uuidString.prefix(6).lowercased())"
        defer { BrokerControl.delete([plain, capped]) }
        // A producer created `plain` before any consumer, without the argument a cap needs.
        let publisher = try AMQPPublisher(url: try AMQPURL(AMQPProcessTests.address), declare: true)
        defer { publisher.close() }
        try publisher.publish([NewJob(queue: plain, type: "noop")])
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: amqp, url: "\(AMQPProcessTests.address)" }]
            queues:
              - { name: "\(plain)", globalConcurrency: 2 }
              - { name: "\(capped)", globalConcurrency: 2 }
            """)
        let run = try RunningFairway(config: config, folder: folder.url)
        defer { run.stop() }
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(
            eventually(timeout: 10) { run.log.contains("queue '\(plain)' exists without a single active consumer") },
            "\(run.log)")
        #expect(try BrokerControl.count(plain) == 1, "nothing is taken from a queue whose cap cannot hold")
        // A producer that creates queues meets `capped` as the consumer declared it and publishes into it.
        try publisher.publish((0..<3).map { _ in NewJob(queue: capped, type: "noop") })
        #expect(eventually(timeout: 10) { (try? BrokerControl.count(capped)) == 0 }, "\(run.log)")
        #expect(run.process.isRunning, "the other queue is served; the process stays up")
    }
}

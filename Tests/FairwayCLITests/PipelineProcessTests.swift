import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// Pipelining (docs/worker-protocol.md#pipelining) in `fairway run` on real SQLite files and real worker
/// processes: jobs sent ahead run once each, and a crash or a timeout costs the running job only, never the
/// jobs sent behind it.
@Suite("pipelining", .timeLimit(.minutes(5)))
struct PipelineProcessTests {
    /// Each line the `append` jobs wrote, by its `line` field: the attempts it ran with.
    static func runs(in log: String) throws -> [String: [String]] {
        var runs: [String: [String]] = [:]
        for line in try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n") {
            let fields = line.split(separator: " ")
            runs[String(fields[0]), default: []].append(String(fields.last ?? ""))
        }
        return runs
    }

    static func appends(_ queue: String, log: String, prefix: String, count: Int) -> [NewJob] {
        (0..<count).map { index in
            NewJob(
                queue: queue, type: "append", payload: Array(#"{"path":"\#(log)","line":"\#(prefix)-\#(index)"}"#.utf8))
        }
    }

    /// The value of an unlabelled counter in a `/metrics` scrape, 0 when absent.
    static func counter(_ name: String, port: Int) -> Double {
        let body = HTTP.call("GET", port: port, "/metrics").body
        for line in body.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ").last ?? "") ?? 0
        }
        return 0
    }

    @Test(
        "a worker offering a pipeline is sent jobs ahead, up to the queue's pipeline; every job runs once",
        arguments: [1, 8, 32])
    func jobsSentAhead(pipeline: Int) throws {
        let folder = TestFolder()
        let log = folder.path("runs.log")
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "p", isolation: process, pipeline: \(pipeline) }]
            """)
        try file.enqueue(contentsOf: Self.appends("p", log: log, prefix: "job", count: 2_000))
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(try eventually(timeout: 60) { try file.stats()["p"]?.completed == 2_000 }, "\(run.log)")
        let runs = try Self.runs(in: log)
        #expect(runs.count == 2_000)
        #expect(runs.values.allSatisfy { $0 == ["attempt=1"] }, "each job ran once, at its first attempt")
        let port = try #require(run.httpPort)
        let sentAhead = Self.counter("fairway_worker_processes_sent_ahead_total", port: port)
        if pipeline == 1 {
            #expect(sentAhead == 0)
        } else {
            #expect(sentAhead > 100, "jobs went ahead to a worker that was still running one")
        }
        #expect(run.stop().status == 0)
    }

    @Test("a worker kept busy by its pipeline is still recycled after recycleAfterJobs; every job runs once")
    func recycledUnderSustainedLoad() throws {
        let folder = TestFolder()
        let log = folder.path("runs.log")
        // A credit far above the two workers' pipelines: each always has a job to send behind the one it runs.
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "p", isolation: process, prefetch: 512, recycleAfterJobs: 200 }]
            """)
        try file.enqueue(contentsOf: Self.appends("p", log: log, prefix: "job", count: 6_000))
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(try eventually(timeout: 60) { try file.stats()["p"]?.completed == 6_000 }, "\(run.log)")
        let runs = try Self.runs(in: log)
        #expect(runs.count == 6_000)
        #expect(runs.values.allSatisfy { $0 == ["attempt=1"] }, "each job ran once, at its first attempt")
        let port = try #require(run.httpPort)
        #expect(Self.counter("fairway_worker_processes_sent_ahead_total", port: port) > 1_000)
        // At most 200 jobs a worker: 30 workers retired and replaced (a few fewer when a pipeline ran out).
        let recycled = Self.counter("fairway_worker_processes_recycled_total", port: port)
        #expect(recycled >= 25, "recycled: \(recycled)")
        #expect(Self.counter("fairway_worker_processes_crashed_total", port: port) == 0)
        #expect(run.stop().status == 0)
    }

    @Test(
        "only jobs expected to end within the send-ahead budget (25 ms) go ahead: a 10 ms job's next does, a 40 ms job's never",
        arguments: [10, 40])
    func sendAheadBudget(milliseconds: Int) throws {
        let folder = TestFolder()
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 1
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "p", isolation: process }]
            """)
        // The first job's time includes starting the worker, and the engine's running average forgets it over
        // a dozen or more jobs: 10 ms jobs get enough after that to show the jobs sent ahead.
        let count = milliseconds == 10 ? 80 : 20
        try file.enqueue(
            contentsOf: (0..<count).map { _ in
                NewJob(queue: "p", type: "sleep", payload: Array(#"{"ms":\#(milliseconds)}"#.utf8))
            })
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(try eventually(timeout: 60) { try file.stats()["p"]?.completed == count }, "\(run.log)")
        let port = try #require(run.httpPort)
        let sentAhead = Self.counter("fairway_worker_processes_sent_ahead_total", port: port)
        if milliseconds == 10 {
            // Once the average has settled near 10 ms, each later job is sent while the one before runs.
            #expect(sentAhead >= Double(count / 2) && sentAhead < Double(count), "sent ahead: \(sentAhead)")
        } else {
            #expect(sentAhead == 0, "a 40 ms job is past the budget on its own")
        }
        #expect(run.stop().status == 0)
    }

    @Test("a long job among short ones in one queue: none is sent behind it; the other thread runs them meanwhile")
    func noShortJobBehindALongOne() throws {
        let folder = TestFolder()
        let log = folder.path("runs.log")
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 2
            drainTimeout: 1s
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "p", isolation: process, timeout: 60s }]
            """)
        // The jobs before the long one teach the engine that this queue's jobs take a millisecond: by the
        // queue's average, the long one looked as short, and a budget's worth were sent behind it to wait 20 s.
        try file.enqueue(
            contentsOf: Self.appends("p", log: log, prefix: "before", count: 100)
                + [NewJob(queue: "p", type: "sleep", payload: Array(#"{"ms":20000}"#.utf8))]
                + Self.appends("p", log: log, prefix: "after", count: 100))
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(
            try eventually(timeout: 15) {
                try file.stats()["p"].map { $0.completed == 200 && $0.leased == 1 } ?? false
            },
            "\(String(describing: try? file.stats()))")
        #expect(try Self.runs(in: log).count == 200)
        #expect(run.stop().status == 0)
    }

    /// Runs 300 short `append` jobs, `middle`, and 300 more on one worker with a pipeline of 8 (the jobs
    /// before teach the engine the queue's jobs are short, so later ones are sent ahead), and checks that
    /// every `append` ran exactly once at its first attempt: `middle`'s end cost nothing to the jobs sent
    /// behind it. Returns `middle`'s dead letter.
    static func deadLetterAmongAppends(queueFields: String, middle: NewJob) throws -> DeadLetter {
        let folder = TestFolder()
        let log = folder.path("runs.log")
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 1
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "p", isolation: process, pipeline: 8, \(queueFields) }]
            """)
        try file.enqueue(contentsOf: Self.appends("p", log: log, prefix: "before", count: 300))
        try file.enqueue(middle)
        try file.enqueue(contentsOf: Self.appends("p", log: log, prefix: "after", count: 300))
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(
            try eventually(timeout: 60) { try file.stats()["p"].map { $0.completed == 600 && $0.dead == 1 } ?? false },
            "\(run.log)")
        let runs = try Self.runs(in: log)
        #expect(runs.count == 600)
        #expect(runs.values.allSatisfy { $0 == ["attempt=1"] }, "no job sent behind was charged or run twice")
        let port = try #require(run.httpPort)
        #expect(Self.counter("fairway_worker_processes_sent_ahead_total", port: port) > 100)
        #expect(run.stop().status == 0)
        return try #require(try file.deadLetters(queue: "p").first)
    }

    @Test("a worker that dies mid-job costs that job an attempt; the jobs sent behind it start later, uncharged")
    func crashBehind() throws {
        let letter = try Self.deadLetterAmongAppends(
            queueFields: "attempts: 2, backoff: 0s",
            middle: NewJob(queue: "p", type: "crash", payload: Array(#"{"how":"exit"}"#.utf8)))
        #expect(letter.type == "crash" && letter.attempts == 2)
        #expect(letter.reason.contains("exited with status 3 while running the job"), "\(letter.reason)")
    }

    @Test("a job past its timeout in a pipeline: the jobs sent behind it are released and run once elsewhere")
    func timeoutBehind() throws {
        let letter = try Self.deadLetterAmongAppends(
            queueFields: "attempts: 1, timeout: 1s, killGrace: 300ms",
            middle: NewJob(queue: "p", type: "sleep", payload: Array(#"{"ms":30000}"#.utf8)))
        #expect(letter.type == "sleep" && letter.reason.contains("timed out after 1s"), "\(letter.reason)")
    }

    @Test("a job sent ahead behind one that times out on the only worker: the pool keeps a thread and runs it")
    func aheadOfATimeoutOnOneWorker() throws {
        // The Python worker answers SIGTERM with a result and exits a moment later: the thread of the timed-out
        // job then came back while its replacement waited idle, both saw one thread too many, and both left.
        let folder = TestFolder()
        let log = folder.path("runs.log")
        let worker = WorkerLibraryTests.repository.appendingPathComponent("Workers/python/example_worker.py").path
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 1
            sources: [{ kind: sqlite, path: "q.db" }]
            queues:
              - { name: "p", isolation: process, command: ["python3", "\(worker)"], attempts: 1, timeout: 1s, killGrace: 500ms }
            """)
        // Short jobs first, so that the engine learns the queue's jobs are short and sends the next ahead.
        try file.enqueue(contentsOf: Self.appends("p", log: log, prefix: "before", count: 30))
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(try eventually(timeout: 60) { try file.stats()["p"]?.completed == 30 }, "\(run.log)")
        try file.enqueue(NewJob(queue: "p", type: "sleep", payload: Array(#"{"ms":30000}"#.utf8)))
        try file.enqueue(contentsOf: Self.appends("p", log: log, prefix: "after", count: 3))
        #expect(
            try eventually(timeout: 30) { try file.stats()["p"].map { $0.completed == 33 && $0.dead == 1 } ?? false },
            "\(String(describing: try? file.stats()))\n\(run.log)")
        #expect(run.stop().status == 0)
    }

    @Test("SIGTERM with jobs in pipelines: they finish or stay queued, and the next run does the rest, once each")
    func drainWithPipelines() throws {
        let folder = TestFolder()
        let log = folder.path("runs.log")
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "p", isolation: process, pipeline: 8 }]
            """)
        try file.enqueue(
            contentsOf: (0..<3_000).map { index in
                NewJob(
                    queue: "p", type: "append",
                    payload: Array(#"{"path":"\#(log)","line":"job-\#(index)","ms":1}"#.utf8))
            })
        let first = try RunningFairway(config: config, folder: folder.url)
        #expect(first.waitUntilRunning(), "\(first.log)")
        #expect(try eventually(timeout: 30) { try file.stats()["p"].map { $0.completed >= 300 } ?? false })
        let port = try #require(first.httpPort)
        #expect(Self.counter("fairway_worker_processes_sent_ahead_total", port: port) > 0)
        let stopped = first.stop()
        #expect(stopped.status == 0 && !stopped.bySignal, "\(first.log)")
        let done = try file.stats()["p"]?.completed ?? 0
        #expect(done < 3_000, "stopped mid-backlog")
        #expect(try Self.runs(in: log).count == done, "every job that ran was settled")

        let second = try RunningFairway(config: config, folder: folder.url)
        #expect(second.waitUntilRunning(), "\(second.log)")
        #expect(try eventually(timeout: 60) { try file.stats()["p"]?.completed == 3_000 }, "\(second.log)")
        let runs = try Self.runs(in: log)
        #expect(runs.count == 3_000)
        #expect(runs.values.allSatisfy { $0 == ["attempt=1"] }, "nothing ran twice or was charged by the drain")
        #expect(second.stop().status == 0)
    }
}

import FairwayAMQP
import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// A poison job crash-loops `fairway run` under a supervisor (this test, restarting it after each crash)
/// beside 120 queues of good jobs with their full credit held. The crash must be charged to the job that
/// was running, never to the thousands merely held.
@Suite("Crash attribution", .serialized, .timeLimit(.minutes(10)))
struct CrashAttributionTests {
    static let queues = 120
    static let jobsPerQueue = 40
    static let workers = 2

    /// The good jobs: each run appends "good-<index> id=… attempt=N" to the log, then sleeps 2 ms.
    static func goodJobs(log: String, queue: (Int) -> String) -> [NewJob] {
        (0..<queues * jobsPerQueue).map { index in
            NewJob(
                queue: queue(index % queues), type: "append",
                payload: Array(#"{"path":"\#(log)","line":"good-\#(index)","ms":2}"#.utf8))
        }
    }

    /// Restarts `fairway run` after each crash, as a supervisor would, until it stays up and `settled` holds.
    static func superviseUntilSettled(
        config: String, folder: TestFolder, environment: [String: String] = [:], settled: () -> Bool
    ) throws -> Int {
        var crashes = 0
        for _ in 0..<8 {
            let run = try RunningFairway(config: config, folder: folder.url, environment: environment)
            _ = run.waitUntilRunning()
            let finished = eventually(timeout: 60) { !run.process.isRunning || settled() }
            #expect(finished, "\(run.log.suffix(2000))")
            if run.process.isRunning {
                #expect(run.stop().status == 0)
                break
            }
            #expect(run.waitForExit().bySignal, "\(run.log.suffix(2000))")
            crashes += 1
        }
        return crashes
    }

    /// Every good job ran, none twice beyond what a crash can explain, and no run was charged an attempt
    /// it did not make: the attempt a job saw is at most the number of times it started before.
    static func checkGoodRuns(log: String, crashes: Int) throws {
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        var highestAttempt: [Substring: Int] = [:]
        var runs: [Substring: Int] = [:]
        for line in lines {
            let fields = line.split(separator: " ")
            let attempt = Int(fields.last!.dropFirst("attempt=".count))!
            highestAttempt[fields[0], default: 0] = max(highestAttempt[fields[0], default: 0], attempt)
            runs[fields[0], default: 0] += 1
        }
        #expect(runs.count == queues * jobsPerQueue, "every good job ran")
        // A crash charges the jobs running beside the poison job: at most workers - 1 per crash.
        let charged = highestAttempt.values.reduce(0) { $0 + $1 - 1 }
        print(
            "crash attribution: \(crashes) crashes, \(queues * jobsPerQueue) good jobs, \(charged) charged an attempt")
        #expect(charged <= crashes * (workers - 1), "\(charged) good jobs charged for \(crashes) crashes")
        // A run the crash cut short before `append` wrote its line is a real attempt that left no line: a job
        // may be one attempt ahead of its lines, never more (the bound above caps how many such jobs).
        for (job, attempt) in highestAttempt {
            #expect(attempt <= runs[job]! + 1, "\(job) saw attempt \(attempt) after \(runs[job]!) runs")
        }
    }

    @Test("SQLite: the poison job is quarantined after its attempts, no good job is dead-lettered or charged")
    func sqlite() throws {
        let folder = TestFolder()
        let log = folder.path("runs.log")
        let config = try folder.config(
            """
            workers: \(Self.workers)
            sources: [{ kind: sqlite, path: "q.db" }]
            defaults: { attempts: 3, prefetch: 32, backoff: 10ms }
            queues:
              - { name: "bad" }
              - { name: "good-{1..\(Self.queues)}" }
            """
        )
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(contentsOf: Self.goodJobs(log: log) { "good-\($0 + 1)" })
        try file.enqueue(NewJob(queue: "bad", type: "crash"))
        let total = Self.queues * Self.jobsPerQueue
        let crashes = try Self.superviseUntilSettled(config: config, folder: folder) {
            let stats = (try? file.stats()) ?? [:]
            return stats["bad"]?.dead == 1 && stats.values.reduce(0) { $0 + $1.completed } == total
        }
        #expect(crashes == 3, "one crash per attempt, then the poison job is quarantined")
        let letters = try file.deadLetters()
        #expect(
            letters.count == 1,
            "only the poison job is dead-lettered: \(letters.prefix(3).map { "\($0.queue) \($0.attempts) \($0.reason)" })"
        )
        let poison = try #require(letters.first)
        #expect(poison.queue == "bad" && poison.attempts == 3)
        #expect(poison.reason == "its process ended while running it (a crash or a kill) (gave up after 3 attempts)")
        try Self.checkGoodRuns(log: log, crashes: crashes)
    }

    @Test("RabbitMQ: the poison message is quarantined after its attempts, no good message is charged", .usesBroker)
    func amqp() throws {
        try #require(BrokerControl.ready, "the RabbitMQ broker could not be started")
        let folder = TestFolder()
        let log = folder.path("runs.log")
        let prefix = "p\(UUID().uuidString.prefix(6).lowercased())"
        let names = (1...Self.queues).map { "\(prefix)-good-\($0)" }
        defer { BrokerControl.delete(names + ["\(prefix)-bad"]) }
        let config = try folder.config(
            """
            workers: \(Self.workers)
            sources: [{ kind: amqp, url: "\(AMQPProcessTests.address)", prefetch: 32 }]
            defaults: { attempts: 3, backoff: 10ms }
            queues:
              - { name: "\(prefix)-bad" }
              - { name: "\(prefix)-good-{1..\(Self.queues)}" }
            """
        )
        // Declare every queue first, so that the messages published next are waiting when consumers start.
        let first = try RunningFairway(config: config, folder: folder.url)
        #expect(first.waitUntilRunning(), "\(first.log)")
        #expect(first.stop().status == 0)
        let publisher = try AMQPPublisher(url: try AMQPURL(AMQPProcessTests.address))
        try publisher.publish(Self.goodJobs(log: log) { names[$0] })
        try publisher.publish([NewJob(queue: "\(prefix)-bad", type: "crash")])
        publisher.close()
        let total = Self.queues * Self.jobsPerQueue
        // Each process gets a counter file of its own test folder, as a container gets its volume.
        let crashes = try Self.superviseUntilSettled(config: config, folder: folder) {
            (try? BrokerControl.count("\(prefix)-bad.dead")) == 1 && Self.distinctRuns(log) == total
        }
        #expect(crashes == 3, "one crash per attempt, then the poison message is quarantined")
        let poison = try BrokerControl.drain("\(prefix)-bad.dead")
        #expect(poison.count == 1)
        #expect(
            poison.first?.reason
                == "its process ended while running it 3 times (a crash or a kill) (gave up after 3 attempts)")
        for name in names {
            // The dead-letter queue is declared with the first dead letter: none, or empty.
            #expect((try? BrokerControl.count(name + ".dead")) ?? 0 == 0, "a good message of \(name) was dead-lettered")
        }
        try Self.checkGoodRuns(log: log, crashes: crashes)
    }

    static func distinctRuns(_ log: String) -> Int {
        guard let text = try? String(contentsOfFile: log, encoding: .utf8) else { return 0 }
        return Set(text.split(separator: "\n").map { $0.split(separator: " ")[0] }).count
    }
}

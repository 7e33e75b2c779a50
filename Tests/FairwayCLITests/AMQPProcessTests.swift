import FairwayAMQP
import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// `fairway run` against a real broker, as a real process: kill -9 under load, a crash message.
@Suite("fairway run on RabbitMQ", .serialized, .usesBroker, .timeLimit(.minutes(10)))
struct AMQPProcessTests {
    static let address = "amqp://guest:guest@127.0.0.1:5672/%2f"

    init() throws {
        try #require(BrokerControl.ready, "the RabbitMQ broker could not be started")
    }

    @Test("kill -9 under load, ten times, then a clean run: nothing lost, duplicates only among in-flight")
    func killNineUnderLoad() throws {
        let folder = TestFolder()
        let prefix = "k\(UUID().uuidString.prefix(6).lowercased())"
        defer { BrokerControl.delete((1...4).map { "\(prefix)-\($0)" }) }
        let log = folder.path("runs.log")
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: amqp, url: "\(Self.address)", prefetch: 4 }]
            defaults: { attempts: 50 }
            queues:
              - { name: "\(prefix)-{1..4}" }
              - { name: "\(prefix)-4", isolation: process }
            """
        )
        let total = 5000
        let jobs = (0..<total).map { index in
            NewJob(
                queue: "\(prefix)-\(index % 4 + 1)", type: "append",
                payload: Array(#"{"path":"\#(log)","line":"job-\#(index)","ms":2}"#.utf8))
        }
        let publisher = try AMQPPublisher(url: try AMQPURL(Self.address))
        try publisher.publish(jobs)
        publisher.close()
        var kills = 0
        for _ in 0..<10 {
            let run = try RunningFairway(config: config, folder: folder.url)
            #expect(run.waitUntilRunning(), "\(run.log)")
            Thread.sleep(forTimeInterval: Double.random(in: 0.2...0.5))
            run.stop(signal: SIGKILL)
            kills += 1
        }
        let afterKills = Self.distinctRuns(log)
        print("amqp kill -9: \(afterKills) of \(total) jobs had run when the kills ended")
        #expect(afterKills < total)
        let last = try RunningFairway(config: config, folder: folder.url)
        #expect(last.waitUntilRunning())
        #expect(eventually(timeout: 90) { Self.distinctRuns(log) == total })
        #expect(last.stop().status == 0)
        let runs = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").count ?? 0
        print("amqp kill -9 ×\(kills): \(total) jobs, \(runs - total) ran twice")
        // Only messages delivered and unacknowledged at a kill may run again: 4 queues × 4 prefetch.
        #expect(runs - total <= kills * 16)
        for index in 1...4 {
            #expect(try BrokerControl.count("\(prefix)-\(index)") == 0)
        }
    }

    @Test("a crash message is dead-lettered after its attempts across restarts while another queue flows")
    func crashMessage() throws {
        let folder = TestFolder()
        let prefix = "c\(UUID().uuidString.prefix(6).lowercased())"
        let poison = "\(prefix)-poison"
        let steady = "\(prefix)-steady"
        defer { BrokerControl.delete([poison, steady]) }
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: amqp, url: "\(Self.address)" }]
            queues:
              - { name: "\(poison)", attempts: 3 }
              - { name: "\(steady)", weight: 4 }
            """
        )
        let publisher = try AMQPPublisher(url: try AMQPURL(Self.address))
        try publisher.publish(
            (0..<300).map { _ in NewJob(queue: steady, type: "sleep", payload: Array(#"{"ms":5}"#.utf8)) })
        try publisher.publish([NewJob(queue: poison, type: "crash")])
        publisher.close()
        var crashes = 0
        for _ in 0..<8 {
            let run = try RunningFairway(config: config, folder: folder.url)
            // The crash job may take the process down before it says it is running.
            _ = run.waitUntilRunning()
            let finished = eventually(timeout: 30) {
                !run.process.isRunning
                    || ((try? BrokerControl.count(poison + ".dead")) == 1 && (try? BrokerControl.count(steady)) == 0)
            }
            #expect(finished)
            if run.process.isRunning {
                #expect(run.stop().status == 0)
                break
            }
            #expect(run.waitForExit().bySignal, "\(run.log)")
            crashes += 1
        }
        #expect(crashes == 3, "one crash per attempt, then the message is dead-lettered instead of run")
        let letters = try BrokerControl.drain(poison + ".dead")
        #expect(letters.count == 1)
        #expect(letters.first?.type == "crash")
        #expect(letters.first?.reason?.contains("gave up after 3 attempts") == true)
    }

    @Test("SQLite and RabbitMQ sources together under one scheduler")
    func mixedSources() throws {
        let folder = TestFolder()
        let queue = "m\(UUID().uuidString.prefix(6).lowercased())"
        defer { BrokerControl.delete([queue]) }
        let config = try folder.config(
            """
            workers: 2
            sources:
              - { kind: sqlite, path: "q.db" }
              - { kind: amqp, url: "\(Self.address)" }
            queues: [{ name: "\(queue)" }]
            """
        )
        let run = try RunningFairway(config: config, folder: folder.url)
        defer { run.stop() }
        #expect(run.waitUntilRunning(), "\(run.log)")
        let file = try SQLiteQueue(path: folder.path("q.db"), create: false)
        try file.enqueue(contentsOf: (0..<50).map { _ in NewJob(queue: queue, type: "noop") })
        let publisher = try AMQPPublisher(url: try AMQPURL(Self.address))
        try publisher.publish((0..<50).map { _ in NewJob(queue: queue, type: "noop") })
        publisher.close()
        #expect(eventually { (try? file.stats()[queue]?.completed) == 50 })
        #expect(eventually { (try? BrokerControl.count(queue)) == 0 })
        #expect(run.stop().status == 0)
    }

    @Test(
        "a broker restart under load while a process-isolated queue runs: nothing lost, the process survives",
        .restartsBroker)
    func brokerRestartWithProcessQueue() throws {
        let folder = TestFolder()
        let prefix = "r\(UUID().uuidString.prefix(6).lowercased())"
        defer { BrokerControl.delete(["\(prefix)-iso", "\(prefix)-plain"]) }
        let log = folder.path("runs.log")
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: amqp, url: "\(Self.address)", prefetch: 8 }]
            defaults: { attempts: 50, backoff: 50ms }
            queues:
              - { name: "\(prefix)-iso", isolation: process }
              - { name: "\(prefix)-plain" }
            """
        )
        let total = 1200
        let jobs = (0..<total).map { index in
            NewJob(
                queue: "\(prefix)-\(index % 2 == 0 ? "iso" : "plain")", type: "append",
                payload: Array(#"{"path":"\#(log)","line":"job-\#(index)","ms":3}"#.utf8))
        }
        let publisher = try AMQPPublisher(url: try AMQPURL(Self.address))
        try publisher.publish(jobs)
        publisher.close()
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(eventually(timeout: 30) { Self.distinctRuns(log) >= 200 })
        #expect(BrokerControl.control(["stop_app"]) == 0)
        let duringOutage = Self.distinctRuns(log)
        Thread.sleep(forTimeInterval: 1)
        #expect(BrokerControl.control(["start_app"]) == 0)
        print("broker restart: \(duringOutage) of \(total) jobs had run when the broker stopped")
        #expect(duringOutage < total, "the load should still be running when the broker stops")
        #expect(eventually(timeout: 90) { Self.distinctRuns(log) == total }, "\(run.log.suffix(2000))")
        #expect(run.process.isRunning, "the process rides out the restart")
        let exit = run.stop()
        #expect(exit.status == 0 && !exit.bySignal, "\(run.log.suffix(2000))")
        #expect(try BrokerControl.count("\(prefix)-iso") == 0)
        #expect(try BrokerControl.count("\(prefix)-plain") == 0)
    }

    @Test("a queue at its max-length with reject-publish refuses enqueues: exit 75, 'the queue is full'")
    func maxLengthPolicy() throws {
        let queue = "m\(UUID().uuidString.prefix(6).lowercased())"
        defer {
            BrokerControl.control(["clear_policy", "\(queue)-cap"])
            BrokerControl.delete([queue])
        }
        let policy = #"{"max-length":5,"overflow":"reject-publish"}"#
        #expect(
            BrokerControl.control(["set_policy", "\(queue)-cap", "^\(queue)$", policy, "--apply-to", "queues"]) == 0)
        let first = try FairwayProcess.run(
            ["enqueue", "--create", "--amqp", Self.address, "--queue", queue, "--type", "noop", "--count", "5"])
        #expect(first.status == 0, "\(first.stderr)")
        // The policy reaches a new queue a moment after its declaration.
        var refused = try FairwayProcess.run(["enqueue", "--amqp", Self.address, "--queue", queue, "--type", "noop"])
        let deadline = Date().addingTimeInterval(10)
        while refused.status == 0 && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            refused = try FairwayProcess.run(["enqueue", "--amqp", Self.address, "--queue", queue, "--type", "noop"])
        }
        #expect(refused.status == 75)
        #expect(refused.stderr.contains("the queue is full"), "\(refused.stderr)")
        #expect(try BrokerControl.count(queue) == 5)
    }

    static func distinctRuns(_ path: String) -> Int {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        return Set(text.split(separator: "\n").map { $0.split(separator: " ")[0] }).count
    }
}

/// The broker, from the command-line tests.
enum BrokerControl {
    static var ready: Bool { TestBroker.ready }

    @discardableResult
    static func control(_ arguments: [String]) -> Int32 { TestBroker.control(arguments) }

    static func count(_ queue: String) throws -> Int {
        try AMQPInspector(url: try AMQPURL(AMQPProcessTests.address)).count(queue)
    }

    static func drain(_ queue: String) throws -> [AMQPInspector.Message] {
        try AMQPInspector(url: try AMQPURL(AMQPProcessTests.address)).drain(queue)
    }

    static func delete(_ queues: [String]) {
        guard let inspector = try? AMQPInspector(url: try AMQPURL(AMQPProcessTests.address)) else { return }
        for queue in queues {
            inspector.delete(queue)
            inspector.delete(queue + ".dead")
        }
    }
}

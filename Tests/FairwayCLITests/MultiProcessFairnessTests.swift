import FairwayAMQP
import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// Weighted shares when several `fairway run` processes consume the same 120 queues (competing consumers,
/// the way Fairway scales out): each process schedules what it holds, and the sum must keep the weights.
@Suite("fairness across three processes", .serialized, .loadsMachine, .timeLimit(.minutes(10)))
struct MultiProcessFairnessTests {
    /// Four tiers of 30 queues each, weights 8, 4, 2 and 1.
    static let weights = [8, 4, 2, 1]
    static let queuesPerTier = 30
    /// How long the processes run; every queue must still have jobs waiting at the end.
    static let seconds = 8.0

    @Test(
        "RabbitMQ: 120 queues in four tiers, three processes, shares within 3 points while backlogged", .usesBroker)
    func rabbitMQ() throws {
        try #require(BrokerControl.ready, "the RabbitMQ broker could not be started")
        let folder = TestFolder()
        let prefix = "f\(UUID().uuidString.prefix(6).lowercased())"
        let names = Self.queueNames(prefix)
        defer { BrokerControl.delete(names.flatMap { $0 }) }
        let runs = folder.path("runs.log")
        let publisher = try AMQPPublisher(url: try AMQPURL(AMQPProcessTests.address))
        try publisher.publish(Self.backlog(names, log: runs))
        publisher.close()
        let config = try folder.config(
            """
            workers: 1
            sources: [{ kind: amqp, url: "\(AMQPProcessTests.address)", prefetch: 4 }]
            queues:
            \(Self.queueLines(prefix))
            """)
        let shares = try Self.run(config: config, folder: folder, runs: runs)
        for tier in Self.weights.indices {
            for name in names[tier].prefix(3) {
                #expect(try BrokerControl.count(name) > 0, "\(name) was backlogged to the end")
            }
        }
        Self.check(shares, backend: "amqp")
    }

    @Test("SQLite: 120 queues in four tiers, three processes on one file, shares within 3 points")
    func sqlite() throws {
        let folder = TestFolder()
        let prefix = "f"
        let names = Self.queueNames(prefix)
        let runs = folder.path("runs.log")
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(contentsOf: Self.backlog(names, log: runs))
        let config = try folder.config(
            """
            workers: 1
            sources: [{ kind: sqlite, path: "q.db" }]
            defaults: { prefetch: 4 }
            queues:
            \(Self.queueLines(prefix))
            """)
        let shares = try Self.run(config: config, folder: folder, runs: runs)
        let stats = try file.stats()
        for name in names.joined() {
            #expect((stats[name]?.ready ?? 0) > 0, "\(name) was backlogged to the end")
        }
        Self.check(shares, backend: "sqlite")
    }

    static func queueNames(_ prefix: String) -> [[String]] {
        weights.map { weight in (1...queuesPerTier).map { "\(prefix)-w\(weight)-\($0)" } }
    }

    static func queueLines(_ prefix: String) -> String {
        weights.map { "  - { name: \"\(prefix)-w\($0)-{1..\(queuesPerTier)}\", weight: \($0) }" }
            .joined(separator: "\n")
    }

    /// Enough 4 ms jobs that no queue runs dry in `seconds` on three single-worker processes (about 500
    /// jobs a second at most, of which a weight-8 queue gets 8/450), beyond what the prefetch holds.
    static func backlog(_ names: [[String]], log: String) -> [NewJob] {
        zip(weights, names).flatMap { weight, tier in
            tier.flatMap { name in
                (0..<(25 * weight + 40)).map { _ in
                    NewJob(
                        queue: name, type: "append",
                        payload: Array(#"{"path":"\#(log)","line":"w\#(weight)","ms":4}"#.utf8))
                }
            }
        }
    }

    /// Runs three processes for `seconds` from when all three serve; returns each tier's share of the runs
    /// they started in that time, in percent.
    static func run(config: String, folder: TestFolder, runs: String) throws -> [Double] {
        let processes = try (0..<3).map { _ in try RunningFairway(config: config, folder: folder.url) }
        defer { for process in processes { process.stop(signal: SIGKILL) } }
        for process in processes { #expect(process.waitUntilRunning(), "\(process.log)") }
        Thread.sleep(forTimeInterval: seconds)
        for process in processes { process.stop(signal: SIGKILL) }
        let lines = ((try? String(contentsOfFile: runs, encoding: .utf8)) ?? "").split(separator: "\n")
        let total = Double(lines.count)
        #expect(lines.count > 500, "enough runs to measure: \(lines.count)")
        return weights.map { weight in
            Double(lines.filter { $0.hasPrefix("w\(weight) ") }.count) / max(total, 1) * 100
        }
    }

    static func check(_ shares: [Double], backend: String) {
        let sum = Double(weights.reduce(0, +))
        let ideal = weights.map { Double($0) / sum * 100 }
        for (share, wanted) in zip(shares, ideal) {
            #expect(abs(share - wanted) <= 3, "\(backend): tier shares \(shares) against \(ideal)")
        }
        let rounded = shares.map { ($0 * 10).rounded() / 10 }
        print("\(backend) three processes: tier shares \(rounded) % against \(ideal.map { ($0 * 10).rounded() / 10 })")
    }
}

import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Logging

@testable import FairwayAMQP

/// The RabbitMQ broker the tests talk to: started on 127.0.0.1 by `.ci/start-broker` when it is not up.
enum Broker {
    static let url = try! AMQPURL("amqp://guest:guest@127.0.0.1:5672/%2f")

    /// Starts the broker if it does not answer; a test that needs it never skips.
    static var ready: Bool { TestBroker.ready }

    @discardableResult
    static func control(_ arguments: [String]) -> Int32 { TestBroker.control(arguments) }

    /// A connection for checking and cleaning up.
    static func connection() throws -> AMQPConnection {
        let connection = try AMQPConnection(url: url, heartbeat: 0)
        try connection.openChannel(1)
        return connection
    }

    /// Messages ready in a queue (approximate right after publishing).
    static func count(_ queue: String) throws -> Int {
        try connection().declareQueue(1, queue, passive: true)
    }

    static func delete(_ queues: [String]) {
        guard let connection = try? connection() else { return }
        for queue in queues {
            try? connection.deleteQueue(1, queue)
            try? connection.deleteQueue(1, queue + ".dead")
        }
    }

    /// Takes every message of a queue.
    static func drain(_ queue: String) throws -> [ReceivedMessage] {
        let connection = try connection()
        var messages: [ReceivedMessage] = []
        while let message = try connection.get(1, queue: queue) {
            messages.append(message)
        }
        return messages
    }

    static func publish(_ jobs: [NewJob]) throws {
        let publisher = try AMQPPublisher(url: url)
        defer { publisher.close() }
        try publisher.publish(jobs)
    }
}

/// Unique queue names for one test, deleted at the end.
final class TestQueues {
    let prefix = "t\(UUID().uuidString.prefix(6).lowercased())"
    private(set) var names: [String] = []

    func name(_ suffix: String) -> String {
        let name = "\(prefix)-\(suffix)"
        names.append(name)
        return name
    }

    deinit { Broker.delete(names) }
}

/// An engine over an AMQP source.
struct AMQPHarness {
    let engine: Engine
    let source: AMQPSource

    init(
        workers: Int = 2,
        queues: [QueueDefinition],
        costMode: CostMode = .count,
        configure: (inout AMQPSource.Options) -> Void = { _ in },
        logger: Logger? = nil,
        register: (inout JobRegistry) -> Void = { _ in }
    ) throws {
        var quiet = Logger(label: "fairway.test")
        quiet.logLevel = .critical
        var options = AMQPSource.Options(url: Broker.url)
        options.maxAttempts = Dictionary(uniqueKeysWithValues: queues.map { ($0.name, $0.retry.maxAttempts) })
        configure(&options)
        source = try AMQPSource(options: options, crashCounter: DeliveryCounter.init(path:), logger: logger ?? quiet)
        var registry = JobRegistry()
        BuiltinJobs.register(in: &registry)
        register(&registry)
        engine = try Engine(
            configuration: EngineConfiguration(workers: workers, costMode: costMode, queues: queues),
            registry: registry,
            sources: [source],
            logger: quiet
        )
    }

    func snapshot(_ queue: String) -> QueueSnapshot {
        engine.snapshot().queues.first { $0.name == queue }!
    }
}

func quickRetry(_ attempts: Int, backoff: Duration = .milliseconds(100)) -> RetryPolicy {
    RetryPolicy(maxAttempts: attempts, initialBackoff: backoff, maxBackoff: backoff * 8, jitter: 0)
}

import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Testing

@testable import FairwayAMQP

/// Fairness keys on RabbitMQ: the key travels in the `x-fairway-key` header, and keys share a queue fairly
/// within what the consumer holds (its prefetch). The broker hands messages over in queue order, so a
/// tenant's job behind another tenant's backlog reaches Fairway only once the backlog ahead of it fits in
/// the prefetch: these tests show both sides of that.
@Suite("AMQP fairness keys", .serialized, .usesBroker, .timeLimit(.minutes(10)))
struct AMQPFairnessKeyTests {
    struct TestFailure: Error {}

    struct Start: Sendable {
        var key: String?
        var attempt: Int
    }

    /// One worker; every job records its key and attempt; jobs of key "fails" fail on their first attempt.
    static func run(prefetch: Int, jobs: [NewJob], extra: Int = 0, queue: String) throws -> [Start] {
        let starts = Shared<[Start]>([])
        let harness = try AMQPHarness(
            workers: 1,
            queues: [
                QueueDefinition(
                    name: queue, settings: QueueSettings(paused: true), retry: quickRetry(3), credit: prefetch,
                    keys: KeyFairness())
            ],
            register: { registry in
                registry.register(JobName<[String: Int]>("keyed")) { _, context in
                    starts.update { $0.append(Start(key: context.fairnessKey, attempt: context.attempt)) }
                    if context.fairnessKey == "fails" && context.attempt == 1 {
                        throw TestFailure()
                    }
                }
            })
        try Broker.publish(jobs)
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(5)) }
        // Paused until the prefetch is full, so that every run starts from the same held window.
        #expect(eventually { harness.snapshot(queue).held >= min(prefetch, jobs.count) })
        try harness.engine.updateQueue(named: queue, settings: QueueSettings())
        #expect(eventually(timeout: 60) { starts.read().count == jobs.count + extra })
        return starts.read()
    }

    static func flood(_ queue: String) -> [NewJob] {
        (0..<1500).map { _ in NewJob(queue: queue, type: "keyed", fairnessKey: "big") }
            + (1...20).map { NewJob(queue: queue, type: "keyed", fairnessKey: "quiet-\($0)") }
    }

    /// Where the 20 quiet keys started among all starts, after the flood, with this prefetch.
    static func quietPositions(prefetch: Int) throws -> [Int] {
        try #require(Broker.ready, "the RabbitMQ broker could not be started")
        let names = TestQueues()
        let queue = names.name("keyed")
        let starts = try run(prefetch: prefetch, jobs: flood(queue), queue: queue)
        let positions = starts.enumerated().filter { $0.element.key?.hasPrefix("quiet") == true }.map(\.offset)
        #expect(positions.count == 20)
        return positions
    }

    @Test("keys share what the prefetch holds: a prefetch larger than the backlog ahead serves quiet keys at once")
    func largePrefetch() throws {
        let positions = try Self.quietPositions(prefetch: 2000)
        let last = positions.max() ?? .max
        #expect(last < 45, "quiet keys started at \(positions)")
    }

    @Test("with a prefetch smaller than the backlog ahead, a quiet key waits for that backlog (the broker's order)")
    func smallPrefetch() throws {
        let positions = try Self.quietPositions(prefetch: 64)
        // They reach the consumer only once the 1,500 ahead of them are within 64 of the head.
        let first = positions.min() ?? 0
        #expect(first >= 1500 - 64 - 1, "quiet keys started at \(positions)")
    }

    @Test("a retry keeps its key; a malformed key header is dropped and the job still runs")
    func retriesAndBadHeaders() throws {
        try #require(Broker.ready, "the RabbitMQ broker could not be started")
        let names = TestQueues()
        let queue = names.name("keyed")
        let connection = try Broker.connection()
        _ = try connection.declareQueue(1, queue, passive: false)
        _ = try connection.publish(
            1, routingKey: queue, type: "keyed", messageID: "long", timestamp: 0,
            headers: [("x-fairway-key", .string(String(repeating: "k", count: 300)))], body: Array("{}".utf8))
        _ = try connection.publish(
            1, routingKey: queue, type: "keyed", messageID: "number", timestamp: 0,
            headers: [("x-fairway-key", .int(7))], body: Array("{}".utf8))
        let starts = try Self.run(
            prefetch: 8, jobs: [NewJob(queue: queue, type: "keyed", fairnessKey: "fails")], extra: 3, queue: queue)
        #expect(starts.filter { $0.key == "fails" }.map(\.attempt).sorted() == [1, 2])
        #expect(starts.filter { $0.key == nil }.count == 2)
    }

    @Test("a dead letter keeps its key: the record names it, and requeued it runs under it")
    func deadLettersKeepTheirKey() throws {
        try #require(Broker.ready, "the RabbitMQ broker could not be started")
        let queue = TestQueues().name("keyed")
        let starts = Shared<[Start]>([])
        let harness = try AMQPHarness(
            workers: 1, queues: [QueueDefinition(name: queue, retry: quickRetry(3), credit: 8, keys: KeyFairness())],
            register: { registry in
                registry.register(JobName<[String: Int]>("keyed")) { _, context in
                    let first = starts.update { starts -> Bool in
                        starts.append(Start(key: context.fairnessKey, attempt: context.attempt))
                        return starts.count == 1
                    }
                    if first { throw JobError.permanent("not yet") }
                }
            })
        try Broker.publish([NewJob(queue: queue, type: "keyed", fairnessKey: "acme")])
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(5)) }
        let filter = DeadLetterFilter(queue: queue)
        #expect(
            try eventually(timeout: 30) {
                try harness.source.deadLetters(matching: filter, limit: 10, offset: 0).count == 1
            })
        #expect(try harness.source.deadLetters(matching: filter, limit: 10, offset: 0).map(\.fairnessKey) == ["acme"])
        #expect(try harness.source.requeueDeadLetters(matching: filter) == 1)
        #expect(eventually(timeout: 30) { starts.read().count == 2 })
        #expect(starts.read().map(\.key) == ["acme", "acme"])
    }
}

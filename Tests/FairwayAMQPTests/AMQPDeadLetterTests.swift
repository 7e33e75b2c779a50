import FairwayJobs
import FairwayRuntime
import FairwayTestSupport
import Foundation
import Testing

@testable import FairwayAMQP

/// The `<queue>.dead` queues read as dead letters: a broker queue is read by taking its messages, so a read
/// and a requeue at the same moment must not hide messages from each other.
@Suite("AMQP dead letters", .serialized, .usesBroker, .timeLimit(.minutes(10)))
struct AMQPDeadLetterTests {
    @Test("a requeue while the page reads the dead letters finds every one it was asked for, round after round")
    func requeueWhileReading() throws {
        try #require(Broker.ready, "the RabbitMQ broker could not be started")
        let names = TestQueues()
        defer { withExtendedLifetime(names) {} }
        let queue = names.name("dead")
        let letters = 5
        // Jobs of a type nobody handles: dead-lettered at once, and again each time they are requeued.
        let harness = try AMQPHarness(workers: 1, queues: [QueueDefinition(name: queue)])
        try Broker.publish((0..<letters).map { _ in NewJob(queue: queue, type: "nobody-handles-this") })
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(5)) }
        let filter = DeadLetterFilter(queue: queue)
        let source = harness.source
        let list = { try source.deadLetters(matching: filter, limit: 100, offset: 0) }
        #expect(try eventually(timeout: 30) { try list().count == letters })

        // Two readers without pause, as the dashboard's refresh (the list and its groups at once).
        let reading = Shared(true)
        let readers = DispatchGroup()
        for reader in 0..<2 {
            DispatchQueue.global().async(group: readers) {
                while reading.read() {
                    if reader == 0 {
                        _ = try? source.deadLetters(matching: filter, limit: 50, offset: 0)
                    } else {
                        _ = try? source.deadLetterGroups(matching: filter)
                    }
                }
            }
        }
        var requeued: [Int] = []
        for _ in 0..<8 {
            guard try eventually(timeout: 30, { try list().count == letters }) else { break }
            let ids = try list().map(\.id)
            requeued.append(try source.requeueDeadLetters(matching: DeadLetterFilter(queue: queue, ids: ids)))
        }
        reading.update { $0 = false }
        readers.wait()
        #expect(requeued == Array(repeating: letters, count: 8), "requeued in each round: \(requeued)")
    }
}

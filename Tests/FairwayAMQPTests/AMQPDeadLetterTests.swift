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
    @Test(
        "a requeue while a page reads the dead letters finds every one it was asked for, round after round",
        arguments: [false, true])
    func requeueWhileReading(fromAnotherReplica: Bool) throws {
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
        // The page that reads: this process's, or a second Fairway's on the same queue (a replica).
        let replica = try fromAnotherReplica ? AMQPHarness(workers: 1, queues: [QueueDefinition(name: queue)]) : nil
        if let replica { try replica.engine.start() }
        defer { replica?.engine.shutdown(drainTimeout: .seconds(5)) }
        let filter = DeadLetterFilter(queue: queue)
        let source = harness.source
        let reader = replica?.source ?? source
        let list = { try source.deadLetters(matching: filter, limit: 100, offset: 0) }
        #expect(try eventually(timeout: 30) { try list().count == letters })

        // Two readers without pause, as the dashboard's refresh (the list and its groups at once).
        let reading = Shared(true)
        let readers = DispatchGroup()
        for index in 0..<2 {
            DispatchQueue.global().async(group: readers) {
                while reading.read() {
                    if index == 0 {
                        _ = try? reader.deadLetters(matching: filter, limit: 50, offset: 0)
                    } else {
                        _ = try? reader.deadLetterGroups(matching: filter)
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

    @Test(
        "the readers' lock: one holder on the broker, a waiter gives up after its patience, a user who may not take it reads without"
    )
    func readerLock() throws {
        try #require(Broker.ready, "the RabbitMQ broker could not be started")
        let held = try #require(try DeadLetterReaderLock.acquire(url: Broker.url, caCertificate: nil))
        #expect {
            _ = try DeadLetterReaderLock.acquire(url: Broker.url, caCertificate: nil, patience: .milliseconds(300))
        } throws: { error in
            "\(error)".contains("another Fairway process has been reading the dead letters")
        }
        held.release()
        let next = try DeadLetterReaderLock.acquire(url: Broker.url, caCertificate: nil, patience: .seconds(5))
        #expect(next != nil, "the lock is free once its holder's connection closed")
        next?.release()

        // A user whose permissions do not cover the lock's queue (configure "^$"): reads as before the lock.
        let user = "fairway-no-configure"
        TestBroker.control(["delete_user", user])
        try #require(TestBroker.control(["add_user", user, "pw"]) == 0)
        defer { TestBroker.control(["delete_user", user]) }
        try #require(TestBroker.control(["set_permissions", "-p", "/", user, "^$", ".*", ".*"]) == 0)
        let restricted = try AMQPURL("amqp://\(user):pw@127.0.0.1:5672/%2f")
        #expect(try DeadLetterReaderLock.acquire(url: restricted, caCertificate: nil) == nil)
    }
}

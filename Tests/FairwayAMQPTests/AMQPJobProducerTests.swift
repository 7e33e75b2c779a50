import FairwayJobs
import FairwayRuntime
import FairwayTestSupport
import Foundation
import Testing

@testable import FairwayAMQP

/// Typed producers for RabbitMQ: confirms, a passive check of every queue before anything is published,
/// delays through the delay tiers, and a connection that is opened again after it is lost.
@Suite("AMQP job producer", .serialized, .usesBroker, .timeLimit(.minutes(10)))
struct AMQPJobProducerTests {
    struct Invoice: Codable, Sendable, Equatable {
        var customer: String
        var cents: Int
    }
    static let sendInvoice = JobName<Invoice>("send-invoice")

    init() { #expect(Broker.ready, "the broker at 127.0.0.1:5672 did not start") }

    @Test("a typed job is a persistent message with its type, its JSON and the returned id as message id")
    func typedRoundTrip() throws {
        let queues = TestQueues()
        let queue = queues.name("billing")
        _ = try Broker.connection().declareQueue(1, queue, passive: false)
        let producer = AMQPJobProducer(url: Broker.url)
        defer { producer.close() }
        let invoice = Invoice(customer: "ada", cents: 4_200)
        let id = try producer.enqueue(Self.sendInvoice, invoice, queue: queue)
        let batch = try producer.enqueue(Self.sendInvoice, batch: [invoice, invoice], queue: queue)
        let messages = try Broker.drain(queue)
        #expect(messages.map(\.messageID) == [id] + batch)
        #expect(messages.allSatisfy { $0.type == "send-invoice" })
        #expect(try JSONDecoder().decode(Invoice.self, from: Data(messages[0].body)) == invoice)
    }

    @Test("a queue that does not exist is refused before anything of the batch is published, and the producer goes on")
    func undeclaredQueue() throws {
        let queues = TestQueues()
        let queue = queues.name("billing")
        let missing = queues.name("biling")
        _ = try Broker.connection().declareQueue(1, queue, passive: false)
        var options = AMQPJobProducer.Options(url: Broker.url)
        options.knownQueues = [queue, "email"]
        let producer = AMQPJobProducer(options: options)
        defer { producer.close() }
        let jobs = [NewJob(queue: queue, type: "noop"), NewJob(queue: missing, type: "noop")]
        do {
            _ = try producer.enqueue(contentsOf: jobs)
            Issue.record("an undeclared queue was accepted")
        } catch let refusal as ProducerRefusal {
            #expect("\(refusal)".contains("queue '\(missing)' is not served"), "\(refusal)")
            #expect("\(refusal)".contains("did you mean '\(queue)'?"), "\(refusal)")
            #expect(!"\(refusal)".contains("guest:guest"), "the password stays out of the message")
        }
        #expect(try Broker.count(queue) == 0, "the batch's valid job was not published either")
        #expect(throws: (any Error).self, "the check did not declare the queue") { try Broker.count(missing) }
        // The channel the broker closed was opened again: the next call on the same producer works.
        _ = try producer.enqueue(contentsOf: [NewJob(queue: queue, type: "noop")])
        #expect(try eventually(timeout: 10) { try Broker.count(queue) == 1 })

        options.declareQueues = true
        let declaring = AMQPJobProducer(options: options)
        defer { declaring.close() }
        _ = try declaring.enqueue(contentsOf: jobs)
        #expect(try eventually(timeout: 10) { try Broker.count(missing) == 1 })
    }

    @Test("a delayed job waits in its delay tier, then arrives in its queue")
    func delayedJob() throws {
        let queues = TestQueues()
        let queue = queues.name("later")
        _ = try Broker.connection().declareQueue(1, queue, passive: false)
        defer { Broker.delete(["fairway.delay.\(queue).500ms"]) }
        let producer = AMQPJobProducer(url: Broker.url)
        defer { producer.close() }
        let started = MonotonicClock.now
        _ = try producer.enqueue(
            Self.sendInvoice, Invoice(customer: "b", cents: 1), queue: queue,
            options: EnqueueOptions(delay: .milliseconds(400)))
        #expect(try Broker.count(queue) == 0, "not in the queue before its delay")
        #expect(try eventually(timeout: 10) { try Broker.count(queue) == 1 })
        #expect(MonotonicClock.now - started >= 400_000_000, "it waited at least its delay")
    }
}

/// Closing every connection of the broker disturbs any other test that talks to it: alone.
@Suite("AMQP job producer, reconnecting", .serialized, .restartsBroker, .timeLimit(.minutes(10)))
struct AMQPJobProducerReconnectTests {
    init() { #expect(Broker.ready, "the broker at 127.0.0.1:5672 did not start") }

    @Test("a lost connection fails the call in flight; the next call opens a new one")
    func reconnects() async throws {
        let queues = TestQueues()
        let queue = queues.name("again")
        _ = try Broker.connection().declareQueue(1, queue, passive: false)
        let producer = AMQPJobProducer(url: Broker.url)
        defer { producer.close() }
        _ = try await producer.enqueue(
            AMQPJobProducerTests.sendInvoice, AMQPJobProducerTests.Invoice(customer: "c", cents: 1), queue: queue)
        #expect(Broker.control(["close_all_connections", "test"]) == 0)
        var failures = 0
        var published = false
        for _ in 0..<3 where !published {
            do {
                _ = try await producer.enqueue(
                    AMQPJobProducerTests.sendInvoice, AMQPJobProducerTests.Invoice(customer: "c", cents: 2),
                    queue: queue)
                published = true
            } catch {
                failures += 1
            }
        }
        #expect(published && failures <= 1, "failures: \(failures)")
        #expect(try eventually(timeout: 10) { try Broker.count(queue) == 2 })
    }
}

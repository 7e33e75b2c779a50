import FairwayRuntime
import NIOConcurrencyHelpers

/// Enqueues onto a RabbitMQ broker with publisher confirms: a call returns once the broker has the jobs.
///
/// By default a queue must already exist on the broker (the consumers declare theirs when they start):
/// a passive declare checks it, and a missing queue is refused with a ``ProducerRefusal`` before anything
/// is published. Job types cannot be checked (the broker does not know the consumers' handlers). The
/// connection opens on first use and again after it is lost; a call that failed may be retried.
public final class AMQPJobProducer: JobProducer, @unchecked Sendable {
    // Unchecked Sendable: `publisher` (a connection, not Sendable) is only touched while `lock` is held.
    public struct Options: Sendable {
        public var url: AMQPURL
        /// A PEM file of certificate authorities for amqps://, beyond the system's.
        public var caCertificate: String?
        /// Declare missing queues (durable, of `queueType`) instead of refusing them.
        public var declareQueues = false
        public var queueType: AMQPSource.QueueType = .classic
        /// Names to suggest from when a queue does not exist, such as the queues of a configuration.
        public var knownQueues: [String] = []
        /// Refuse, without asking the broker, any queue not in `knownQueues`: for a producer that knows its
        /// consumers' configuration (a `FairwayService`'s), which may enqueue before they have declared.
        public var onlyKnownQueues = false
        /// Queues with a `globalConcurrency` in the consumers' configuration: declared, when this producer
        /// creates them, with the single active consumer their consumers declare them with.
        public var singleActiveConsumerQueues: Set<String> = []

        public init(url: AMQPURL) { self.url = url }
    }

    public let options: Options
    private let lock = NIOLock()
    /// The open connection, if any: a connection is used by one thread at a time.
    private var publisher: AMQPPublisher?

    public init(options: Options) {
        self.options = options
    }

    public convenience init(url: AMQPURL) {
        self.init(options: Options(url: url))
    }

    public func enqueue(contentsOf jobs: [NewJob]) throws -> [String] {
        for (index, job) in jobs.enumerated() {
            if let problem = job.problem {
                throw EnqueueError(index: jobs.count > 1 ? index : nil, message: problem)
            }
            if options.onlyKnownQueues && !options.knownQueues.contains(job.queue) {
                throw ProducerRefusal.undeclaredQueue(
                    queue: job.queue, in: "the broker at \(options.url)", known: options.knownQueues.sorted())
            }
        }
        return try lock.withLock {
            let current: AMQPPublisher
            if let open = publisher {
                current = open
            } else {
                current = try AMQPPublisher(
                    url: options.url, declare: options.declareQueues, queueType: options.queueType,
                    caCertificate: options.caCertificate)
                current.knownQueues = options.knownQueues
                current.singleActiveConsumerQueues = options.singleActiveConsumerQueues
                publisher = current
            }
            do {
                return try current.publish(jobs)
            } catch let error as AMQPError {
                // Whatever the broker did to the connection, the next call starts on a fresh one.
                current.close()
                publisher = nil
                throw error
            }
        }
    }

    /// Closes the connection; the next enqueue opens a new one.
    public func close() {
        lock.withLock {
            publisher?.close()
            publisher = nil
        }
    }
}

import FairwayJobs
import Foundation

/// Puts jobs on queues, whatever the backend: the embedded SQLite file (`SQLiteJobProducer`) or a RabbitMQ
/// broker (`AMQPJobProducer`). Code written against this protocol does not change when a team moves from
/// one to the other.
///
/// Use the typed calls of the extension: `enqueue(sendEmail, SendEmail(to: …), queue: "email")` checks at
/// compile time that the parameters are the ones the handler of `sendEmail` decodes. Every call is
/// all-or-nothing and returns the jobs' ids, as handlers will see them in `JobContext.jobID`. The blocking
/// calls may be made from any thread; the `async` ones wait on a thread of their own.
public protocol JobProducer: Sendable {
    /// Enqueues the jobs, all or none, and returns their ids in order. Throws an error that names the
    /// problem (an undeclared queue, a full queue, a broker that refused) when nothing was enqueued.
    func enqueue(contentsOf jobs: [NewJob]) throws -> [String]
}

/// When and how urgently an enqueued job may run.
public struct EnqueueOptions: Sendable, Hashable {
    /// Run no sooner than this from now.
    public var delay: Duration
    /// Higher runs first within its queue (SQLite; RabbitMQ queues are first-in first-out).
    public var priority: Int

    public init(delay: Duration = .zero, priority: Int = 0) {
        self.delay = delay
        self.priority = priority
    }
}

extension JobProducer {
    /// Enqueues one job of a typed job type; returns its id.
    @discardableResult
    public func enqueue<Parameters>(
        _ name: JobName<Parameters>, _ parameters: Parameters, queue: String, options: EnqueueOptions = .init()
    ) throws -> String {
        try enqueue(contentsOf: [Self.job(name, parameters, queue: queue, options: options)])[0]
    }

    /// Enqueues one job per element of `batch`, all or none; returns their ids in order.
    @discardableResult
    public func enqueue<Parameters>(
        _ name: JobName<Parameters>, batch: [Parameters], queue: String, options: EnqueueOptions = .init()
    ) throws -> [String] {
        try enqueue(contentsOf: batch.map { try Self.job(name, $0, queue: queue, options: options) })
    }

    /// Enqueues one job of a typed job type without blocking the caller's task; returns its id.
    @discardableResult
    public func enqueue<Parameters>(
        _ name: JobName<Parameters>, _ parameters: Parameters, queue: String, options: EnqueueOptions = .init()
    ) async throws -> String {
        let job = try Self.job(name, parameters, queue: queue, options: options)
        return try await OwnThread.run("fairway-enqueue") { try enqueue(contentsOf: [job])[0] }
    }

    /// Enqueues one job per element of `batch`, all or none, without blocking the caller's task.
    @discardableResult
    public func enqueue<Parameters>(
        _ name: JobName<Parameters>, batch: [Parameters], queue: String, options: EnqueueOptions = .init()
    ) async throws -> [String] {
        let jobs = try batch.map { try Self.job(name, $0, queue: queue, options: options) }
        return try await OwnThread.run("fairway-enqueue") { try enqueue(contentsOf: jobs) }
    }

    /// The job that carries `parameters` as JSON, the way the registry's handlers decode them.
    public static func job<Parameters>(
        _ name: JobName<Parameters>, _ parameters: Parameters, queue: String, options: EnqueueOptions
    ) throws -> NewJob {
        NewJob(
            queue: queue, type: name.rawValue, payload: Array(try JSONEncoder().encode(parameters)),
            delay: options.delay, priority: options.priority)
    }
}

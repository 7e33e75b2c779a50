import Foundation

/// A job to put on a queue, for any backend: the SQLite file's `SQLiteQueue` and the RabbitMQ publisher
/// take the same value.
public struct NewJob: Sendable, Hashable {
    public var queue: String
    public var type: String
    /// JSON text. Empty means `{}`.
    public var payload: [UInt8]
    /// Run no sooner than this from now.
    public var delay: Duration
    /// Higher runs first within its queue; equal priorities run in enqueue order.
    public var priority: Int
    /// The job's fairness key (a tenant id): jobs of one queue share it fairly by key when the queue says
    /// so (`keys:`), so one tenant's backlog does not hold back the others'. Nil: no key.
    public var fairnessKey: String?

    public init(
        queue: String, type: String, payload: [UInt8] = [], delay: Duration = .zero, priority: Int = 0,
        fairnessKey: String? = nil
    ) {
        self.fairnessKey = fairnessKey
        self.queue = queue
        self.type = type
        self.payload = payload
        self.delay = delay
        self.priority = priority
    }
}

extension NewJob {
    /// Why this job cannot be enqueued (on any backend), or nil.
    public var problem: String? {
        if queue.isEmpty { return "queue name must not be empty" }
        if queue.utf8.count > 255 { return "queue name longer than 255 bytes" }
        if type.isEmpty { return "job type must not be empty" }
        if delay < .zero { return "delay must not be negative" }
        if let fairnessKey, fairnessKey.utf8.count > 255 { return "fairness key longer than 255 bytes" }
        if !payload.isEmpty {
            do {
                _ = try JSONSerialization.jsonObject(with: Data(payload), options: [.fragmentsAllowed])
            } catch {
                let text = String(decoding: payload.prefix(40), as: UTF8.self)
                return "payload is not valid JSON: \(text)\(payload.count > 40 ? "…" : "")"
            }
        }
        return nil
    }
}

/// An enqueue that was refused; nothing was written.
public struct EnqueueError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Which job of a batch (0-based), when a batch was refused.
    public var index: Int?
    public var message: String

    public init(index: Int?, message: String) {
        self.index = index
        self.message = message
    }

    public var description: String {
        index.map { "job \($0 + 1): \(message)" } ?? message
    }
}

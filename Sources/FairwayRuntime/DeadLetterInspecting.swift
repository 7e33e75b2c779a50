/// Which dead letters an operator means: every field narrows, nil fields match all.
public struct DeadLetterFilter: Sendable, Hashable, Codable {
    public var queue: String?
    public var type: String?
    /// Text the reason contains.
    public var reason: String?
    /// A reason's shape (``DeadLetterFilter/shape(of:)``): the group the dashboard lists.
    public var shape: String?
    /// Text the payload or the job id contains: search by order number, e-mail, job id.
    public var text: String?
    /// Exactly these jobs (ids as the source gives them).
    public var ids: [String]?

    public init(
        queue: String? = nil, type: String? = nil, reason: String? = nil, shape: String? = nil, text: String? = nil,
        ids: [String]? = nil
    ) {
        self.queue = queue
        self.type = type
        self.reason = reason
        self.shape = shape
        self.text = text
        self.ids = ids
    }

    /// A reason with its numbers masked, so that "worker process 4242 was killed by signal 9" and the
    /// same death of process 4243 fall into one group: `worker process # was killed by signal #`.
    public static func shape(of reason: String) -> String {
        var shape = ""
        var inNumber = false
        for character in reason {
            if character.isASCII && character.isNumber {
                if !inNumber { shape.append("#") }
                inNumber = true
            } else {
                inNumber = false
                shape.append(character)
            }
        }
        return shape
    }
}

/// One dead letter as an operator sees it, whichever source keeps it.
public struct DeadLetterRecord: Sendable, Hashable, Codable {
    /// The id within its source (a row id for SQLite, a message id for RabbitMQ).
    public var id: String
    public var queue: String
    public var type: String
    /// The payload as text (JSON for Fairway's jobs), cut to 64 KiB for display.
    public var payload: String
    public var attempts: Int
    public var reason: String
    /// When it was enqueued and when it died, in seconds since 1970, when the source knows.
    public var enqueuedAt: Double?
    public var diedAt: Double?
    /// The source that holds it.
    public var source: String
    /// Its fairness key (tenant), when it had one: which tenant's jobs are dying.
    public var fairnessKey: String?

    public init(
        id: String, queue: String, type: String, payload: String, attempts: Int, reason: String, enqueuedAt: Double?,
        diedAt: Double?, source: String, fairnessKey: String? = nil
    ) {
        self.id = id
        self.queue = queue
        self.type = type
        self.payload = payload
        self.attempts = attempts
        self.reason = reason
        self.enqueuedAt = enqueuedAt
        self.diedAt = diedAt
        self.source = source
        self.fairnessKey = fairnessKey
    }
}

/// Dead letters counted by queue and reason shape: errors grouped by cause.
public struct DeadLetterGroup: Sendable, Hashable, Codable {
    public var queue: String
    /// The reason with its numbers masked (``DeadLetterFilter/shape(of:)``).
    public var shape: String
    /// One full reason of the group, as an example.
    public var example: String
    public var count: Int
    /// When the newest of them died, in seconds since 1970.
    public var latest: Double?

    public init(queue: String, shape: String, example: String, count: Int, latest: Double?) {
        self.queue = queue
        self.shape = shape
        self.example = example
        self.count = count
        self.latest = latest
    }
}

/// A source whose dead letters can be listed, requeued and deleted from the dashboard and admin API.
///
/// Requeued jobs start over (attempts reset), as Sidekiq's "retry now" and Oban's `retry_job` do; a deleted
/// dead letter is gone.
public protocol DeadLetterInspecting: Sendable {
    /// Dead letters matching `filter`, newest first.
    func deadLetters(matching filter: DeadLetterFilter, limit: Int, offset: Int) throws -> [DeadLetterRecord]
    /// Counts by queue and reason shape, largest first.
    func deadLetterGroups(matching filter: DeadLetterFilter) throws -> [DeadLetterGroup]
    /// Puts matching dead letters back on their queues; returns how many.
    func requeueDeadLetters(matching filter: DeadLetterFilter) throws -> Int
    /// Deletes matching dead letters; returns how many.
    func deleteDeadLetters(matching filter: DeadLetterFilter) throws -> Int
}

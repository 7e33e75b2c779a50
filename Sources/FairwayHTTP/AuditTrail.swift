import Foundation
import Logging
import NIOConcurrencyHelpers

/// One change made to a running process: who, what, to which queue or job, and the state before and after.
public struct AuditEntry: Codable, Sendable, Equatable {
    /// When, in UTC (ISO 8601 with milliseconds).
    public var at: String
    /// Who: the `X-Fairway-Actor` of an admin call (the CLI sends `user@host`), or what else acted
    /// (`reload`).
    public var actor: String
    /// What: `pause`, `resume`, `set`, `reload`, `requeue`, `delete`.
    public var action: String
    /// The queue (or `queue/job`) it was done to.
    public var target: String
    public var before: String?
    public var after: String?

    public init(actor: String, action: String, target: String, before: String?, after: String?, at: Date = Date()) {
        self.at = at.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        self.actor = actor
        self.action = action
        self.target = target
        self.before = before
        self.after = after
    }
}

/// The last changes made to this process, newest first, each also logged at notice level. Kept in memory:
/// it ends with the process, as the changes themselves do (docs/operations.md); the log is the durable record.
public final class AuditTrail: Sendable {
    private let entries = NIOLockedValueBox<[AuditEntry]>([])
    private let capacity: Int
    private let logger: Logger

    public init(capacity: Int = 1_000, logger: Logger) {
        self.capacity = max(1, capacity)
        self.logger = logger
    }

    /// Keeps `entry`; logs it unless the caller already logged the same change (`logged`).
    public func record(_ entry: AuditEntry, logged: Bool = false) {
        entries.withLockedValue { entries in
            if entries.count == capacity { entries.removeFirst(capacity / 10 + 1) }
            entries.append(entry)
        }
        guard !logged else { return }
        logger.notice(
            "change recorded",
            metadata: [
                "actor": "\(entry.actor)", "action": "\(entry.action)", "target": "\(entry.target)",
                "before": "\(entry.before ?? "-")", "after": "\(entry.after ?? "-")",
            ])
    }

    /// The newest `limit` entries, newest first.
    public func recent(limit: Int = 100) -> [AuditEntry] {
        entries.withLockedValue { Array($0.suffix(max(0, limit)).reversed()) }
    }
}

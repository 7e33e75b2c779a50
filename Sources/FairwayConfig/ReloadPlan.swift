import FairwayRuntime
import FairwayScheduling

/// What a reload of the configuration file (SIGHUP) changes in a running process, from the file as it was
/// loaded to the file as it is now.
///
/// Only what the scheduler can change live is applied: each queue's weight, concurrency cap, rate limit and
/// pause. Only the fields that changed *in the file* are applied, so a queue an operator paused through the
/// admin API stays paused across a reload that does not mention its pause. Everything else that changed
/// (queues added or removed, workers, sources, HTTP, timeouts, retries, prefetch, isolation, limits,
/// global caps) is listed as needing a restart and left as it runs.
public struct ReloadPlan: Sendable, Equatable {
    /// A live change to one queue: the fields that changed in the file, before and after.
    public struct QueueChange: Sendable, Equatable {
        public var queue: String
        public var before: QueueSettings
        public var after: QueueSettings

        public init(queue: String, before: QueueSettings, after: QueueSettings) {
            self.queue = queue
            self.before = before
            self.after = after
        }

        /// Applies the changed fields onto `current` (the queue's settings as it runs now).
        public func applied(to current: QueueSettings) -> QueueSettings {
            var settings = current
            if before.weight != after.weight { settings.weight = after.weight }
            if before.maxConcurrency != after.maxConcurrency { settings.maxConcurrency = after.maxConcurrency }
            if before.rateLimit != after.rateLimit { settings.rateLimit = after.rateLimit }
            if before.paused != after.paused { settings.paused = after.paused }
            return settings
        }
    }

    public var queueChanges: [QueueChange] = []
    /// One line per change that a reload cannot make, naming the setting.
    public var needsRestart: [String] = []

    public init(from old: FairwayConfiguration, to new: FairwayConfiguration) {
        let oldQueues = Dictionary(old.queues.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let newNames = Set(new.queues.map(\.name))
        let added = new.queues.map(\.name).filter { oldQueues[$0] == nil }
        let removed = old.queues.map(\.name).filter { !newNames.contains($0) }
        if !added.isEmpty { needsRestart.append("queues added: \(Self.list(added))") }
        if !removed.isEmpty { needsRestart.append("queues removed: \(Self.list(removed))") }
        for queue in new.queues {
            guard let was = oldQueues[queue.name] else { continue }
            if was.settings != queue.settings {
                queueChanges.append(QueueChange(queue: queue.name, before: was.settings, after: queue.settings))
            }
            var rest = was
            rest.settings = queue.settings
            if rest != queue {
                needsRestart.append(
                    "queues[\(queue.name)]: timeout, retry, prefetch, isolation, globalConcurrency, group or keys")
            }
        }
        if old.groups != new.groups { needsRestart.append("groups") }
        if old.workers != new.workers { needsRestart.append("workers: \(old.workers) → \(new.workers)") }
        if old.cost != new.cost { needsRestart.append("cost") }
        if old.sources != new.sources { needsRestart.append("sources") }
        var oldHTTP = old.http
        oldHTTP.scale = new.http.scale
        if oldHTTP != new.http { needsRestart.append("http") }
        if old.drainTimeout != new.drainTimeout { needsRestart.append("drainTimeout") }
        if old.logLevel != new.logLevel { needsRestart.append("logLevel") }
        if old.logFormat != new.logFormat { needsRestart.append("logFormat") }
        if old.scale != new.scale { needsRestart.append("scale") }
        if old.backlogLimits != new.backlogLimits { needsRestart.append("maxBacklog of a queue") }
    }

    private static func list(_ names: [String]) -> String {
        names.count <= 5
            ? names.joined(separator: ", ") : names.prefix(5).joined(separator: ", ") + " and \(names.count - 5) more"
    }
}

import FairwayConfig
import FairwayHTTP
import FairwayRuntime
import FairwayScheduling
import Logging

/// A reload of a running ``FairwayService`` (SIGHUP for `fairway run`): reads the configuration file again,
/// or takes a new configuration value, and applies what can change while running (each queue's weight, concurrency cap, rate limit, pause), logging every change with its
/// before and after, and what would need a restart. A file that became invalid changes nothing: the
/// error names the field and the process runs on as it was.
struct LiveReload {
    /// The configuration file, when the service was built from one.
    let path: String?
    let engine: Engine
    let logger: Logger
    /// Where each applied change is kept for `GET /audit`, beside the log.
    let audit: AuditTrail?
    /// The configuration the process runs: as loaded at start, with the queue settings of each reload.
    private(set) var running: FairwayConfiguration

    init(path: String?, running: FairwayConfiguration, engine: Engine, audit: AuditTrail? = nil, logger: Logger) {
        self.path = path
        self.audit = audit
        self.running = running
        self.engine = engine
        self.logger = logger
    }

    /// Reads the file again and applies it. Without a file, nothing changes.
    mutating func reload() {
        guard let path else {
            logger.warning("reload: this service was not built from a configuration file; nothing reloaded")
            return
        }
        let next: FairwayConfiguration
        do {
            next = try ConfigurationLoader.load(path: path)
        } catch {
            logger.error(
                "reload refused: the configuration file is invalid; running on as before",
                metadata: ["config": "\(path)", "error": "\(error)"])
            return
        }
        apply(next)
    }

    /// Applies what can change live of `next`, and logs what would need a restart.
    mutating func apply(_ next: FairwayConfiguration) {
        let plan = ReloadPlan(from: running, to: next)
        let current = Dictionary(
            engine.snapshot().queues.map { ($0.name, $0.settings) }, uniquingKeysWith: { first, _ in first })
        var applied = 0
        for change in plan.queueChanges {
            guard let now = current[change.queue] else { continue }
            let settings = change.applied(to: now)
            do {
                try engine.updateQueue(named: change.queue, settings: settings)
                applied += 1
                logger.notice(
                    "reload: queue settings changed",
                    metadata: [
                        "queue": "\(change.queue)", "before": "\(now.summary)",
                        "after": "\(settings.summary)",
                    ])
                audit?.record(
                    AuditEntry(
                        actor: "reload", action: "reload", target: change.queue, before: now.summary,
                        after: settings.summary),
                    logged: true)
            } catch {
                logger.error("reload: queue not changed", metadata: ["queue": "\(change.queue)", "error": "\(error)"])
            }
        }
        for line in plan.needsRestart {
            logger.warning("reload: changed in the file, applied only by a restart", metadata: ["setting": "\(line)"])
        }
        // What the file now says of each changed queue is what the next reload compares against.
        let changed = Dictionary(plan.queueChanges.map { ($0.queue, $0.after) }, uniquingKeysWith: { a, _ in a })
        for index in running.queues.indices {
            if let settings = changed[running.queues[index].name] { running.queues[index].settings = settings }
        }
        logger.notice(
            "configuration reloaded",
            metadata: [
                "config": "\(path ?? "(a configuration value)")", "queuesChanged": "\(applied)",
                "needRestart": "\(plan.needsRestart.count)",
            ])
    }
}

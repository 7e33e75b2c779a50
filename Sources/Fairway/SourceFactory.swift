import FairwayAMQP
import FairwayConfig
import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import Foundation
import Logging

/// A source of the configuration that could not be opened. The text names it (`sources[0]`) and why.
public struct SourceOpeningError: Error, CustomStringConvertible {
    /// The index of the source in the configuration's `sources`, or nil when there is none at all.
    public let index: Int?
    public let reason: String
    /// True when the configuration itself is wrong (no sources, a file that is not a queue file), as
    /// opposed to a broker or a disk that failed.
    public let isConfigurationProblem: Bool

    public var description: String {
        index.map { "sources[\($0)]: \(reason)" } ?? "sources: \(reason)"
    }
}

/// Turns the `sources` of a configuration into running sources, and tells each SQLite file the queues
/// and job types its consumers serve (so that its producers can refuse the others).
enum SourceFactory {
    static func makeSources(
        _ settings: FairwayConfiguration, registry: JobRegistry, configurationPath: String?, logger: Logger
    ) throws -> [any JobSource] {
        guard !settings.sources.isEmpty else {
            throw SourceOpeningError(index: nil, reason: "list at least one source", isConfigurationProblem: true)
        }
        let attempts = Dictionary(uniqueKeysWithValues: settings.queues.map { ($0.name, $0.retry.maxAttempts) })
        let declarations = settings.queues.map { queue in
            QueueDeclaration(
                queue: queue.name, jobTypes: jobTypes(of: queue, registry: registry),
                keyed: queue.keys != nil && !queue.isPattern)
        }
        return try settings.sources.enumerated().map { index, source in
            switch source {
            case .sqlite(let path):
                let resolved = configurationPath.map { resolve(path, relativeTo: $0) } ?? path
                do {
                    let sqlite = try SQLiteSource(path: resolved, logger: logger)
                    sqlite.setMaxAttempts(attempts)
                    try sqlite.queue.setBacklogLimits(settings.backlogLimits)
                    try sqlite.queue.declareQueues(declarations)
                    return sqlite
                } catch let error as QueueFileError {
                    throw SourceOpeningError(index: index, reason: "\(error)", isConfigurationProblem: true)
                } catch {
                    throw SourceOpeningError(index: index, reason: "\(error)", isConfigurationProblem: false)
                }
            case .amqp(let amqp):
                do {
                    return try AMQPSource(
                        options: options(amqp, attempts: attempts), crashCounter: DeliveryCounter.init(path:),
                        logger: logger)
                } catch {
                    throw SourceOpeningError(index: index, reason: "\(error)", isConfigurationProblem: true)
                }
            }
        }
    }

    static func options(_ amqp: AMQPSourceSettings, attempts: [String: Int]) -> AMQPSource.Options {
        var options = AMQPSource.Options(url: amqp.url)
        options.heartbeat = amqp.heartbeat
        options.declare = amqp.declare
        options.queueType = amqp.queueType
        options.caCertificate = amqp.caCertificate
        options.maxAttempts = attempts
        options.attemptKey = amqp.attemptKey.map { Array($0.utf8) }
        if let directory = amqp.stateDirectory {
            let url = amqp.url
            options.deliveryCounterPath =
                URL(fileURLWithPath: directory)
                .appendingPathComponent("fairway-amqp-deliveries-\(url.host)-\(url.port).db").path
        }
        return options
    }

    /// The job types a queue's consumers handle: the registry's, unless an external command decides.
    static func jobTypes(of queue: QueueDefinition, registry: JobRegistry) -> [String]? {
        if case .process(let worker) = queue.isolation, !worker.command.isEmpty { return nil }
        return registry.jobTypes
    }

    /// A relative path in a configuration file is relative to the file's folder.
    static func resolve(_ path: String, relativeTo configPath: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        let folder = URL(fileURLWithPath: configPath).deletingLastPathComponent()
        return folder.appendingPathComponent(path).standardizedFileURL.path
    }
}

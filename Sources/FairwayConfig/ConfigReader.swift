import FairwayAMQP
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Logging
import Yams

/// Walks the YAML tree, keeping the path to the field being read for errors.
///
/// The whole file here; its sections (HTTP, sources, queues) in `ConfigReader+Sections.swift`, single
/// values (numbers, durations, rates, substitutions) in `ConfigReader+Scalars.swift`.
struct ConfigReader {
    let file: String
    /// The configuration file's folder, where worker commands start; nil for text that has no file.
    let folder: String?
    let environment: [String: String]

    static let rootKeys = [
        "workers", "cost", "http", "sources", "defaults", "queues", "drainTimeout", "scale", "logLevel",
        "logFormat", "groups",
    ]
    /// The most queues one file may declare, patterns expanded.
    static let maxQueues = 100_000

    func error(_ field: String, _ node: Node?, _ message: String) -> ConfigError {
        ConfigError(file: file, field: field, line: node?.mark?.line, message: message)
    }

    mutating func configuration(_ root: Node) throws -> FairwayConfiguration {
        let fields = try mapping(root, "", allowed: Self.rootKeys)
        let workers = try fields["workers"].map { try integer($0, "workers", in: 1...4096) }
        let cost: CostMode = try fields["cost"].map { try choice($0, "cost", CostMode.allCases) } ?? .count
        var http = try httpSettings(fields["http"] ?? .mapping(Node.Mapping([])))
        let sources = try fields["sources"].map { try sourceList($0) } ?? []
        if let scaleNode = fields["scale"] {
            let scaleFields = try mapping(
                scaleNode, "scale", allowed: ["targetLatency", "utilisation", "maxWorkers"])
            if let latency = scaleFields["targetLatency"] {
                http.scale.targetLatency = try duration(latency, "scale.targetLatency", allowZero: false)
            }
            if let utilisation = scaleFields["utilisation"] {
                http.scale.targetUtilisation = try number(utilisation, "scale.utilisation", above: 0, max: 1)
            }
            if let most = scaleFields["maxWorkers"] {
                http.scale.maxWorkers = try integer(most, "scale.maxWorkers", in: 1...1_000_000)
            }
        }
        let logLevel: Logger.Level? = try fields["logLevel"].map { node -> Logger.Level in
            try choice(node, "logLevel", Logger.Level.allCases)
        }
        let drain = try fields["drainTimeout"].map { try duration($0, "drainTimeout", allowZero: true) } ?? .seconds(30)
        let defaults = try fields["defaults"].map { try queueFields($0, "defaults", allowName: false).fields }
        guard let queuesNode = fields["queues"] else {
            throw error("queues", root, "missing: list at least one queue, e.g. queues: [{ name: \"default\" }]")
        }
        let sourcePrefetch = sources.lazy.compactMap { source -> Int? in
            if case .amqp(let settings) = source { return settings.prefetch }
            return nil
        }.first
        let groups = try fields["groups"].map { try groupList($0) } ?? []
        let (queues, limits, latencyTargets) = try queueList(
            queuesNode, defaults: defaults ?? QueueFields(), prefetch: sourcePrefetch, groups: Set(groups.map(\.name)))
        http.scale.latencyTargets = latencyTargets
        var configuration = FairwayConfiguration(
            workers: workers ?? ProcessInfo.processInfo.activeProcessorCount,
            cost: cost,
            http: http,
            sources: sources,
            queues: queues,
            drainTimeout: drain,
            backlogLimits: limits
        )
        configuration.groups = groups
        configuration.logLevel = logLevel
        if let format = fields["logFormat"] {
            configuration.logFormat = try choice(format, "logFormat", LogFormat.allCases)
        }
        return configuration
    }
}

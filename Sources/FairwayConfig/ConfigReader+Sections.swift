import FairwayAMQP
import FairwayHTTP
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Yams

/// The sections of the file: HTTP, sources and queues.
extension ConfigReader {
    // MARK: - Sections

    func httpSettings(_ node: Node) throws -> FairwayHTTPServer.Settings {
        let fields = try mapping(node, "http", allowed: ["listen", "adminToken", "perQueueMetricsUpTo"])
        var settings = FairwayHTTPServer.Settings()
        if let listen = fields["listen"] {
            let text = try string(listen, "http.listen")
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                (0...65535).contains(port)
            else {
                throw error("http.listen", listen, "expected HOST:PORT such as \"127.0.0.1:9464\", got \"\(text)\"")
            }
            var host = String(text[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            settings.host = host.isEmpty ? "0.0.0.0" : host
            settings.port = port
        }
        if let token = fields["adminToken"] {
            let value = try string(token, "http.adminToken")
            settings.adminToken = value.isEmpty ? nil : value
        }
        if let limit = fields["perQueueMetricsUpTo"] {
            settings.perQueueMetricsUpTo = try integer(limit, "http.perQueueMetricsUpTo", in: 0...Self.maxQueues)
        }
        if settings.adminToken == nil, let token = environment["FAIRWAY_ADMIN_TOKEN"], !token.isEmpty {
            settings.adminToken = token
        }
        return settings
    }

    func sourceList(_ node: Node) throws -> [SourceSettings] {
        guard case .sequence(let items) = node else {
            throw error("sources", node, "expected a list of sources, e.g. - { kind: sqlite, path: \"fairway.db\" }")
        }
        return try items.enumerated().map { index, item in
            let field = "sources[\(index)]"
            let fields = try mapping(
                item, field,
                allowed: [
                    "kind", "path", "url", "prefetch", "heartbeat", "declare", "queueType", "caCertificate",
                    "attemptKey", "stateDirectory",
                ]
            )
            guard let kindNode = fields["kind"] else {
                throw error("\(field).kind", item, "missing: one of sqlite, amqp")
            }
            let kind = try string(kindNode, "\(field).kind")
            switch kind {
            case "sqlite":
                try reject(
                    fields,
                    [
                        "url", "prefetch", "heartbeat", "declare", "queueType", "caCertificate", "attemptKey",
                        "stateDirectory",
                    ],
                    field, kind: kind
                )
                guard let path = fields["path"] else {
                    throw error("\(field).path", item, "missing: the SQLite file, e.g. path: \"fairway.db\"")
                }
                let value = try string(path, "\(field).path")
                guard !value.isEmpty else { throw error("\(field).path", path, "must not be empty") }
                return .sqlite(path: value)
            case "amqp":
                try reject(fields, ["path"], field, kind: kind)
                let url: String
                if let urlNode = fields["url"] {
                    url = try string(urlNode, "\(field).url")
                } else if let fromEnvironment = environment["FAIRWAY_AMQP_URL"] {
                    url = fromEnvironment
                } else {
                    throw error("\(field).url", item, "missing: set url, or FAIRWAY_AMQP_URL in the environment")
                }
                guard url.hasPrefix("amqp://") || url.hasPrefix("amqps://") else {
                    throw error("\(field).url", fields["url"] ?? item, "must start with amqp:// or amqps://")
                }
                let parsed: AMQPURL
                do {
                    parsed = try AMQPURL(url)
                } catch let problem as AMQPURL.Problem {
                    throw error("\(field).url", fields["url"] ?? item, problem.description)
                }
                var settings = AMQPSourceSettings(url: parsed)
                settings.prefetch = try fields["prefetch"].map { try integer($0, "\(field).prefetch", in: 1...65535) }
                settings.heartbeat =
                    try fields["heartbeat"].map { try integer($0, "\(field).heartbeat", in: 0...3600) } ?? 30
                settings.declare = try fields["declare"].map { try boolean($0, "\(field).declare") } ?? true
                if let type = fields["queueType"] {
                    settings.queueType = try choice(type, "\(field).queueType", AMQPSource.QueueType.allCases)
                }
                settings.caCertificate = try fields["caCertificate"].map { try string($0, "\(field).caCertificate") }
                settings.attemptKey =
                    try fields["attemptKey"].map { try string($0, "\(field).attemptKey") }
                    ?? environment["FAIRWAY_AMQP_ATTEMPT_KEY"]
                if let key = settings.attemptKey, key.utf8.count < 16 {
                    throw error(
                        "\(field).attemptKey", fields["attemptKey"] ?? item,
                        "must be at least 16 bytes long (it signs attempt counts), got \(key.utf8.count)")
                }
                if let directory = fields["stateDirectory"] {
                    let path = try string(directory, "\(field).stateDirectory")
                    guard !path.isEmpty else { throw error("\(field).stateDirectory", directory, "must not be empty") }
                    settings.stateDirectory = path
                }
                return .amqp(settings)
            default:
                throw error("\(field).kind", kindNode, "unknown source kind '\(kind)'; expected one of sqlite, amqp")
            }
        }
    }

    func reject(_ fields: [String: Node], _ keys: [String], _ field: String, kind: String) throws {
        for key in keys {
            if let node = fields[key] {
                throw error("\(field).\(key)", node, "not a field of a \(kind) source")
            }
        }
    }

    /// The `groups:` list: each a name and a weight (1 when absent), names unique.
    func groupList(_ node: Node) throws -> [QueueGroup] {
        guard case .sequence(let items) = node else {
            throw error("groups", node, "expected a list of groups, e.g. - { name: \"free\", weight: 1 }")
        }
        var groups: [QueueGroup] = []
        for (index, item) in items.enumerated() {
            let field = "groups[\(index)]"
            let map = try mapping(item, field, allowed: ["name", "weight"])
            guard let nameNode = map["name"] else {
                throw error("\(field).name", item, "missing: every group needs a name")
            }
            let name = try string(nameNode, "\(field).name")
            guard !name.isEmpty else { throw error("\(field).name", nameNode, "a group's name cannot be empty") }
            guard !groups.contains(where: { $0.name == name }) else {
                throw error("\(field).name", nameNode, "group '\(name)' is defined twice")
            }
            let weight = try map["weight"].map { try number($0, "\(field).weight", above: 0, max: 1_000_000) } ?? 1
            groups.append(QueueGroup(name: name, weight: weight))
        }
        return groups
    }

    func queueList(_ node: Node, defaults: QueueFields, prefetch: Int?, groups: Set<String> = []) throws -> (
        [QueueDefinition], [String: BacklogLimit], latencyTargets: [String: Duration]
    ) {
        guard case .sequence(let items) = node else {
            throw error("queues", node, "expected a list of queues, e.g. - { name: \"billing\", weight: 8 }")
        }
        guard !items.isEmpty else { throw error("queues", node, "list at least one queue") }
        var order: [String] = []
        var merged: [String: QueueFields] = [:]
        var origin: [String: String] = [:]
        for (index, item) in items.enumerated() {
            let field = "queues[\(index)]"
            let (name, nameNode, fields) = try queueFields(item, field, allowName: true)
            guard let name, let nameNode else {
                throw error(
                    "\(field).name", item,
                    "missing: every queue entry needs a name (or a pattern such as \"tenant-{1..100}\")")
            }
            let names: [String]
            do {
                names = try QueueNamePattern.expand(name, limit: Self.maxQueues)
            } catch let problem as QueueNamePattern.Problem {
                throw error("\(field).name", nameNode, problem.message)
            }
            for expanded in names {
                if let existing = merged[expanded] {
                    merged[expanded] = fields.over(existing)
                } else {
                    guard order.count < Self.maxQueues else {
                        throw error("queues", node, "more than \(Self.maxQueues) queues")
                    }
                    order.append(expanded)
                    merged[expanded] = fields.over(defaults)
                }
                origin[expanded] = field
            }
        }
        var limits: [String: BacklogLimit] = [:]
        var latencyTargets: [String: Duration] = [:]
        for name in order {
            let fields = merged[name]!
            latencyTargets[name] = fields.latencyTarget
            if let maxBacklog = fields.maxBacklog {
                var limit = BacklogLimit(maxBacklog: maxBacklog)
                limit.retryAfter = fields.backlogRetryAfter ?? limit.retryAfter
                limits[name] = limit
            } else if fields.backlogRetryAfter != nil {
                throw error(
                    "\(origin[name]!).backlogRetryAfter", nil,
                    "queue '\(name)': backlogRetryAfter needs maxBacklog")
            }
        }
        let definitions = try order.map { name in
            let fields = merged[name]!
            if let group = fields.group, !groups.contains(group) {
                throw error(
                    "\(origin[name]!).group", nil,
                    groups.isEmpty
                        ? "queue '\(name)': no group named '\(group)'; define it under groups:"
                        : "queue '\(name)': no group named '\(group)'; the groups are \(groups.sorted().joined(separator: ", "))"
                )
            }
            if name.utf8.contains(UInt8(ascii: "*")) {
                // A pattern's queues are counted and limited in the file by their own names; these two
                // settings would need a count across every name it admits.
                if fields.globalConcurrency != nil {
                    throw error(
                        "\(origin[name]!).globalConcurrency", nil,
                        "queue '\(name)': globalConcurrency cannot apply to a pattern; use keys: { concurrency: N } to cap each queue it admits"
                    )
                }
                if fields.maxBacklog != nil {
                    throw error(
                        "\(origin[name]!).maxBacklog", nil,
                        "queue '\(name)': maxBacklog cannot apply to a pattern (its queues are created by their producers)"
                    )
                }
            }
            let backoff = fields.backoff ?? .seconds(1)
            let maxBackoff = fields.maxBackoff ?? max(backoff, .seconds(600))
            guard maxBackoff >= backoff else {
                throw error(
                    "\(origin[name]!).maxBackoff", nil,
                    "queue '\(name)': maxBackoff (\(maxBackoff.compactDescription)) is less than backoff (\(backoff.compactDescription))"
                )
            }
            let rate = fields.rate.map { RateLimit(perSecond: $0, burst: fields.burst) }
            return QueueDefinition(
                name: name,
                settings: QueueSettings(
                    weight: fields.weight ?? 1,
                    maxConcurrency: fields.maxConcurrency ?? .max,
                    rateLimit: rate,
                    paused: fields.paused ?? false
                ),
                timeout: fields.timeout ?? .seconds(1800),
                retry: RetryPolicy(
                    maxAttempts: fields.attempts ?? 5,
                    initialBackoff: backoff,
                    maxBackoff: maxBackoff,
                    jitter: fields.jitter ?? 0.25
                ),
                credit: fields.prefetch ?? prefetch ?? 32,
                isolation: try isolation(fields, queue: name, field: origin[name]!),
                globalConcurrency: fields.globalConcurrency,
                group: fields.group,
                keys: fields.keys
            )
        }
        return (definitions, limits, latencyTargets)
    }

    /// `keys: true`, or `keys: { concurrency: 2, weights: { acme: 4 } }`: the queue shares by fairness key.
    func keyFairness(_ node: Node, _ field: String) throws -> KeyFairness? {
        if node.mapping == nil {
            guard try boolean(node, field) else {
                throw error(
                    field, node, "to share a queue by key write keys: true (or a mapping); leave it out otherwise")
            }
            return KeyFairness()
        }
        let map = try mapping(node, field, allowed: ["concurrency", "weights"])
        var keys = KeyFairness()
        if let cap = map["concurrency"] {
            keys.concurrency = try integer(cap, "\(field).concurrency", in: 1...65535)
        }
        if let weights = map["weights"] {
            guard let entries = weights.mapping else {
                throw error("\(field).weights", weights, "expected a mapping of keys to weights, e.g. { acme: 4 }")
            }
            guard entries.count <= 10_000 else {
                throw error("\(field).weights", weights, "more than 10000 weighted keys; give the rest weight 1")
            }
            for (keyNode, weight) in entries {
                guard let key = keyNode.string, !key.isEmpty else {
                    throw error("\(field).weights", keyNode, "a key must be non-empty text")
                }
                keys.weights[key] = try number(weight, "\(field).weights.\(key)", above: 0, max: 1_000_000)
            }
        }
        return keys
    }

    /// The queue's isolation; process settings with no `isolation` at all are a mistake worth naming.
    func isolation(_ fields: QueueFields, queue: String, field: String) throws -> Isolation {
        guard fields.isolation == .process else {
            let stray = [
                ("command", fields.command != nil), ("recycleAfterJobs", fields.recycleAfterJobs != nil),
                ("recycleAboveMemoryMB", fields.recycleAboveMemoryMB != nil), ("killGrace", fields.killGrace != nil),
                ("memoryLimitMB", fields.memoryLimitMB != nil), ("pipeline", fields.pipeline != nil),
            ].first { $0.1 }
            // Settings for processes with no isolation named anywhere are a mistake; a queue that says
            // `isolation: thread` under process defaults is not.
            if let stray, fields.isolation == nil {
                throw error(
                    "\(field).\(stray.0)", nil,
                    "queue '\(queue)': \(stray.0) applies to worker processes; add isolation: process")
            }
            return .thread
        }
        let defaults = ProcessWorkerSettings()
        let command = fields.command ?? []
        if let program = command.first {
            let located = URL(
                fileURLWithPath: ProcessWorkerSettings.locate(
                    program, in: folder ?? FileManager.default.currentDirectoryPath)
            ).standardizedFileURL.path
            guard access(located, X_OK) == 0 else {
                let looked =
                    program.contains("/")
                    ? "\(located) \(FileManager.default.fileExists(atPath: located) ? "is not executable" : "does not exist")"
                    : "not found on PATH"
                throw error(
                    "\(field).command", nil,
                    "queue '\(queue)': cannot run '\(program)': \(looked) (a relative path is relative to "
                        + "the configuration file's folder, where workers start)")
            }
        }
        return .process(
            ProcessWorkerSettings(
                command: command,
                workingDirectory: command.isEmpty ? nil : folder,
                recycleAfterJobs: fields.recycleAfterJobs ?? defaults.recycleAfterJobs,
                recycleAboveMemoryBytes: fields.recycleAboveMemoryMB.map { $0 << 20 }
                    ?? defaults.recycleAboveMemoryBytes,
                killGrace: fields.killGrace ?? defaults.killGrace,
                memoryLimitBytes: (fields.memoryLimitMB ?? 0) << 20,
                pipelineDepth: fields.pipeline ?? defaults.pipelineDepth
            ))
    }

    func queueFields(_ node: Node, _ field: String, allowName: Bool) throws -> (
        name: String?, nameNode: Node?, fields: QueueFields
    ) {
        let allowed = (allowName ? ["name"] : []) + QueueFields.keys
        let map = try mapping(node, field, allowed: allowed)
        var fields = QueueFields()
        var name: String?
        if let nameNode = map["name"] {
            name = try string(nameNode, "\(field).name")
        }
        for (key, value) in map where key != "name" {
            let path = "\(field).\(key)"
            switch key {
            case "weight": fields.weight = try number(value, path, above: 0, max: 1_000_000)
            case "maxConcurrency": fields.maxConcurrency = try integer(value, path, in: 1...1_000_000)
            case "rate": fields.rate = try rate(value, path)
            case "burst": fields.burst = try number(value, path, atLeast: 1, max: 1_000_000_000)
            case "timeout": fields.timeout = try duration(value, path, allowZero: false)
            case "attempts": fields.attempts = try integer(value, path, in: 1...1000)
            case "backoff": fields.backoff = try duration(value, path, allowZero: true)
            case "maxBackoff": fields.maxBackoff = try duration(value, path, allowZero: true)
            case "jitter": fields.jitter = try number(value, path, atLeast: 0, max: 1)
            case "paused": fields.paused = try boolean(value, path)
            case "prefetch": fields.prefetch = try integer(value, path, in: 1...65535)
            case "isolation": fields.isolation = try choice(value, path, QueueFields.IsolationMode.allCases)
            case "command": fields.command = try command(value, path)
            case "recycleAfterJobs": fields.recycleAfterJobs = try integer(value, path, in: 0...1_000_000_000)
            case "recycleAboveMemoryMB": fields.recycleAboveMemoryMB = try integer(value, path, in: 0...1_048_576)
            // Below about 32 MB a worker's own threads and runtime may not even start.
            case "memoryLimitMB": fields.memoryLimitMB = try integer(value, path, in: 32...1_048_576)
            case "pipeline":
                fields.pipeline = try integer(value, path, in: 1...ProcessWorkerSettings.maxPipelineDepth)
            case "killGrace": fields.killGrace = try duration(value, path, allowZero: true)
            case "maxBacklog": fields.maxBacklog = try integer(value, path, in: 1...1_000_000_000)
            case "backlogRetryAfter": fields.backlogRetryAfter = try duration(value, path, allowZero: false)
            case "latencyTarget": fields.latencyTarget = try duration(value, path, allowZero: false)
            case "globalConcurrency": fields.globalConcurrency = try integer(value, path, in: 1...65535)
            case "group": fields.group = try string(value, path)
            case "keys": fields.keys = try keyFairness(value, path)
            default: break
            }
        }
        return (name, map["name"], fields)
    }
}

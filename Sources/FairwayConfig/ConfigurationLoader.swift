import FairwayAMQP
import FairwayProcessWorkers
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Yams

/// Reads and validates a Fairway YAML file. Every problem is reported as a ``ConfigError`` that names the
/// file, the field (`queues[3].weight`), its line, and what is wrong; unknown fields are errors too, so a
/// typo never silently falls back to a default.
public enum ConfigurationLoader {
    /// Reads the file at `path`.
    public static func load(
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> FairwayConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read as UTF-8 text" : "no such file"
            throw ConfigError(file: path, field: "", message: reason)
        }
        return try parse(yaml: text, file: path, environment: environment)
    }

    /// Parses YAML text; `file` is only used in errors.
    public static func parse(
        yaml: String,
        file: String = "<config>",
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> FairwayConfiguration {
        var reader = ConfigReader(file: file, environment: environment)
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch YamlError.duplicatedKeysInMapping(let duplicates, let context) {
            let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            throw ConfigError(
                file: file, field: "", line: context.mark.line, message: "field \(keys) given twice in one mapping")
        } catch let error as YamlError {
            throw ConfigError(file: file, field: "", message: "not valid YAML: \(Self.describe(error))")
        } catch {
            throw ConfigError(file: file, field: "", message: "not valid YAML: \(error)")
        }
        guard let root else {
            throw ConfigError(file: file, field: "", message: "the file is empty; it needs at least a 'queues' list")
        }
        return try reader.configuration(root)
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return "\(problem) at line \(mark.line), column \(mark.column)"
        default:
            return "\(error)"
        }
    }
}

/// The fields a queue entry (or the defaults) may set; nil where the entry is silent.
struct QueueFields {
    var weight: Double?
    var maxConcurrency: Int?
    var rate: Double?
    var burst: Double?
    var timeout: Duration?
    var attempts: Int?
    var backoff: Duration?
    var maxBackoff: Duration?
    var jitter: Double?
    var paused: Bool?
    var prefetch: Int?
    var isolation: IsolationMode?
    var command: [String]?
    var recycleAfterJobs: Int?
    var recycleAboveMemoryMB: Int?
    var killGrace: Duration?
    var maxBacklog: Int?
    var backlogRetryAfter: Duration?

    static let keys = [
        "weight", "maxConcurrency", "rate", "burst", "timeout", "attempts", "backoff", "maxBackoff", "jitter",
        "paused", "prefetch", "isolation", "command", "recycleAfterJobs", "recycleAboveMemoryMB", "killGrace",
        "maxBacklog", "backlogRetryAfter",
    ]

    enum IsolationMode: String, CaseIterable {
        case thread, process
    }

    /// Fields set here replace those of `base`.
    func over(_ base: QueueFields) -> QueueFields {
        QueueFields(
            weight: weight ?? base.weight,
            maxConcurrency: maxConcurrency ?? base.maxConcurrency,
            rate: rate ?? base.rate,
            burst: burst ?? base.burst,
            timeout: timeout ?? base.timeout,
            attempts: attempts ?? base.attempts,
            backoff: backoff ?? base.backoff,
            maxBackoff: maxBackoff ?? base.maxBackoff,
            jitter: jitter ?? base.jitter,
            paused: paused ?? base.paused,
            prefetch: prefetch ?? base.prefetch,
            isolation: isolation ?? base.isolation,
            command: command ?? base.command,
            recycleAfterJobs: recycleAfterJobs ?? base.recycleAfterJobs,
            recycleAboveMemoryMB: recycleAboveMemoryMB ?? base.recycleAboveMemoryMB,
            killGrace: killGrace ?? base.killGrace,
            maxBacklog: maxBacklog ?? base.maxBacklog,
            backlogRetryAfter: backlogRetryAfter ?? base.backlogRetryAfter
        )
    }
}

/// Walks the YAML tree, keeping the path to the field being read for errors.
struct ConfigReader {
    let file: String
    let environment: [String: String]

    static let rootKeys = ["workers", "cost", "http", "sources", "defaults", "queues", "drainTimeout", "scale"]
    /// The most queues one file may declare, patterns expanded.
    static let maxQueues = 100_000

    func error(_ field: String, _ node: Node?, _ message: String) -> ConfigError {
        ConfigError(file: file, field: field, line: node?.mark?.line, message: message)
    }

    mutating func configuration(_ root: Node) throws -> FairwayConfiguration {
        let fields = try mapping(root, "", allowed: Self.rootKeys)
        let workers = try fields["workers"].map { try integer($0, "workers", in: 1...4096) }
        let cost: CostMode = try fields["cost"].map { try choice($0, "cost", CostMode.allCases) } ?? .count
        let http = try httpSettings(fields["http"] ?? .mapping(Node.Mapping([])))
        let sources = try fields["sources"].map { try sourceList($0) } ?? []
        var scale = ScaleSettings()
        if let scaleNode = fields["scale"] {
            let scaleFields = try mapping(scaleNode, "scale", allowed: ["targetLatency", "utilisation"])
            if let latency = scaleFields["targetLatency"] {
                scale.targetLatency = try duration(latency, "scale.targetLatency", allowZero: false)
            }
            if let utilisation = scaleFields["utilisation"] {
                scale.utilisation = try number(utilisation, "scale.utilisation", above: 0, max: 1)
            }
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
        let (queues, limits) = try queueList(queuesNode, defaults: defaults ?? QueueFields(), prefetch: sourcePrefetch)
        return FairwayConfiguration(
            workers: workers ?? ProcessInfo.processInfo.activeProcessorCount,
            cost: cost,
            http: http,
            sources: sources,
            queues: queues,
            drainTimeout: drain,
            scale: scale,
            backlogLimits: limits
        )
    }

    // MARK: - Sections

    func httpSettings(_ node: Node) throws -> HTTPSettings {
        let fields = try mapping(node, "http", allowed: ["listen", "adminToken", "perQueueMetricsUpTo"])
        var settings = HTTPSettings()
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
                do {
                    _ = try AMQPURL(url)
                } catch let problem as AMQPURL.Problem {
                    throw error("\(field).url", fields["url"] ?? item, problem.description)
                }
                var settings = AMQPSourceSettings(url: url)
                settings.prefetch = try fields["prefetch"].map { try integer($0, "\(field).prefetch", in: 1...65535) }
                settings.heartbeat =
                    try fields["heartbeat"].map { try integer($0, "\(field).heartbeat", in: 0...3600) } ?? 30
                settings.declare = try fields["declare"].map { try boolean($0, "\(field).declare") } ?? true
                if let type = fields["queueType"] {
                    let text = try string(type, "\(field).queueType")
                    guard ["classic", "quorum"].contains(text) else {
                        throw error("\(field).queueType", type, "expected one of classic, quorum, got \"\(text)\"")
                    }
                    settings.queueType = text
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

    private func reject(_ fields: [String: Node], _ keys: [String], _ field: String, kind: String) throws {
        for key in keys {
            if let node = fields[key] {
                throw error("\(field).\(key)", node, "not a field of a \(kind) source")
            }
        }
    }

    func queueList(_ node: Node, defaults: QueueFields, prefetch: Int?) throws -> (
        [QueueDefinition], [String: BacklogLimit]
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
        for name in order {
            let fields = merged[name]!
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
                isolation: try isolation(fields, queue: name, field: origin[name]!)
            )
        }
        return (definitions, limits)
    }

    /// The queue's isolation; process settings with no `isolation` at all are a mistake worth naming.
    func isolation(_ fields: QueueFields, queue: String, field: String) throws -> Isolation {
        guard fields.isolation == .process else {
            let stray = [
                ("command", fields.command != nil), ("recycleAfterJobs", fields.recycleAfterJobs != nil),
                ("recycleAboveMemoryMB", fields.recycleAboveMemoryMB != nil), ("killGrace", fields.killGrace != nil),
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
        return .process(
            ProcessWorkerSettings(
                command: fields.command ?? [],
                recycleAfterJobs: fields.recycleAfterJobs ?? defaults.recycleAfterJobs,
                recycleAboveMemoryBytes: fields.recycleAboveMemoryMB.map { $0 << 20 }
                    ?? defaults.recycleAboveMemoryBytes,
                killGrace: fields.killGrace ?? defaults.killGrace
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
            case "killGrace": fields.killGrace = try duration(value, path, allowZero: true)
            case "maxBacklog": fields.maxBacklog = try integer(value, path, in: 1...1_000_000_000)
            case "backlogRetryAfter": fields.backlogRetryAfter = try duration(value, path, allowZero: false)
            default: break
            }
        }
        return (name, map["name"], fields)
    }

    // MARK: - Scalars

    /// A worker command: a list of strings (program first), or one string split on spaces.
    func command(_ node: Node, _ field: String) throws -> [String] {
        let parts: [String]
        switch node {
        case .sequence(let items):
            parts = try items.enumerated().map { try string($0.element, "\(field)[\($0.offset)]") }
        case .scalar:
            parts = try string(node, field).split(separator: " ").map(String.init)
        default:
            throw error(field, node, "expected the program and its arguments, e.g. [\"python3\", \"worker.py\"]")
        }
        guard let first = parts.first, !first.isEmpty else {
            throw error(field, node, "expected the program and its arguments, e.g. [\"python3\", \"worker.py\"]")
        }
        return parts
    }

    func mapping(_ node: Node, _ field: String, allowed: [String]) throws -> [String: Node] {
        guard case .mapping(let pairs) = node else {
            let what = field.isEmpty ? "the file" : field
            throw error(field, node, "\(what) must be a mapping of fields (key: value)")
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in pairs {
            guard let key = keyNode.string else { throw error(field, keyNode, "field names must be text") }
            let path = field.isEmpty ? key : "\(field).\(key)"
            guard allowed.contains(key) else {
                var message = "unknown field '\(key)'"
                if let suggestion = Self.closest(to: key, in: allowed) {
                    message += "; did you mean '\(suggestion)'?"
                } else {
                    message += "; expected one of \(allowed.joined(separator: ", "))"
                }
                throw error(path, keyNode, message)
            }
            guard result[key] == nil else { throw error(path, keyNode, "given twice") }
            result[key] = value
        }
        return result
    }

    func scalarText(_ node: Node, _ field: String) throws -> String {
        guard case .scalar(let scalar) = node else {
            throw error(field, node, "expected a single value, not a list or mapping")
        }
        return try substitute(scalar.string, field, node)
    }

    func string(_ node: Node, _ field: String) throws -> String {
        try scalarText(node, field)
    }

    func integer(_ node: Node, _ field: String, in range: ClosedRange<Int>) throws -> Int {
        let text = try scalarText(node, field)
        guard let value = Int(text.replacingOccurrences(of: "_", with: "")) else {
            throw error(field, node, "expected a whole number, got \"\(text)\"")
        }
        guard range.contains(value) else {
            throw error(field, node, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
        return value
    }

    func number(_ node: Node, _ field: String, above lower: Double? = nil, atLeast: Double? = nil, max: Double)
        throws -> Double
    {
        let text = try scalarText(node, field)
        guard let value = Double(text.replacingOccurrences(of: "_", with: "")), value.isFinite else {
            throw error(field, node, "expected a number, got \"\(text)\"")
        }
        if let lower, value <= lower {
            throw error(field, node, "must be greater than \(Self.format(lower)), got \(text)")
        }
        if let atLeast, value < atLeast {
            throw error(field, node, "must be at least \(Self.format(atLeast)), got \(text)")
        }
        guard value <= max else { throw error(field, node, "must be at most \(Self.format(max)), got \(text)") }
        return value
    }

    func boolean(_ node: Node, _ field: String) throws -> Bool {
        let text = try scalarText(node, field)
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error(field, node, "expected true or false, got \"\(text)\"")
        }
    }

    func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ field: String, _ cases: T.AllCases) throws -> T
    where T.RawValue == String {
        let text = try scalarText(node, field)
        guard let value = T(rawValue: text) else {
            let options = cases.map(\.rawValue).joined(separator: ", ")
            throw error(field, node, "expected one of \(options), got \"\(text)\"")
        }
        return value
    }

    /// "30s", "500ms", "2m", "1h", "1.5s", or a bare number of seconds.
    func duration(_ node: Node, _ field: String, allowZero: Bool) throws -> Duration {
        let text = try scalarText(node, field)
        if let seconds = Self.parseSeconds(text), abs(seconds) > Self.longestDuration {
            throw error(
                field, node, "must be at most \(Int(Self.longestDuration)) seconds (about 31 years), got \"\(text)\"")
        }
        guard let value = Self.parseDuration(text) else {
            throw error(
                field, node, "expected a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\", got \"\(text)\"")
        }
        if value < .zero || (!allowZero && value == .zero) {
            throw error(field, node, allowZero ? "must not be negative" : "must be greater than zero")
        }
        return value
    }

    /// A number of jobs per second, or "N/s", "N/m", "N/h".
    func rate(_ node: Node, _ field: String) throws -> Double {
        let text = try scalarText(node, field)
        var number = Substring(text)
        var per = 1.0
        if let slash = text.firstIndex(of: "/") {
            number = text[..<slash]
            switch text[text.index(after: slash)...].trimmingCharacters(in: .whitespaces) {
            case "s", "sec", "second": per = 1
            case "m", "min", "minute": per = 60
            case "h", "hour": per = 3600
            default:
                throw error(
                    field, node, "expected a rate such as 100, \"100/s\", \"600/m\" or \"1000/h\", got \"\(text)\"")
            }
        }
        guard let value = Double(number.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            throw error(field, node, "expected a rate such as 100, \"100/s\", \"600/m\" or \"1000/h\", got \"\(text)\"")
        }
        guard value > 0 else { throw error(field, node, "must be greater than 0, got \(text)") }
        return value / per
    }

    /// The longest duration a field takes, in seconds: beyond it, nanoseconds would not fit.
    static let longestDuration = 1e9

    /// A duration in the text's units, or nil when it is not one or is longer than ``longestDuration``.
    static func parseDuration(_ text: String) -> Duration? {
        guard let seconds = parseSeconds(text), abs(seconds) <= longestDuration else { return nil }
        return .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    /// The seconds a duration's text stands for ("500ms", "2m", "1.5", …), when it is a finite number.
    static func parseSeconds(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            if let value = Double(number), value.isFinite, (value * scale).isFinite {
                return value * scale
            }
        }
        if let value = Double(trimmed), value.isFinite {
            return value
        }
        return nil
    }

    /// Replaces `${NAME}` and `${NAME:-fallback}` with environment variables; a missing one is an error.
    func substitute(_ text: String, _ field: String, _ node: Node) throws -> String {
        guard text.contains("${") else { return text }
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            result += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw error(field, node, "unclosed ${ in \"\(text)\"")
            }
            let expression = rest[start.upperBound..<end]
            var name = Substring(expression)
            var fallback: Substring?
            if let separator = expression.range(of: ":-") {
                name = expression[..<separator.lowerBound]
                fallback = expression[separator.upperBound...]
            }
            if let value = environment[String(name)] {
                result += value
            } else if let fallback {
                result += fallback
            } else {
                throw error(field, node, "environment variable \(name) is not set")
            }
            rest = rest[rest.index(after: end)...]
        }
        return result + rest
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? "\(Int(value))" : "\(value)"
    }

    static func closest(to key: String, in options: [String]) -> String? {
        let lowered = key.lowercased()
        let scored = options.map { ($0, editDistance(lowered, $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, key.count / 3) else { return nil }
        return best.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

import Foundation
import Logging

private let standardErrorLock = NSLock()

/// A swift-log handler that writes one JSON object a line, for log pipelines (Loki, Elasticsearch, Cloud
/// Logging) that index fields instead of parsing text: `time`, `level`, `label`, `message`, then every
/// metadata key as a field of its own (`queue`, `type`, `id`, `attempt`, `reason`, …).
///
/// `fairway run --log-format json` (or `logFormat: json`) bootstraps it; an embedding program can too:
/// `LoggingSystem.bootstrap(JSONLogHandler.standardError)`.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: @Sendable (String) -> Void

    /// The fields every line starts with; metadata under the same name is written as `metadata.<name>`.
    static let reserved: Set<String> = ["time", "level", "label", "message"]

    /// A handler writing to standard error, as swift-log's own default does.
    public static func standardError(label: String, metadataProvider: Logger.MetadataProvider?) -> JSONLogHandler {
        JSONLogHandler(label: label, metadataProvider: metadataProvider) { line in
            // Whole lines: one writer at a time, and a short write continued.
            standardErrorLock.withLock {
                var bytes = Array(line.utf8)[...]
                while !bytes.isEmpty {
                    let written = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                    if written < 0 && errno == EINTR { continue }
                    guard written > 0 else { return }
                    bytes = bytes.dropFirst(written)
                }
            }
        }
    }

    /// A handler that hands each finished line (newline included) to `output`.
    public init(
        label: String, metadataProvider: Logger.MetadataProvider? = nil, output: @escaping @Sendable (String) -> Void
    ) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let own = event.metadata { fields.merge(own) { _, new in new } }
        var line = "{\"time\":"
        Self.append(string: Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)), to: &line)
        line += ",\"level\":"
        Self.append(string: event.level.rawValue, to: &line)
        line += ",\"label\":"
        Self.append(string: label, to: &line)
        line += ",\"message\":"
        Self.append(string: "\(event.message)", to: &line)
        for key in fields.keys.sorted() {
            line += ","
            Self.append(string: Self.reserved.contains(key) ? "metadata.\(key)" : key, to: &line)
            line += ":"
            Self.append(value: fields[key]!, to: &line)
        }
        line += "}\n"
        output(line)
    }

    static func append(value: Logger.Metadata.Value, to line: inout String) {
        switch value {
        case .string(let text): append(string: text, to: &line)
        case .stringConvertible(let convertible): append(string: convertible.description, to: &line)
        case .array(let values):
            line += "["
            for (index, element) in values.enumerated() {
                if index > 0 { line += "," }
                append(value: element, to: &line)
            }
            line += "]"
        case .dictionary(let dictionary):
            line += "{"
            for (index, key) in dictionary.keys.sorted().enumerated() {
                if index > 0 { line += "," }
                append(string: key, to: &line)
                line += ":"
                append(value: dictionary[key]!, to: &line)
            }
            line += "}"
        }
    }

    /// A JSON string literal (RFC 8259): quotes, backslashes and control characters escaped.
    static func append(string: String, to line: inout String) {
        line += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || (0x2028...0x2029).contains(scalar.value):
                line +=
                    "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }
}

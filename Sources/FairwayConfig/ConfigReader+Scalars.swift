import FairwayAMQP
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Yams

/// Single values, each checked against its range, with the field named when it is wrong.
extension ConfigReader {
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

/// Expands queue-name patterns so that one configuration entry can declare many queues:
/// `tenant-{1..100}` (a numeric range; `{001..100}` keeps the zero padding), `{eu,us}-mail` (a list), and
/// several braces at once (every combination).
public enum QueueNamePattern {
    public struct Problem: Error, Equatable {
        public let message: String
    }

    /// The names a pattern stands for, in order. A name without braces stands for itself.
    public static func expand(_ pattern: String, limit: Int = 100_000) throws -> [String] {
        guard !pattern.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw Problem(message: "must not be empty")
        }
        guard pattern.utf8.count <= 255 else {
            throw Problem(message: "longer than 255 bytes")
        }
        guard !pattern.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw Problem(message: "must not contain spaces: \"\(pattern)\"")
        }
        var results = [""]
        var rest = Substring(pattern)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw Problem(message: "'{' without a closing '}' in \"\(pattern)\"")
            }
            let literal = rest[..<open]
            guard !literal.contains("}") else { throw Problem(message: "'}' without an opening '{' in \"\(pattern)\"") }
            let alternatives = try self.alternatives(String(rest[rest.index(after: open)..<close]), in: pattern)
            guard results.count * alternatives.count <= limit else {
                throw Problem(message: "\"\(pattern)\" stands for more than \(limit) queues")
            }
            results = results.flatMap { prefix in alternatives.map { prefix + literal + $0 } }
            rest = rest[rest.index(after: close)...]
        }
        guard !rest.contains("}") else { throw Problem(message: "'}' without an opening '{' in \"\(pattern)\"") }
        return results.map { $0 + rest }
    }

    private static func alternatives(_ body: String, in pattern: String) throws -> [String] {
        if let range = body.range(of: "..") {
            let lowerText = String(body[..<range.lowerBound])
            let upperText = String(body[range.upperBound...])
            guard let lower = Int(lowerText), let upper = Int(upperText), lower >= 0, upper >= 0 else {
                throw Problem(message: "expected a range of whole numbers such as {1..100} in \"\(pattern)\"")
            }
            guard lower <= upper else {
                throw Problem(message: "range {\(body)} counts down; write {\(upper)..\(lower)} in \"\(pattern)\"")
            }
            guard upper - lower < 1_000_000 else {
                throw Problem(message: "range {\(body)} is too large in \"\(pattern)\"")
            }
            let width = lowerText.hasPrefix("0") && lowerText.count > 1 ? lowerText.count : 0
            return (lower...upper).map { value in
                let digits = String(value)
                return digits.count < width ? String(repeating: "0", count: width - digits.count) + digits : digits
            }
        }
        let items = body.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard items.count > 1, !items.contains(where: \.isEmpty) else {
            throw Problem(message: "expected {A..B} or {a,b,c} in \"\(pattern)\", got {\(body)}")
        }
        return items
    }
}

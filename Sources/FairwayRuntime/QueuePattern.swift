import Foundation

/// A queue name with `*` wildcards (`tenant-*`): the queues a pattern queue admits at run time. `*` stands
/// for any run of characters, none included; every other character stands for itself.
public struct QueuePattern: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    private let parts: [Substring]

    /// Nil when `text` has no `*`: a plain queue name.
    public init?(_ text: String) {
        guard text.contains("*") else { return nil }
        self.text = text
        self.parts = text.split(separator: "*", omittingEmptySubsequences: false)
    }

    public var description: String { text }

    /// What every matching name begins with: the text before the first `*`.
    public var literalPrefix: String { String(parts[0]) }

    /// Whether `name` is one of the queues the pattern admits.
    public func matches(_ name: String) -> Bool {
        var rest = Substring(name)
        guard rest.hasPrefix(parts[0]) else { return false }
        rest = rest.dropFirst(parts[0].count)
        let last = parts[parts.count - 1]
        for part in parts.dropFirst().dropLast() where !part.isEmpty {
            guard let found = rest.range(of: part) else { return false }
            rest = rest[found.upperBound...]
        }
        return rest.count >= last.count && rest.hasSuffix(last)
    }
}

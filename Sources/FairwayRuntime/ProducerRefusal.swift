/// Why a producer refused jobs before enqueueing any: they would have gone where no consumer takes them.
/// The text names what is wrong, what is known, and the nearest known name.
public enum ProducerRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// No consumer declared the queue (in the SQLite file, or on the broker).
    case undeclaredQueue(queue: String, in: String, known: [String])
    /// The consumers of the queue have no handler for the job type.
    case unknownJobType(type: String, queue: String, known: [String])
    /// The SQLite file does not exist (a typo in the path would otherwise create a new, empty one).
    case missingFile(path: String)
    /// The SQLite file exists but no consumer has declared its queues in it yet.
    case nothingDeclared(path: String)

    public var description: String {
        switch self {
        case .undeclaredQueue(let queue, let place, let known):
            var text = "queue '\(queue)' is not served by any consumer of \(place)"
            if let near = Self.nearest(queue, in: known) { text += "; did you mean '\(near)'?" }
            if !known.isEmpty { text += " Known queues: \(Self.list(known))." }
            return text
        case .unknownJobType(let type, let queue, let known):
            var text = "job type '\(type)' has no handler in the consumers of queue '\(queue)'"
            if let near = Self.nearest(type, in: known) { text += "; did you mean '\(near)'?" }
            if !known.isEmpty { text += " Known types: \(Self.list(known))." }
            return text
        case .missingFile(let path):
            return "no queue file at \(path); create it on purpose if that is meant"
                + " (fairway enqueue --create; in Swift, SQLiteJobProducer(path:create: true))"
        case .nothingDeclared(let path):
            return "no consumer has declared its queues in \(path) yet: start `fairway run` on it first, or"
                + " allow any queue on purpose (fairway enqueue --any-queue; in Swift,"
                + " ProducerChecks(allowUndeclaredQueues: true))"
        }
    }

    private static func list(_ names: [String]) -> String {
        let shown = names.prefix(20).joined(separator: ", ")
        return names.count > 20 ? shown + " and \(names.count - 20) more" : shown
    }

    /// The known name closest to `name` by edit distance, when it is close enough to be a typo.
    static func nearest(_ name: String, in known: [String]) -> String? {
        let target = Array(name.unicodeScalars)
        var best: (name: String, distance: Int)?
        for candidate in known where candidate != name {
            let distance = editDistance(target, Array(candidate.unicodeScalars))
            if distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        guard let best, best.distance <= max(2, target.count / 3) else { return nil }
        return best.name
    }

    /// Levenshtein distance, in one row of memory.
    static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var diagonal = row[0]
            row[0] = i
            for j in 1...b.count {
                let above = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1))
                diagonal = above
            }
        }
        return row[b.count]
    }
}

/// What a producer checks before it enqueues. The defaults refuse what would otherwise wait forever; each
/// check can be turned off on purpose.
public struct ProducerChecks: Sendable, Hashable {
    /// Accept a queue no consumer has declared (it will wait until one does).
    public var allowUndeclaredQueues: Bool
    /// Accept a job type the queue's consumers have no handler for (say, deployed before them).
    public var allowUnknownJobTypes: Bool

    public init(allowUndeclaredQueues: Bool = false, allowUnknownJobTypes: Bool = false) {
        self.allowUndeclaredQueues = allowUndeclaredQueues
        self.allowUnknownJobTypes = allowUnknownJobTypes
    }
}

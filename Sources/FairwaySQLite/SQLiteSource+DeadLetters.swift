import FairwayRuntime
import NIOConcurrencyHelpers

/// The source's dead letters for the dashboard and the admin API, through a connection of their own so
/// that an operator's bulk requeue never waits behind, or holds up, the store thread's claims.
extension SQLiteSource: DeadLetterInspecting {
    private func deadLetterFile() throws -> SQLiteQueue {
        try deadLetterQueue.withLockedValue { queue in
            if let queue { return queue }
            let opened = try SQLiteQueue(path: path, create: false)
            queue = opened
            return opened
        }
    }

    public func deadLetters(matching filter: DeadLetterFilter, limit: Int, offset: Int) throws -> [DeadLetterRecord] {
        try deadLetterFile().deadLetters(matching: filter, limit: limit, offset: offset)
    }

    public func deadLetterGroups(matching filter: DeadLetterFilter) throws -> [DeadLetterGroup] {
        try deadLetterFile().deadLetterGroups(matching: filter)
    }

    public func requeueDeadLetters(matching filter: DeadLetterFilter) throws -> Int {
        try deadLetterFile().requeueDeadLetters(matching: filter)
    }

    public func deleteDeadLetters(matching filter: DeadLetterFilter) throws -> Int {
        try deadLetterFile().deleteDeadLetters(matching: filter)
    }
}

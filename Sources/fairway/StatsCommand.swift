import ArgumentParser
import FairwaySQLite
import Foundation

/// `fairway stats`: counts per queue from the queue file.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show ready, delayed, leased and dead jobs per queue, with totals and the oldest ready job's age."
    )

    @Option(help: "The queue file (SQLite).")
    var db: String

    @Flag(
        help:
            "Print one JSON object: {\"queues\": {name: {ready, delayed, leased, dead, completed, failed, oldestAgeSeconds}}}."
    )
    var json = false

    func run() throws {
        let stats = try openQueueFile(db) { try $0.stats() }
        if json {
            struct Output: Encodable { var queues: [String: QueueFileStats] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(Output(queues: stats)), as: UTF8.self))
            return
        }
        let header = ["queue", "ready", "delayed", "leased", "dead", "completed", "failed", "oldest"]
        var rows = [header]
        for (name, queue) in stats.sorted(by: { $0.key < $1.key }) {
            rows.append([
                name, "\(queue.ready)", "\(queue.delayed)", "\(queue.leased)", "\(queue.dead)", "\(queue.completed)",
                "\(queue.failed)", String(format: "%.1fs", queue.oldestAgeSeconds),
            ])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            print(
                row.enumerated().map { column, cell in
                    column == 0
                        ? cell.padding(toLength: widths[0], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[column] - cell.count) + cell
                }.joined(separator: "  ")
            )
        }
    }
}

/// `fairway dlq list|requeue|purge`.
struct DeadLetterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "List, requeue or purge dead letters.",
        subcommands: [List.self, Requeue.self, Purge.self]
    )

    struct Selection: ParsableArguments {
        @Option(help: "The queue file (SQLite).")
        var db: String

        @Option(help: "Only this queue's dead letters.")
        var queue: String?

        @Option(name: .customLong("id"), help: "Only these dead letters (repeatable).")
        var ids: [Int64] = []

        @Flag(help: "Print JSON.")
        var json = false
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters, oldest first.")
        @OptionGroup var selection: Selection
        @Option(help: "At most this many.")
        var limit: Int = 1000

        func run() throws {
            var letters = try openQueueFile(selection.db) { try $0.deadLetters(queue: selection.queue, limit: limit) }
            if !selection.ids.isEmpty { letters = letters.filter { selection.ids.contains($0.id) } }
            if selection.json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(letters), as: UTF8.self))
                return
            }
            for letter in letters {
                print(
                    "\(letter.id)\t\(letter.queue)\t\(letter.type)\tattempts=\(letter.attempts)\t\(letter.reason)\t\(letter.payload)"
                )
            }
            if letters.isEmpty { print("no dead letters") }
        }
    }

    struct Requeue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put dead letters back on their queues, attempts reset.")
        @OptionGroup var selection: Selection

        func run() throws {
            let count = try openQueueFile(selection.db) {
                try $0.requeueDeadLetters(queue: selection.queue, ids: selection.ids.isEmpty ? nil : selection.ids)
            }
            print(selection.json ? "{\"requeued\":\(count)}" : "requeued \(count) dead letter\(count == 1 ? "" : "s")")
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete dead letters for good.")
        @OptionGroup var selection: Selection

        func run() throws {
            let count = try openQueueFile(selection.db) {
                try $0.purgeDeadLetters(queue: selection.queue, ids: selection.ids.isEmpty ? nil : selection.ids)
            }
            print(selection.json ? "{\"purged\":\(count)}" : "purged \(count) dead letter\(count == 1 ? "" : "s")")
        }
    }
}

/// Opens an existing queue file for a command; a missing or foreign file ends the command with exit code 2.
func openQueueFile<T>(_ path: String, _ body: (SQLiteQueue) throws -> T) throws -> T {
    do {
        return try body(try SQLiteQueue(path: path, create: false))
    } catch let error as QueueFileError {
        printError("fairway: \(error)")
        throw ExitCode(2)
    } catch let error as SQLiteError {
        printError("fairway: \(error)")
        throw ExitCode(1)
    }
}

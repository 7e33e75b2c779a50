import FairwayRuntime
import Foundation
import Testing

@testable import FairwaySQLite

@Suite("Queue file")
struct QueueFileTests {
    @Test("a new file is created in WAL mode with synchronous=NORMAL, and marked as Fairway's")
    func createsFile() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        _ = try SQLiteQueue(path: path)
        let connection = try QueueFile.open(path: path, create: false)
        #expect(try connection.query("PRAGMA journal_mode") { $0.text(0) }.first == "wal")
        #expect(try connection.query("PRAGMA synchronous") { $0.int(0) }.first == 1)
        #expect(try connection.query("PRAGMA application_id") { $0.int64(0) }.first == QueueFile.applicationID)
    }

    @Test("a file that is not SQLite is refused and left exactly as it was")
    func refusesNonSQLite() throws {
        let folder = TemporaryFolder()
        let path = folder.path("notes.txt")
        let content = Data("these are my notes, not a database\n".utf8)
        try content.write(to: URL(fileURLWithPath: path))
        #expect(throws: QueueFileError.notSQLite(path: path)) { try SQLiteQueue(path: path) }
        #expect(throws: QueueFileError.notSQLite(path: path)) { try SQLiteSource(path: path) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == content)
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
    }

    @Test("a SQLite file of another program is refused and left exactly as it was")
    func refusesForeignSQLite() throws {
        let folder = TemporaryFolder()
        let path = folder.path("app.db")
        try sql(path, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('ada');")
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            _ = try SQLiteQueue(path: path)
            Issue.record("a foreign database was accepted")
        } catch let error as QueueFileError {
            #expect(error.description.contains(path))
            #expect(error.description.contains("not a Fairway queue file"))
            #expect(error.description.contains("users"))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try sqlInt(path, "PRAGMA application_id") == 0)
    }

    @Test("a missing file is refused when it may not be created")
    func missingFile() {
        #expect(throws: QueueFileError.missing(path: "/no/such/q.db")) {
            try SQLiteQueue(path: "/no/such/q.db", create: false)
        }
    }

    @Test("an invalid payload is refused with the reason and nothing is written")
    func invalidPayload() throws {
        let folder = TemporaryFolder()
        let file = try SQLiteQueue(path: folder.path("q.db"))
        #expect(throws: EnqueueError(index: nil, message: #"payload is not valid JSON: {"ms": "#)) {
            try file.enqueue(NewJob(queue: "q", type: "sleep", payload: Array(#"{"ms": "#.utf8)))
        }
        let batch = [
            NewJob(queue: "q", type: "noop"),
            NewJob(queue: "q", type: "noop", payload: Array("nope".utf8)),
        ]
        do {
            try file.enqueue(contentsOf: batch)
            Issue.record("an invalid batch was accepted")
        } catch let error as EnqueueError {
            #expect(error.index == 1)
            #expect(error.description.hasPrefix("job 2: payload is not valid JSON"))
        }
        #expect(throws: EnqueueError.self) { try file.enqueue(NewJob(queue: "", type: "noop")) }
        #expect(throws: EnqueueError.self) { try file.enqueue(NewJob(queue: "q", type: "")) }
        #expect(try file.stats().isEmpty, "nothing may be written by a refused enqueue")
    }

    @Test("a full database gives an error naming the file, and loses nothing already written")
    func fullDatabase() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let file = try SQLiteQueue(path: path)
        try file.enqueue(contentsOf: (0..<10).map { _ in NewJob(queue: "q", type: "noop") })
        file.limitPages(to: try file.pageCount() + 2)
        var failure: (any Error)?
        do {
            for _ in 0..<100 {
                try file.enqueue(
                    contentsOf: (0..<200).map { _ in
                        NewJob(queue: "q", type: "noop", payload: Array(repeating: UInt8(ascii: "1"), count: 200))
                    })
            }
        } catch {
            failure = error
        }
        let error = try #require(failure as? SQLiteError)
        #expect(error.isFull)
        #expect(error.description.contains(path))
        let ready = try file.stats()["q"]?.ready ?? 0
        #expect(ready >= 10)
        #expect((ready - 10) % 200 == 0, "a failed batch is written whole or not at all")
    }

    @Test("a queue at its backlog limit refuses whole batches with 'queue full', and other queues are unaffected")
    func backlogLimit() throws {
        let folder = TemporaryFolder()
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.setBacklogLimits(["capped": BacklogLimit(maxBacklog: 5, retryAfter: .milliseconds(1500))])
        #expect(try file.backlogLimits()["capped"]?.maxBacklog == 5)
        try file.enqueue(contentsOf: Array(repeating: NewJob(queue: "capped", type: "noop"), count: 4))
        do {
            try file.enqueue(contentsOf: Array(repeating: NewJob(queue: "capped", type: "noop"), count: 2))
            Issue.record("a batch past the limit was accepted")
        } catch let error as QueueFullError {
            #expect(error.backlog == 4 && error.adding == 2 && error.limit.maxBacklog == 5)
            #expect(
                error.description
                    == "queue 'capped' is full (4 jobs waiting, limit 5, 2 more asked for), retry after 2 s")
        }
        #expect(try file.stats()["capped"]?.ready == 4, "a refused batch writes nothing")
        try file.enqueue(NewJob(queue: "capped", type: "noop"))
        #expect(throws: QueueFullError.self) { try file.enqueue(NewJob(queue: "capped", type: "noop")) }
        // A mixed batch is refused whole when any of its queues is full.
        #expect(throws: QueueFullError.self) {
            try file.enqueue(contentsOf: [NewJob(queue: "open", type: "noop"), NewJob(queue: "capped", type: "noop")])
        }
        #expect(try file.stats()["open"] == nil)
        try file.enqueue(contentsOf: Array(repeating: NewJob(queue: "open", type: "noop"), count: 100))
        // Delayed jobs count too: they are waiting all the same.
        try file.setBacklogLimits(["open": BacklogLimit(maxBacklog: 101)])
        try file.enqueue(NewJob(queue: "open", type: "noop", delay: .seconds(60)))
        #expect(throws: QueueFullError.self) { try file.enqueue(NewJob(queue: "open", type: "noop")) }
        // Limits are replaced, not merged: "capped" has none now.
        try file.enqueue(NewJob(queue: "capped", type: "noop"))
    }

    @Test("a file of schema version 1 to 4 gains the tables and columns added since when opened, and keeps its jobs")
    func upgradesOlderVersions() throws {
        let deadKeys = "ALTER TABLE dead_jobs DROP COLUMN fairness_key;"
        let keys = "DROP INDEX jobs_keyed; ALTER TABLE jobs DROP COLUMN fairness_key; \(deadKeys)"
        for (version, dropped) in [
            (1, "\(keys) DROP TABLE queue_limits; DROP TABLE declared_queues;"),
            (2, "\(keys) DROP TABLE declared_queues;"),
            (3, "\(keys) ALTER TABLE declared_queues DROP COLUMN keyed;"),
            (4, deadKeys),
        ] {
            let folder = TemporaryFolder()
            let path = folder.path("q.db")
            try SQLiteQueue(path: path).enqueue(NewJob(queue: "a", type: "noop"))
            try sql(path, "\(dropped) PRAGMA user_version = \(version);")
            let reopened = try SQLiteQueue(path: path)
            #expect(try reopened.stats()["a"]?.ready == 1)
            try reopened.setBacklogLimits(["a": BacklogLimit(maxBacklog: 1)])
            #expect(throws: QueueFullError.self) { try reopened.enqueue(NewJob(queue: "a", type: "noop")) }
            #expect(try reopened.declaredQueues() == nil, "version \(version): nothing declared yet")
            try reopened.declareQueues([QueueDeclaration(queue: "a", jobTypes: ["noop"])])
            #expect(try reopened.declaredQueues()?["a"]?.jobTypes == ["noop"])
            let connection = try QueueFile.open(path: path, create: false)
            #expect(try connection.query("PRAGMA user_version") { $0.int(0) }.first == QueueFile.schemaVersion)
            try reopened.declareQueues([QueueDeclaration(queue: "a", jobTypes: ["noop"], keyed: true)])
            try reopened.enqueue(NewJob(queue: "b", type: "noop", fairnessKey: "acme"))
            #expect(try sqlInt(path, "SELECT count(*) FROM jobs WHERE fairness_key = 'acme'") == 1)
            #expect(try sqlInt(path, "SELECT count(*) FROM jobs WHERE queue = 'a' AND fairness_key = ''") == 1)
            #expect(
                try sqlInt(path, "SELECT count(*) FROM pragma_table_info('dead_jobs') WHERE name = 'fairness_key'")
                    == 1,
                "version \(version): dead letters keep their key")
        }
    }

    @Test(
        "declaring a queue keyed marks how far its jobs have keys; a later start or declaration walks only later jobs, unless the keying lapsed meanwhile"
    )
    func keysGivenMark() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let file = try SQLiteQueue(path: path)
        try file.enqueue(NewJob(queue: "mail", type: "noop"))
        let connection = try SQLiteConnection(path: path, mode: .readWrite)
        let keyed = QueueDeclaration(queue: "mail", jobTypes: ["noop"], keyed: true)
        #expect(try SQLiteQueue.keysGivenThrough(["mail"], in: connection) == 0, "nothing declared: walk everything")

        try file.declareQueues([keyed, QueueDeclaration(queue: "other", jobTypes: ["noop"])])
        #expect(try sqlInt(path, "SELECT count(*) FROM jobs WHERE fairness_key IS NULL") == 0)
        try file.enqueue(NewJob(queue: "mail", type: "noop"))
        #expect(try SQLiteQueue.keysGivenThrough(["mail"], in: connection) == 1, "the mark is the last id declared")
        #expect(try SQLiteQueue.keysGivenThrough(["mail", "other"], in: connection) == 0, "'other' was not keyed")
        #expect(try sqlInt(path, "SELECT count(*) FROM jobs WHERE fairness_key IS NULL") == 0, "written with ''")

        // Keying lapses: a job written meanwhile has no key, and the next keyed declaration must find it.
        try file.declareQueues([QueueDeclaration(queue: "mail", jobTypes: ["noop"])])
        #expect(try SQLiteQueue.keysGivenThrough(["mail"], in: connection) == 0)
        try file.enqueue(NewJob(queue: "mail", type: "noop"))
        #expect(try sqlInt(path, "SELECT count(*) FROM jobs WHERE fairness_key IS NULL") == 1)
        try file.declareQueues([keyed])
        #expect(try sqlInt(path, "SELECT count(*) FROM jobs WHERE fairness_key IS NULL") == 0)
        #expect(try SQLiteQueue.keysGivenThrough(["mail"], in: connection) == 3)
    }
}

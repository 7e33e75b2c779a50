import CSQLite
import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Logging

@testable import FairwaySQLite

/// A temporary folder for one test's queue file, removed at the end.
final class TemporaryFolder {
    let url: URL

    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("fairway-test-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

/// An engine over a SQLite source on a real file.
struct SQLiteHarness {
    let engine: Engine
    let source: SQLiteSource
    var file: SQLiteQueue { source.queue }

    init(
        path: String,
        workers: Int = 2,
        queues: [QueueDefinition],
        options: SQLiteSource.Options = SQLiteSource.Options(),
        register: (inout JobRegistry) -> Void = { _ in }
    ) throws {
        var logger = Logger(label: "fairway.test")
        logger.logLevel = .critical
        source = try SQLiteSource(path: path, options: options, logger: logger)
        source.setMaxAttempts(Dictionary(uniqueKeysWithValues: queues.map { ($0.name, $0.retry.maxAttempts) }))
        var registry = JobRegistry()
        BuiltinJobs.register(in: &registry)
        register(&registry)
        engine = try Engine(
            configuration: EngineConfiguration(workers: workers, queues: queues),
            registry: registry,
            sources: [source],
            logger: logger
        )
    }

    func stats(_ queue: String) throws -> QueueFileStats {
        try file.stats()[queue] ?? QueueFileStats()
    }
}

/// Runs SQL on the file through a connection of its own, as another program would.
func sql(_ path: String, _ statement: String) throws {
    let connection = try SQLiteConnection(path: path, mode: .readWriteCreate)
    try connection.execute(statement)
}

func sqlInt(_ path: String, _ query: String) throws -> Int {
    let connection = try SQLiteConnection(path: path, mode: .readWrite)
    return try connection.query(query) { $0.int(0) }.first ?? 0
}

func quickRetry(_ attempts: Int, backoff: Duration = .milliseconds(1)) -> RetryPolicy {
    RetryPolicy(maxAttempts: attempts, initialBackoff: backoff, maxBackoff: backoff * 4, jitter: 0)
}

import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// `fairway enqueue` goes through the library's producers: what the issue found (a queue nobody serves, a
/// mistyped file, a type nobody handles) is refused with the known names, and accepted only when asked.
@Suite("fairway enqueue checks", .serialized, .timeLimit(.minutes(5)))
struct EnqueueGuardTests {
    @Test("a mistyped file, an undeclared queue and an unknown type are refused, naming what is known")
    func refusals() throws {
        let folder = TestFolder()
        let db = folder.path("job.db")
        let missing = try FairwayProcess.run([
            "enqueue", "--db", folder.path("jbo.db"), "--queue", "gold", "--type", "noop",
        ])
        #expect(missing.status == 2 && missing.stderr.contains("no queue file at"), "\(missing.stderr)")
        #expect(missing.stderr.contains("fairway enqueue --create"), "names the flag: \(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: folder.path("jbo.db")), "the typo was not created")

        let config = try folder.config(
            """
            sources: [{ kind: sqlite, path: "job.db" }]
            queues:
              - { name: "gold", paused: true }
              - { name: "silver", paused: true }
              - { name: "scripts", paused: true, isolation: process, command: ["python3", "worker.py"] }
            """)
        let run = try RunningFairway(config: config, folder: folder.url)
        defer { run.stop() }
        #expect(run.waitUntilRunning(), "\(run.log)")

        let glod = try FairwayProcess.run(["enqueue", "--db", db, "--queue", "glod", "--type", "noop"])
        #expect(glod.status == 2, "\(glod.stderr)")
        #expect(glod.stderr.contains("queue 'glod' is not served") && glod.stderr.contains("did you mean 'gold'?"))
        #expect(glod.stderr.contains("Known queues: gold, scripts, silver."), "\(glod.stderr)")
        let type = try FairwayProcess.run(["enqueue", "--db", db, "--queue", "gold", "--type", "nop"])
        #expect(type.status == 2 && type.stderr.contains("did you mean 'noop'?"), "\(type.stderr)")

        let accepted = [
            ["--queue", "gold", "--type", "sleep", "--payload", #"{"ms": 1}"#],
            ["--queue", "scripts", "--type", "resize-image"],  // an external worker: any type
            ["--queue", "glod", "--type", "noop", "--any-queue"],
            ["--queue", "gold", "--type", "nop", "--any-type"],
        ]
        for arguments in accepted {
            let result = try FairwayProcess.run(["enqueue", "--db", db] + arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
        }
        let stats = try SQLiteQueue(path: db, create: false).stats()
        #expect(stats.keys.sorted() == ["glod", "gold", "scripts"], "only the accepted jobs were written")
    }

    @Test("--log-level debug shows each job's end; logLevel: warning in the file hides the start-up lines")
    func logLevels() throws {
        let folder = TestFolder()
        let config = try folder.config(
            """
            logLevel: warning
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "q" }]
            """)
        let debug = try RunningFairway(config: config, folder: folder.url, arguments: ["--log-level", "debug"])
        #expect(debug.waitUntilRunning(), "\(debug.log)")
        let enqueued = try FairwayProcess.run([
            "enqueue", "--db", folder.path("q.db"), "--queue", "q", "--type", "noop",
        ])
        #expect(enqueued.status == 0, "\(enqueued.stderr)")
        #expect(eventually(timeout: 20) { debug.log.contains("job succeeded") }, "\(debug.log)")
        debug.stop()

        let quiet = try RunningFairway(config: config, folder: folder.url)
        let again = try FairwayProcess.run(["enqueue", "--db", folder.path("q.db"), "--queue", "q", "--type", "noop"])
        #expect(again.status == 0, "\(again.stderr)")
        let file = try SQLiteQueue(path: folder.path("q.db"), create: false)
        #expect(try eventually(timeout: 20) { try file.stats()["q"]?.completed == 2 }, "the quiet run ran its job")
        quiet.stop()
        #expect(!quiet.log.contains("fairway running") && !quiet.log.contains("serving HTTP"), "\(quiet.log)")
    }
}

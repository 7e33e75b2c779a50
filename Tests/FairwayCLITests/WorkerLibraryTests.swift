import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// The worker libraries in other languages: their own tests in their own runner, and a worker built on
/// each under a real `fairway run`.
@Suite("Worker libraries", .serialized, .timeLimit(.minutes(3)))
struct WorkerLibraryTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// A library: its folder, how its own tests run, how a worker built on it starts, and how it words a
    /// thrown error.
    struct Library: Sendable, CustomStringConvertible {
        var name: String
        var tests: String
        var program: String
        var worker: String
        var failure: String
        var description: String { name }
    }

    static let libraries = [
        Library(
            name: "python", tests: "python3 -m unittest", program: "python3", worker: "example_worker.py",
            failure: "RuntimeError: upstream 503"),
        Library(
            name: "node", tests: "node --test test/", program: "node", worker: "example-worker.js",
            failure: "Error: upstream 503"),
        Library(
            name: "php", tests: "phpunit", program: "php", worker: "examples/example_worker.php",
            failure: "RuntimeException: upstream 503"),
    ]

    @Test("each library's own test suite passes in its own runner", arguments: libraries)
    func ownTests(_ library: Library) {
        let folder = Self.repository.appendingPathComponent("Workers/\(library.name)").path
        #expect(spawnAndWait("/bin/sh", ["-c", "cd '\(folder)' && \(library.tests) 2>&1"]) == 0)
    }

    @Test(
        "a worker built on each library under fairway run: success, failure, rejection, crash, timeout",
        arguments: libraries)
    func underFairway(_ library: Library) throws {
        let folder = TestFolder()
        let worker = Self.repository.appendingPathComponent("Workers/\(library.name)/\(library.worker)").path
        let log = folder.path("runs.log")
        let config = try folder.processQueueConfig(command: [library.program, worker])
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(
            contentsOf: TestFolder.appendJobs(queue: "py", log: log, count: 30) + [
                NewJob(queue: "py", type: "fail", payload: Array(#"{"message":"upstream 503"}"#.utf8)),
                NewJob(queue: "py", type: "reject", payload: Array(#"{"message":"no customer"}"#.utf8)),
                NewJob(queue: "py", type: "resize"),
                NewJob(queue: "py", type: "crash"),
                NewJob(queue: "py", type: "sleep", payload: Array(#"{"ms":20000}"#.utf8)),
            ])
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(
            try eventually(timeout: 40) { try file.stats()["py"].map { $0.completed == 30 && $0.dead == 5 } ?? false },
            "\(String(describing: try? file.stats()))\n\(run.log)")
        let letters = Dictionary(
            uniqueKeysWithValues: try file.deadLetters(queue: "py").map { ($0.type, $0) })
        #expect(letters["fail"]?.reason == "\(library.failure) (gave up after 2 attempts)")
        #expect(letters["reject"]?.reason == "no customer" && letters["reject"]?.attempts == 1)
        #expect(letters["resize"]?.reason.contains("unknown job type 'resize' (this worker handles: append") == true)
        #expect(letters["crash"]?.reason.contains("exited with status 3") == true, "\(letters["crash"]?.reason ?? "")")
        #expect(letters["sleep"]?.reason.contains("timed out after 2s") == true, "\(letters["sleep"]?.reason ?? "")")
        #expect(run.log.contains("failing on purpose: upstream 503"), "print() reached the log through stderr")
        #expect(run.stop().status == 0)
    }

    @Test("each library's example worker passes fairway worker check", arguments: libraries)
    func conformance(_ library: Library) throws {
        let worker = Self.repository.appendingPathComponent("Workers/\(library.name)/\(library.worker)").path
        let result = try FairwayProcess.run(["worker", "check", "--", library.program, worker])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("all 12 cases passed"), "\(result.stdout)")
        #expect(result.stdout.contains("pass  hostile payloads"), "\(result.stdout)")
        #expect(result.stdout.contains("pass  pipelining: five jobs sent at once"), "\(result.stdout)")
        #expect(result.stdout.contains("pass  pipelining: after SIGTERM no job sent behind"), "\(result.stdout)")
        #expect(!result.stdout.contains("FAIL"))
    }

    @Test("worker check: --help prints its usage, --command is taken as the issue wrote it, other options are refused")
    func checkArguments() throws {
        let help = try FairwayProcess.run(["worker", "check", "--help"])
        #expect(help.status == 0 && help.stdout.contains("USAGE: fairway worker check"), "\(help.stdout)\(help.stderr)")
        let missing = try FairwayProcess.run(["worker", "check", "--command", "fairway-no-such-worker", "--x"])
        #expect(missing.status == 1)
        let named = "worker process fairway-no-such-worker --x could not start: no program 'fairway-no-such-worker'"
        #expect(missing.stdout.contains("\(named) in PATH ("), "\(missing.stdout)")
        let unknown = try FairwayProcess.run(["worker", "check", "--cmd", "php", "worker.php"])
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("unknown option '--cmd'"), "\(unknown.stderr)")
    }

    @Test("the check fails a worker that misses cases, naming each, and one that never says hello")
    func conformanceFailures() throws {
        // The bare example (not a library) has no `reject` or `echo-size` and no SIGTERM exit.
        let bare = Self.repository.appendingPathComponent("docs/examples/python_worker.py").path
        let partial = try FairwayProcess.run(["worker", "check", "--", "python3", bare])
        #expect(partial.status == 1)
        #expect(partial.stdout.contains("FAIL  permanent failure"), "\(partial.stdout)")
        #expect(partial.stdout.contains("FAIL  a large body"), "\(partial.stdout)")
        #expect(partial.stdout.contains("pass  success"), "\(partial.stdout)")
        #expect(partial.stdout.contains("cases failed"))
        #expect(
            partial.stdout.contains("pipelining (several jobs at once) — skipped, not offered"), "\(partial.stdout)")
        // A worker that goes on to the jobs sent behind one stopped by SIGTERM.
        let folder = TestFolder()
        let eager = folder.path("eager_worker.py")
        try """
        import sys
        sys.path.insert(0, "\(Self.repository.appendingPathComponent("Workers/python").path)")
        import example_worker
        from fairway_worker import Worker

        class Eager(Worker):
            def _run_one(self, *job):
                outcome, reason, _ = super()._run_one(*job)
                return outcome, reason, False

        worker = Eager()
        worker._handlers = example_worker.worker._handlers
        sys.exit(worker.run())
        """.write(toFile: eager, atomically: true, encoding: .utf8)
        let careless = try FairwayProcess.run(["worker", "check", "--", "python3", eager])
        #expect(careless.status == 1)
        #expect(
            careless.stdout.contains("FAIL  pipelining: after SIGTERM no job sent behind the running one starts"),
            "\(careless.stdout)")
        #expect(careless.stdout.contains("it started a job sent behind the stopped one"), "\(careless.stdout)")
        let silent = try FairwayProcess.run(["worker", "check", "--", "/bin/sleep", "60"])
        #expect(silent.status == 1)
        #expect(silent.stdout.contains("FAIL  hello: protocol 1 within 10 s"), "\(silent.stdout)")
    }
}

import FairwayProcessWorkers
import FairwayRuntime
import Foundation
import Testing

/// Worker processes as the supervisor sees them, with the real `fairway` binary (and other programs) as
/// the worker.
@Suite("worker processes")
struct WorkerProcessTests {
    static var fairway: [String] { [FairwayProcess.executable.path] }

    /// A pipe, read end first; the test closes both ends with ``closePair(_:)``.
    static func pipePair() throws -> [Int32] {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        return fds
    }

    static func closePair(_ fds: [Int32]) {
        close(fds[0])
        close(fds[1])
    }

    static func job(_ type: String, id: String = UUID().uuidString) -> WorkerMessage {
        var job = WorkerMessage(kind: .job)
        job.id = id
        job.queue = "q"
        job.jobType = type
        job.attempt = 1
        job.maxAttempts = 1
        job.timeoutSeconds = 30
        return job
    }

    /// The pid of the worker that ran a job: `append` writes it after the job id.
    static func runAppend(_ pool: WorkerProcessPool, _ path: String, _ line: String) -> WorkerRunResult {
        pool.run(job("append"), payload: Array(#"{"path":"\#(path)","line":"\#(line)"}"#.utf8)) { _ in }
    }

    @Test("a message survives the trip: header fields and a binary body")
    func framing() throws {
        let fds = try Self.pipePair()
        defer { Self.closePair(fds) }
        let channel = WorkerChannel(input: fds[0], output: fds[1])
        var sent = Self.job("resize", id: "42")
        sent.reason = "ünïcode ✓"
        let body: [UInt8] = [0, 255, 10, 13] + Array("{\"ms\": 1}".utf8)
        try channel.send(sent, body: body)
        try channel.send(.result(id: "42", outcome: .failure, reason: "boom"))
        let (first, firstBody) = try channel.receive()
        #expect(first == sent)
        #expect(firstBody == body)
        let (second, secondBody) = try channel.receive()
        #expect(second.outcome == .failure && second.reason == "boom" && second.id == "42")
        #expect(secondBody.isEmpty)
    }

    /// Writes `header` as one frame with an empty body into a pipe and reads it back through a channel.
    static func decode(_ header: String) throws -> WorkerMessage {
        let fds = try Self.pipePair()
        defer { Self.closePair(fds) }
        let bytes = Array(header.utf8)
        let length = UInt32(bytes.count)
        let frame =
            [UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff)]
            + bytes + [0, 0, 0, 0]
        #expect(write(fds[1], frame, frame.count) == frame.count)
        return try WorkerChannel(input: fds[0], output: fds[1]).receive().0
    }

    @Test("headers as other JSON writers write them: escapes, surrogate pairs, spacing, nulls, unknown fields")
    func foreignHeaders() throws {
        let python = try Self.decode(
            #"{ "kind" : "result", "id": "7", "outcome": "failure", "reason": "caf\u00e9 \ud83d\ude00 \"q\"\n\\", "extra": {"a": [1, "}"], "b": null}, "flag": true }"#
        )
        #expect(python.kind == .result && python.id == "7" && python.outcome == .failure)
        #expect(python.reason == "café 😀 \"q\"\n\\")
        let hello = try Self.decode(#"{"kind":"hello","protocol":1,"pid":4242,"reason":null}"#)
        #expect(hello == .hello(pid: 4242))
        var job = Self.job("render", id: "tab\tquote\"back\\slash")
        job.timeoutSeconds = 0.25
        job.reason = "\u{1}control"
        let encoded = try JSONEncoder().encode(job)
        #expect(try Self.decode(String(decoding: encoded, as: UTF8.self)) == job)

        // And what the channel writes is JSON any parser reads.
        let fds = try Self.pipePair()
        defer { Self.closePair(fds) }
        try WorkerChannel(input: fds[0], output: fds[1]).send(job)
        var raw = [UInt8](repeating: 0, count: 4096)
        let count = read(fds[0], &raw, raw.count)
        let length = Int(raw[0]) << 24 | Int(raw[1]) << 16 | Int(raw[2]) << 8 | Int(raw[3])
        #expect(count == 4 + length + 4)
        #expect(try JSONDecoder().decode(WorkerMessage.self, from: Data(raw[4..<(4 + length)])) == job)
    }

    @Test(
        "a header with a wrong type, no kind or broken JSON is a protocol error naming what is wrong",
        arguments: [
            (#"{"kind":"result","attempt":"one"}"#, "'attempt' must be a whole number"),
            (#"{"kind":"result","attempt":1.5}"#, "'attempt' must be a whole number"),
            (#"{"id":"7"}"#, "without a kind"),
            (#"{"kind":"goodbye"}"#, "unknown kind 'goodbye'"),
            (#"{"kind":"result","outcome":"maybe"}"#, "unknown outcome 'maybe'"),
            (#"{"kind":"result""#, "expected"),
            (#"{"kind":"result"} trailing"#, "text after"),
            (#"{"kind":"res\x"}"#, "invalid escape"),
        ])
    func badHeaders(header: String, problem: String) throws {
        do {
            _ = try Self.decode(header)
            Issue.record("accepted \(header)")
        } catch let error as WorkerProtocolError {
            #expect("\(error)".contains(problem), "\(error)")
        }
    }

    @Test("a header longer than the limit is a protocol error, not an allocation")
    func oversizeHeader() throws {
        let fds = try Self.pipePair()
        defer { Self.closePair(fds) }
        let length: [UInt8] = [0x7f, 0xff, 0xff, 0xff]
        #expect(write(fds[1], length, 4) == 4)
        let channel = WorkerChannel(input: fds[0], output: fds[1])
        #expect(throws: WorkerProtocolError.self) { try channel.receive() }
    }

    @Test("workers are reused across jobs and recycled after recycleAfterJobs")
    func reuseAndRecycle() throws {
        let folder = TestFolder()
        let path = folder.path("runs.log")
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: Self.fairway, recycleAfterJobs: 3))
        defer { pool.shutdown() }
        for index in 0..<7 {
            #expect(Self.runAppend(pool, path, "job-\(index)") == .finished(.success, reason: nil))
        }
        #expect(pool.counts.started == 3, "7 jobs at 3 per worker: 3 workers")
        #expect(pool.counts.recycled == 2)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 7)
    }

    @Test("a worker above its memory limit after a job is replaced")
    func recycleOnMemory() throws {
        let folder = TestFolder()
        let path = folder.path("runs.log")
        let pool = WorkerProcessPool(
            settings: ProcessWorkerSettings(command: Self.fairway, recycleAboveMemoryBytes: 1 << 20))
        defer { pool.shutdown() }
        for index in 0..<3 {
            #expect(Self.runAppend(pool, path, "job-\(index)") == .finished(.success, reason: nil))
        }
        #expect(pool.counts.started == 3, "every worker uses more than 1 MiB, so each runs one job")
        #expect(pool.counts.recycled == 3)
    }

    @Test(
        "a worker that traps, segfaults, is killed or exits mid-job fails that job only, and is replaced",
        arguments: [
            ("trap", "signal 4"), ("segfault", "signal 11"), ("kill", "signal 9"), ("exit", "exited with status 3"),
        ])
    func crashes(how: String, expected: String) throws {
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: Self.fairway))
        defer { pool.shutdown() }
        #expect(pool.run(Self.job("noop"), payload: []) { _ in } == .finished(.success, reason: nil))
        let result = pool.run(Self.job("crash"), payload: Array(#"{"how":"\#(how)"}"#.utf8)) { _ in }
        guard case .crashed(let reason) = result else {
            Issue.record("expected a crash, got \(result)")
            return
        }
        #expect(reason.contains(expected), "\(reason)")
        #expect(pool.run(Self.job("noop"), payload: []) { _ in } == .finished(.success, reason: nil))
        #expect(pool.counts.started == 2 && pool.counts.crashed == 1)
    }

    @Test("an idle worker killed from outside costs the next job nothing: a new worker takes it")
    func idleWorkerDied() throws {
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: Self.fairway))
        defer { pool.shutdown() }
        #expect(pool.run(Self.job("noop"), payload: []) { _ in } == .finished(.success, reason: nil))
        let idle = try #require(pool.idleProcessIDs.first)
        #expect(kill(idle, SIGKILL) == 0)
        #expect(
            waitFor(timeout: 5) {
                (try? String(contentsOfFile: "/proc/\(idle)/stat", encoding: .utf8))?.contains(") Z") != false
            })
        #expect(pool.run(Self.job("noop"), payload: []) { _ in } == .finished(.success, reason: nil))
        #expect(pool.counts.started == 2 && pool.counts.crashed == 0 && pool.counts.recycled == 1)
    }

    @Test("a failing, an unknown and an undecodable job are results, not crashes")
    func failures() throws {
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: Self.fairway))
        defer { pool.shutdown() }
        let failed = pool.run(Self.job("fail"), payload: Array(#"{"message":"no disk"}"#.utf8)) { _ in }
        #expect(failed == .finished(.failure, reason: "no disk"))
        guard case .finished(.rejected, let unknown?) = pool.run(Self.job("nope"), payload: [], started: { _ in })
        else {
            Issue.record("an unknown type should be rejected")
            return
        }
        #expect(unknown.contains("nope"))
        guard
            case .finished(.rejected, let bad?) = pool.run(
                Self.job("sleep"), payload: Array("{".utf8), started: { _ in })
        else {
            Issue.record("an undecodable payload should be rejected")
            return
        }
        #expect(bad.contains("not valid JSON"))
        #expect(pool.counts.started == 1 && pool.counts.crashed == 0)
    }

    @Test("cancel asks the worker to stop and kills it after the grace")
    func cancelKillsAfterGrace() throws {
        let pool = WorkerProcessPool(
            settings: ProcessWorkerSettings(command: Self.fairway, killGrace: .milliseconds(300)))
        defer { pool.shutdown() }
        let began = Date()
        // `sleep` ignores cancellation on purpose: only the kill ends it.
        let result = pool.run(Self.job("sleep"), payload: Array(#"{"ms":20000}"#.utf8)) { cancel in
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { cancel() }
        }
        let took = Date().timeIntervalSince(began)
        guard case .crashed(let reason) = result else {
            Issue.record("expected the worker to be killed, got \(result)")
            return
        }
        #expect(reason.contains("signal 9"), "\(reason)")
        #expect(took > 0.45 && took < 3, "cancelled at 0.2 s, killed 0.3 s later: took \(took) s")
    }

    @Test("a command that is missing, or is not a Fairway worker, is refused with a reason naming it")
    func badCommands() throws {
        let missing = WorkerProcessPool(settings: ProcessWorkerSettings(command: ["/nonexistent/worker", "--x"]))
        guard case .notStarted(let reason) = missing.run(Self.job("noop"), payload: [], started: { _ in }) else {
            Issue.record("a missing program cannot start")
            return
        }
        #expect(reason.contains("/nonexistent/worker") && reason.contains("status 127"), "\(reason)")

        let chatty = WorkerProcessPool(settings: ProcessWorkerSettings(command: ["/bin/echo", "hello there"]))
        guard case .notStarted(let garbage) = chatty.run(Self.job("noop"), payload: [], started: { _ in }) else {
            Issue.record("a program that does not speak the protocol cannot start")
            return
        }
        #expect(garbage.contains("/bin/echo"), "\(garbage)")

        let silent = WorkerProcessPool(
            settings: ProcessWorkerSettings(command: ["/bin/sleep", "30"]), startTimeout: .milliseconds(300))
        guard case .notStarted(let quiet) = silent.run(Self.job("noop"), payload: [], started: { _ in }) else {
            Issue.record("a program that never says hello cannot start")
            return
        }
        #expect(quiet.contains("no hello"), "\(quiet)")
    }
}

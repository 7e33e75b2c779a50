import FairwayProcessWorkers
import FairwayRuntime
import FairwayTestSupport
import Foundation
import NIOConcurrencyHelpers
import Testing

/// Worker processes as the supervisor sees them, with the real `fairway` binary (and other programs) as
/// the worker.
@Suite("worker processes")
struct WorkerProcessTests {
    static var fairway: [String] { [FairwayProcess.executable.path] }

    static func job(_ type: String, id: String = UUID().uuidString) -> WorkerMessage {
        .job(id: id, queue: "q", jobType: type, attempt: 1, maxAttempts: 1, timeoutSeconds: 30)
    }

    /// The pid of the worker that ran a job: `append` writes it after the job id.
    static func runAppend(_ pool: WorkerProcessPool, _ path: String, _ line: String) -> WorkerRunResult {
        pool.run(job("append"), payload: Array(#"{"path":"\#(path)","line":"\#(line)"}"#.utf8)) { _ in }
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

    @Test("a worker outlives the thread that started it: the pool's workers serve every thread")
    func workerOutlivesItsStartingThread() throws {
        let folder = TestFolder()
        let path = folder.path("runs.log")
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: Self.fairway))
        defer { pool.shutdown() }
        // The engine's threads come and go (a replacement for a hung job, one too many after it); the kernel's
        // parent-death signal follows the thread that forked a child, not the process, and once killed the
        // idle worker of a thread that had ended, charging the next job a crash "from outside".
        let first = Shared<WorkerRunResult?>(nil)
        let thread = Thread { first.update { $0 = Self.runAppend(pool, path, "on-a-thread") } }
        thread.start()
        #expect(eventually { first.read() != nil })
        #expect(first.read() == .finished(.success, reason: nil))
        Thread.sleep(forTimeInterval: 0.3)  // the thread has ended by now, and a signal would have landed
        #expect(Self.runAppend(pool, path, "after-it") == .finished(.success, reason: nil))
        #expect(pool.counts.started == 1, "the same worker ran both jobs")
        #expect(pool.counts.crashed == 0 && pool.counts.recycled == 0)
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

    @Test("a pipelined worker is sent jobs ahead, answers in order, and is still checked against its memory limit")
    func pipelinedSession() throws {
        let pool = WorkerProcessPool(
            settings: ProcessWorkerSettings(command: Self.fairway, recycleAboveMemoryBytes: 1 << 20, pipelineDepth: 4))
        defer { pool.shutdown() }
        var sent = 1
        var ended: [WorkerRunResult] = []
        pool.run(
            Self.job("noop", id: "j-0"), payload: [],
            more: { room in
                var jobs: [(WorkerMessage, [UInt8])] = []
                while jobs.count < room, sent < 10 {
                    sent += 1
                    jobs.append((Self.job(sent == 5 ? "fail" : "noop", id: "j-\(sent - 1)"), []))
                }
                return jobs
            },
            ended: { ended.append(contentsOf: $0) }, started: { _ in })
        #expect(ended.count == 10, "every job sent was answered")
        #expect(ended[4] == .finished(.failure, reason: "fail job failed on purpose"), "results in the order sent")
        #expect(ended.enumerated().allSatisfy { $0.offset == 4 || $0.element == .finished(.success, reason: nil) })
        #expect(pool.counts.sentAhead == 9)
        #expect(pool.counts.started == 1)
        #expect(pool.counts.recycled == 1, "ten jobs at once still get the memory check after them")
    }

    @Test(
        "a worker whose pipeline never runs out is sent no more once due for recycling, and replaced",
        arguments: [(100, 0, 100...100), (0, 1 << 20, 1_024...1_024 + 8)])
    func recycledWhileBusy(afterJobs: Int, aboveBytes: Int, expectedSent: ClosedRange<Int>) throws {
        let pool = WorkerProcessPool(
            settings: ProcessWorkerSettings(
                command: Self.fairway, recycleAfterJobs: afterJobs, recycleAboveMemoryBytes: aboveBytes,
                pipelineDepth: 8))
        defer { pool.shutdown() }
        var sent = 1
        var ended = 0
        pool.run(
            Self.job("noop", id: "j-0"), payload: [],
            more: { room in
                // Always more: 5,000 jobs are waiting.
                let jobs = (0..<min(room, 5_000 - sent)).map { (Self.job("noop", id: "j-\(sent + $0)"), [UInt8]()) }
                sent += jobs.count
                return jobs
            },
            ended: { ended += $0.count }, started: { _ in })
        // After 100 jobs, or at the first look at its memory (every 1,024 jobs; every worker is above 1 MiB)
        // with a pipeline of 8 behind it.
        #expect(expectedSent.contains(sent), "jobs sent to one worker: \(sent)")
        #expect(ended == sent, "every job sent was answered")
        #expect(pool.counts.recycled == 1)
        if afterJobs > 0 {
            // Its replacement was started ahead (below), and waits idle.
            #expect(eventually { pool.counts.started == 2 && pool.counts.idle == 1 })
        } else {
            #expect(pool.counts.started == 1 && pool.counts.idle == 0, "a memory limit is not foreseen")
        }
    }

    @Test("a worker near recycleAfterJobs has its replacement started while it still works; the next job takes it")
    func replacementStartedAhead() throws {
        let pool = WorkerProcessPool(
            settings: ProcessWorkerSettings(command: Self.fairway, recycleAfterJobs: 100, pipelineDepth: 8))
        defer { pool.shutdown() }
        var sent = 1
        var startedBeforeRetiring = false
        pool.run(
            Self.job("noop", id: "j-0"), payload: [],
            more: { room in
                // Due at 100 jobs, the replacement starts once 90 are sent (all but a tenth): asked for
                // more after that, and so before the last of its 100 jobs is sent, this waits for it to be up.
                if sent >= 90, !startedBeforeRetiring {
                    startedBeforeRetiring = eventually(timeout: 10) {
                        pool.counts.started == 2 && pool.idleProcessIDs.count == 1
                    }
                }
                let jobs = (0..<min(room, 1_000 - sent)).map { (Self.job("noop", id: "j-\(sent + $0)"), [UInt8]()) }
                sent += jobs.count
                return jobs
            },
            ended: { _ in }, started: { _ in })
        #expect(sent == 100, "the first worker was sent its 100 jobs and no more")
        #expect(startedBeforeRetiring, "the replacement was up while the first worker still had jobs to run")
        let replacement = pool.idleProcessIDs
        #expect(pool.run(Self.job("noop"), payload: []) { _ in } == .finished(.success, reason: nil))
        #expect(pool.counts.started == 2, "the next job took the replacement: no worker started for it")
        #expect(pool.idleProcessIDs == replacement)
    }

    @Test("a job that needs a worker while the replacement is still starting waits for it: one start a recycle")
    func checkoutWaitsForReplacement() throws {
        let folder = TestFolder()
        let path = folder.path("runs.log")
        // One job a worker: each worker's replacement starts as its only job is sent, and the next job
        // comes at once, usually before the replacement is up.
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: Self.fairway, recycleAfterJobs: 1))
        defer { pool.shutdown() }
        for index in 0..<6 {
            #expect(Self.runAppend(pool, path, "job-\(index)") == .finished(.success, reason: nil))
        }
        #expect(pool.counts.recycled == 6)
        // Six workers ran a job each, and the sixth's replacement waits idle. A job that started a worker of
        // its own instead of waiting would leave more.
        #expect(eventually(timeout: 10) { pool.counts.started == 7 && pool.counts.idle == 1 })
        Thread.sleep(forTimeInterval: 0.2)
        #expect(pool.counts.started == 7)
        #expect(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count == 6)
    }

    @Test("a worker idle below its limit is taken before its replacement, so it reaches the limit and retires")
    func idleBeforeReplacement() throws {
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: Self.fairway, recycleAfterJobs: 10))
        defer { pool.shutdown() }
        for _ in 0..<9 {
            #expect(pool.run(Self.job("noop"), payload: []) { _ in } == .finished(.success, reason: nil))
        }
        // Its replacement started as its ninth job was sent (all but a tenth of 10), and is up.
        #expect(eventually(timeout: 10) { pool.counts.started == 2 && pool.counts.idle == 2 })
        #expect(pool.run(Self.job("noop"), payload: []) { _ in } == .finished(.success, reason: nil))
        #expect(pool.counts.recycled == 1, "the tenth job went to the first worker, which then retired")
        #expect(pool.counts.started == 2 && pool.counts.idle == 1)
    }

    @Test("a replacement still starting at shutdown is stopped when it is up, not left behind")
    func replacementAtShutdown() throws {
        let folder = TestFolder()
        let pids = folder.path("pids")
        // Each worker writes its pid before it becomes the Fairway worker.
        let command = ["/bin/sh", "-c", "echo $$ >> '\(pids)'; exec '\(Self.fairway[0])'"]
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: command, recycleAfterJobs: 1))
        #expect(pool.run(Self.job("noop"), payload: []) { _ in } == .finished(.success, reason: nil))
        pool.shutdown()
        // The first worker was retired; its replacement, started as the job was sent, is up now or soon.
        #expect(eventually(timeout: 10) { pool.counts.started == 2 })
        #expect(pool.counts.idle == 0 && pool.idleProcessIDs.isEmpty)
        let started = try String(contentsOfFile: pids, encoding: .utf8).split(separator: "\n").compactMap {
            pid_t($0)
        }
        #expect(started.count == 2)
        #expect(
            eventually(timeout: 10) { started.allSatisfy { kill($0, 0) != 0 } }, "worker processes left of \(started)")
    }

    @Test(
        "a worker that crashes in a pipeline: the jobs it finished before are results, the crash is its job's, the rest never ran"
    )
    func pipelinedCrashAttribution() throws {
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: Self.fairway, pipelineDepth: 8))
        defer { pool.shutdown() }
        // The supervisor sleeps through the first job; the three results before the crash come just before
        // the worker's end.
        var types = ["noop", "noop", "crash", "noop"]
        var ended: [WorkerRunResult] = []
        pool.run(
            Self.job("sleep", id: "first"), payload: Array(#"{"ms":300}"#.utf8),
            more: { room in
                let taken = types.prefix(room).map { (Self.job($0), [UInt8]()) }
                types.removeFirst(taken.count)
                return taken
            },
            ended: { ended.append(contentsOf: $0) }, started: { _ in })
        try #require(ended.count == 4, "\(ended)")
        #expect(ended[0..<3].allSatisfy { $0 == .finished(.success, reason: nil) }, "\(ended)")
        guard case .crashed(let reason) = ended[3] else {
            Issue.record("the crash was not charged to the job that crashed: \(ended)")
            return
        }
        #expect(reason.contains("while running the job"), "\(reason)")
        #expect(pool.counts.crashed == 1)
    }

    @Test("answers one read brings are handed over together, in the order sent, each once, the last job's alone")
    func resultsReadTogether() throws {
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: Self.fairway, pipelineDepth: 8))
        defer { pool.shutdown() }
        var sent = 0
        var batches: [[WorkerRunResult]] = []
        pool.run(
            Self.job("noop", id: "j-0"), payload: [],
            more: { room in
                // All at once, the first time: seven no-op jobs behind the first.
                guard sent == 0 else { return [] }
                sent = min(room, 7)
                return (1...sent).map { (Self.job($0 == 4 ? "fail" : "noop", id: "j-\($0)"), []) }
            },
            ended: { results in
                batches.append(results)
                // While this caller settles, the worker answers every job behind: the next read takes them all.
                if batches.count == 1 { Thread.sleep(forTimeInterval: 0.3) }
            }, started: { _ in })
        try #require(sent == 7)
        let all = batches.flatMap { $0 }
        #expect(all.count == 8, "every job answered once: \(batches)")
        #expect(all[4] == .finished(.failure, reason: "fail job failed on purpose"), "in the order sent")
        // The first read brings one answer or more; the rest, written while the caller slept, come in the next,
        // all but the last job's: that one comes alone, after `more` was asked again, so that a pipeline with
        // jobs to spare never runs dry.
        #expect(batches.count <= 3, "the answers written while the caller was busy came in one batch: \(batches)")
        #expect(batches.contains { $0.count > 1 }, "\(batches)")
        #expect(batches.last?.count == 1, "\(batches)")
    }

    @Test("a short job's result is not held back by a long job sent behind it")
    func shortResultBeforeLongJob() throws {
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: Self.fairway, pipelineDepth: 8))
        defer { pool.shutdown() }
        var long: [(WorkerMessage, [UInt8])] = [(Self.job("sleep", id: "long"), Array(#"{"ms":1500}"#.utf8))]
        let start = ContinuousClock.now
        var endedAt: [Duration] = []
        pool.run(
            Self.job("noop", id: "short"), payload: [],
            more: { _ in long.popLast().map { [$0] } ?? [] },
            ended: { results in
                for result in results {
                    #expect(result == .finished(.success, reason: nil))
                    endedAt.append(ContinuousClock.now - start)
                }
            }, started: { _ in })
        try #require(endedAt.count == 2)
        // Seen as it ended, not when the long job ended 1.5 s later: else it would look as long as both, and
        // time out behind the long one (a worker must write each result as its job ends).
        #expect(endedAt[0] < .milliseconds(700), "the short job's result came after \(endedAt[0])")
        #expect(endedAt[1] >= .milliseconds(1500))
    }

    @Test("a Swift worker keeps its pipes from the programs its jobs start: stdin is /dev/null, stdout is stderr")
    func swiftWorkerDescriptors() throws {
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: Self.fairway)) { _, _, _ in }
        defer { pool.shutdown() }
        #expect(pool.run(Self.job("noop"), payload: []) { _ in } == .finished(.success, reason: nil))
        let pid = try #require(pool.idleProcessIDs.first)
        func target(_ fd: Int) -> String? {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")
        }
        #expect(target(0) == "/dev/null", "a child reading stdin would take the jobs sent ahead")
        #expect(target(1) != nil && target(1) == target(2), "a child writing stdout would corrupt a result")
        // The protocol's own pipes are still open in the worker, and close when it starts another program.
        let others = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap(Int.init)
            .filter { $0 > 2 && target($0)?.hasPrefix("pipe:") == true }
        #expect(others.count >= 2, "\(others)")
        for fd in others {
            let info = try String(contentsOfFile: "/proc/\(pid)/fdinfo/\(fd)", encoding: .utf8)
            let flags =
                info.split(separator: "\n").first { $0.hasPrefix("flags:") }
                .flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) } ?? 0
            #expect(flags & Int(O_CLOEXEC) != 0, "fd \(fd) (\(target(fd) ?? "?")) is inherited by children")
        }
    }

    @Test("a line a job writes to stderr is logged with that job's queue, when the next job is another queue's")
    func stderrLinesNameTheirJobsQueue() throws {
        let folder = TestFolder()
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let script = folder.path("talking_worker.py")
        // print() without buffering writes the text and the newline apart: lines come in pieces.
        try """
        import sys
        sys.path.insert(0, "\(repository.appendingPathComponent("Workers/python").path)")
        from fairway_worker import Worker

        worker = Worker()

        @worker.handler("talk")
        def talk(payload, context):
            print(f"job {context.id} of {context.queue}")

        sys.exit(worker.run())
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let lines = NIOLockedValueBox<[(queue: String?, line: String)]>([])
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: ["python3", script], pipelineDepth: 4)) {
            _, queue, line in lines.withLockedValue { $0.append((queue, line)) }
        }
        defer { pool.shutdown() }
        func job(_ index: Int) -> WorkerMessage {
            .job(
                id: "j\(index)", queue: index % 2 == 0 ? "even" : "odd", jobType: "talk", attempt: 1, maxAttempts: 1,
                timeoutSeconds: 30)
        }
        // One job at a time, the queues in turn, through one worker: every line names its own job's queue.
        let count = 300
        for index in 0..<count {
            #expect(pool.run(job(index), payload: []) { _ in } == .finished(.success, reason: nil))
        }
        #expect(eventually(timeout: 10) { lines.withLockedValue { $0.count } >= count })
        let wrong = lines.withLockedValue { lines in
            lines.filter { !$0.line.hasSuffix(" of \($0.queue ?? "-")") }
        }
        let examples = wrong.prefix(3).map { "'\($0.line)' as \($0.queue ?? "-")" }
        #expect(wrong.count == 0, "lines named another queue's job, e.g. \(examples)")
        #expect(lines.withLockedValue { $0.count } == count, "each line whole, once")

        // Sent ahead, several at once: every line still arrives whole and once (which queue names it is
        // exact only when the pipeline holds one queue's jobs; the relay's documentation says why).
        lines.withLockedValue { $0.removeAll() }
        var sent = 1
        pool.run(
            job(0), payload: [],
            more: { room in
                var jobs: [(WorkerMessage, [UInt8])] = []
                while jobs.count < room, sent < count {
                    sent += 1
                    jobs.append((job(sent - 1), []))
                }
                return jobs
            }, ended: { _ in }, started: { _ in })
        #expect(eventually(timeout: 10) { lines.withLockedValue { $0.count } >= count })
        let texts = Set(lines.withLockedValue { $0.map(\.line) })
        #expect(texts == Set((0..<count).map { "job j\($0) of \($0 % 2 == 0 ? "even" : "odd")" }))
        #expect(lines.withLockedValue { $0.count } == count)
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
        // Dead (a zombie) before the next job is sent: under load a SIGKILL can take seconds to land. Asked
        // of the kernel as the pool asks it, without reaping (a failed read of /proc counted as dead before,
        // and once let the job go to a worker still dying).
        try #require(
            eventually {
                var info = siginfo_t()
                return waitid(P_PID, id_t(idle), &info, WEXITED | WNOHANG | WNOWAIT) == 0
                    && info._sifields._sigchld.si_pid == idle
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

    @Test("a Swift worker stopped by SIGTERM ends the job it runs and starts none of the jobs sent behind it")
    func swiftWorkerStartsNothingAfterSIGTERM() throws {
        // Spoken to over its pipes directly: a pool would kill the worker itself once it answered the stopped
        // job, and so hide whether the worker would have started the next.
        let folder = TestFolder()
        let path = folder.path("behind.log")
        let worker = try ChildProcess(
            FairwayProcess.executable.path, [], environment: [WorkerProcess.environmentKey: "1"], input: .pipe,
            output: .pipe)
        let input = try #require(worker.input)
        let output = try #require(worker.output)
        func frame(_ header: String, _ body: String) -> Data {
            var data = Data()
            for part in [header, body] {
                withUnsafeBytes(of: UInt32(part.utf8.count).bigEndian) { data.append(contentsOf: $0) }
                data.append(contentsOf: Array(part.utf8))
            }
            return data
        }
        // `sleep` ignores cancellation: it runs its 600 ms and answers; the job behind it must not start.
        func header(_ id: String, _ type: String) -> String {
            #"{"kind":"job","id":"\#(id)","queue":"q","jobType":"\#(type)","attempt":1,"maxAttempts":1,"#
                + #""timeoutSeconds":30}"#
        }
        input.write(
            frame(header("running", "sleep"), #"{"ms":600}"#)
                + frame(header("behind", "append"), #"{"path":"\#(path)","line":"started"}"#))
        Thread.sleep(forTimeInterval: 0.2)
        kill(worker.pid, SIGTERM)
        // Its input ends too, so that a worker that does start the job behind exits after it instead of waiting.
        try input.close()
        let answered = output.readDataToEndOfFile()
        #expect(worker.waitUntilExit() == .exited(0))
        let text = String(decoding: answered, as: UTF8.self)
        #expect(text.contains(#""id":"running","outcome":"success""#), "\(text)")
        #expect(!text.contains(#""id":"behind""#), "\(text)")
        #expect(!FileManager.default.fileExists(atPath: path), "the job sent behind the stopped one ran")
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
        #expect(reason.hasSuffix("could not start: /nonexistent/worker: No such file or directory"), "\(reason)")
        let notInPath = WorkerProcessPool(settings: ProcessWorkerSettings(command: ["fairway-no-such-worker"]))
        guard case .notStarted(let unknown) = notInPath.run(Self.job("noop"), payload: [], started: { _ in }) else {
            Issue.record("a program found nowhere in PATH cannot start")
            return
        }
        #expect(unknown.contains("could not start: no program 'fairway-no-such-worker' in PATH ("), "\(unknown)")
        let folder = TestFolder()
        let text = folder.path("notes.txt")
        try "not a program\n".write(toFile: text, atomically: true, encoding: .utf8)
        let notExecutable = WorkerProcessPool(settings: ProcessWorkerSettings(command: [text]))
        guard case .notStarted(let refused) = notExecutable.run(Self.job("noop"), payload: [], started: { _ in })
        else {
            Issue.record("a file without execute permission cannot start")
            return
        }
        #expect(refused.hasSuffix("could not start: \(text): Permission denied"), "\(refused)")
        // Executable, but neither a binary nor a #! script: only the exec in the child finds out.
        chmod(text, 0o755)
        let notABinary = WorkerProcessPool(settings: ProcessWorkerSettings(command: [text]))
        guard case .notStarted(let failed) = notABinary.run(Self.job("noop"), payload: [], started: { _ in }) else {
            Issue.record("a text file cannot start")
            return
        }
        #expect(failed.contains("it exited with status 127 (a program could not be run"), "\(failed)")

        let chatty = WorkerProcessPool(settings: ProcessWorkerSettings(command: ["/bin/echo", "hello there"]))
        guard case .notStarted(let garbage) = chatty.run(Self.job("noop"), payload: [], started: { _ in }) else {
            Issue.record("a program that does not speak the protocol cannot start")
            return
        }
        #expect(garbage.contains("/bin/echo"), "\(garbage)")
        #expect(garbage.contains(#"(its four bytes read "hell": text written to stdout"#), "\(garbage)")
        // Alive after its text: Fairway stops it, and says so rather than describe the kill as a death.
        let talker = WorkerProcessPool(
            settings: ProcessWorkerSettings(command: ["/bin/sh", "-c", "echo starting up; exec sleep 30"]))
        guard case .notStarted(let talked) = talker.run(Self.job("noop"), payload: [], started: { _ in }) else {
            Issue.record("a program that writes text before its hello cannot start")
            return
        }
        #expect(talked.contains(#"its four bytes read "star""#) && talked.hasSuffix("; it was stopped"), "\(talked)")

        let silent = WorkerProcessPool(
            settings: ProcessWorkerSettings(command: ["/bin/sleep", "30"]), startTimeout: .milliseconds(300))
        guard case .notStarted(let quiet) = silent.run(Self.job("noop"), payload: [], started: { _ in }) else {
            Issue.record("a program that never says hello cannot start")
            return
        }
        #expect(quiet.contains("no hello"), "\(quiet)")

        // A hello that offers a pipeline of no jobs is refused, naming the field.
        let script =
            #"import json,struct,sys,time; h=json.dumps({"kind":"hello","protocol":1,"pid":1,"pipeline":0}).encode(); sys.stdout.buffer.write(struct.pack(">I",len(h))+h+struct.pack(">I",0)); sys.stdout.flush(); time.sleep(30)"#
        let zero = WorkerProcessPool(settings: ProcessWorkerSettings(command: ["/usr/bin/python3", "-c", script]))
        guard case .notStarted(let refused) = zero.run(Self.job("noop"), payload: [], started: { _ in }) else {
            Issue.record("a hello offering a pipeline of 0 is refused")
            return
        }
        #expect(refused.contains("its hello offers a pipeline of 0 jobs; it must be at least 1"), "\(refused)")
    }

    @Test("a worker whose pipe closes a moment before it exits is charged its own exit, not Fairway's kill")
    func exitAfterItsPipeCloses() throws {
        // A runtime that closes its files on the way out (PHP's exit()) ends the pipe before it has exited:
        // killed then, the job would be told "killed by signal 9 (out of memory, or killed from outside)".
        let script =
            #"import json,os,struct,sys,time; h=json.dumps({"kind":"hello","protocol":1,"pid":os.getpid()}).encode(); sys.stdout.buffer.write(struct.pack(">I",len(h))+h+struct.pack(">I",0)); sys.stdout.flush(); sys.stdin.buffer.read(4); os.close(1); time.sleep(0.2); os._exit(3)"#
        let pool = WorkerProcessPool(settings: ProcessWorkerSettings(command: ["/usr/bin/python3", "-c", script]))
        defer { pool.shutdown() }
        guard case .crashed(let reason) = pool.run(Self.job("noop"), payload: [], started: { _ in }) else {
            Issue.record("a worker that ends without a result crashed its job")
            return
        }
        #expect(reason.hasSuffix("exited with status 3 while running the job"), "\(reason)")
    }
}

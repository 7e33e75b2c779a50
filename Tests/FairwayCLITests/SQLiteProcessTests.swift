import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// `fairway run` on a SQLite queue file, as a real process: cross-process wake-up, kill -9, crashing jobs.
@Suite("fairway run on SQLite", .serialized, .timeLimit(.minutes(10)))
struct SQLiteProcessTests {
    @Test(
        "a job enqueued by another process starts promptly, and an idle process uses well under 1% of a core",
        .loadsMachine)
    func crossProcessEnqueue() throws {
        let folder = TestFolder()
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "q" }]
            """
        )
        let run = try RunningFairway(config: config, folder: folder.url)
        defer { run.stop() }
        #expect(run.waitUntilRunning(), "\(run.log)")
        let file = try SQLiteQueue(path: folder.path("q.db"), create: false)
        var delays: [Double] = []
        for round in 1...20 {
            Thread.sleep(forTimeInterval: 0.02)
            let began = Date()
            try file.enqueue(NewJob(queue: "q", type: "noop"))
            #expect(try eventually(timeout: 5) { try file.stats()["q"]?.completed == round })
            delays.append(Date().timeIntervalSince(began))
        }
        delays.sort()
        let median = delays[delays.count / 2]
        print(
            "cross-process enqueue to completion: median \(Int(median * 1000)) ms, max \(Int(delays.last! * 1000)) ms")
        #expect(median < 0.05, "median \(median) s")
        #expect(delays.last! < 0.5)

        let cpuBefore = try #require(run.cpuSeconds)
        Thread.sleep(forTimeInterval: 3)
        let cpuAfter = try #require(run.cpuSeconds)
        let share = (cpuAfter - cpuBefore) / 3
        print("idle CPU: \(share * 100)% of a core")
        #expect(share < 0.01, "idle process used \(share * 100)% of a core")
    }

    @Test("kill -9 at random moments under load, ten times: every job completes, none is lost", .loadsMachine)
    func killNineUnderLoad() throws {
        let folder = TestFolder()
        let log = folder.path("executions.log")
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            defaults: { attempts: 50, backoff: 10ms, prefetch: 4 }
            queues:
              - { name: "q-{1..4}" }
              # One queue's jobs run in worker processes: they die with their supervisor (PDEATHSIG).
              - { name: "q-4", isolation: process }
            """
        )
        let file = try SQLiteQueue(path: folder.path("q.db"))
        let total = 6000
        try file.enqueue(
            contentsOf: (0..<total).map { index in
                NewJob(
                    queue: "q-\(index % 4 + 1)", type: "append",
                    payload: Array(#"{"path":"\#(log)","line":"job-\#(index)","ms":2}"#.utf8))
            }
        )
        var kills = 0
        for _ in 0..<10 {
            let run = try RunningFairway(config: config, folder: folder.url)
            #expect(run.waitUntilRunning(), "\(run.log)")
            Thread.sleep(forTimeInterval: Double.random(in: 0.1...0.4))
            run.stop(signal: SIGKILL)
            kills += 1
        }
        let done = try file.stats().values.reduce(0) { $0 + $1.completed }
        print("kill -9: \(done) of \(total) jobs completed when the kills ended")
        #expect(done < total, "the load should still be running when the kills end")
        let last = try RunningFairway(config: config, folder: folder.url)
        #expect(last.waitUntilRunning())
        #expect(try eventually(timeout: 60) { try file.stats().values.reduce(0) { $0 + $1.completed } == total })
        let exit = last.stop()
        #expect(exit.status == 0 && !exit.bySignal)
        #expect(eventually(timeout: 5) { processes(mentioning: config).isEmpty }, "no worker process outlives its run")

        let stats = try file.stats()
        #expect(stats.values.reduce(0) { $0 + $1.dead } == 0)
        #expect(stats.values.reduce(0) { $0 + $1.ready + $1.leased + $1.delayed } == 0)
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        var runs: [String: Int] = [:]
        for line in lines {
            runs[String(line.split(separator: " ")[0]), default: 0] += 1
        }
        #expect(runs.count == total, "every job ran at least once")
        let duplicates = runs.values.reduce(0) { $0 + $1 - 1 }
        print("kill -9 ×\(kills): \(total) jobs, \(duplicates) ran twice")
        // Only jobs running (or finished but not yet committed) at a kill may run again: at most the
        // 4 queues × 4 credit held unsettled per kill.
        #expect(duplicates <= kills * 16, "\(duplicates) duplicates after \(kills) kills")
    }

    @Test("a crash job is dead-lettered after its attempts across restarts while another queue completes")
    func crashJobAcrossRestarts() throws {
        let folder = TestFolder()
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues:
              - { name: "poison", attempts: 3 }
              - { name: "steady", weight: 4 }
            """
        )
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(
            contentsOf: (0..<200).map { _ in NewJob(queue: "steady", type: "sleep", payload: Array(#"{"ms":5}"#.utf8)) }
        )
        try file.enqueue(NewJob(queue: "poison", type: "crash"))
        var crashes = 0
        var starts = 0
        while starts < 8 {
            starts += 1
            let run = try RunningFairway(config: config, folder: folder.url)
            // The crash job may take the process down before it says it is running.
            _ = run.waitUntilRunning()
            let finished = try eventually(timeout: 20) {
                if !run.process.isRunning { return true }
                let stats = try file.stats()
                return stats["poison"]?.dead == 1 && stats["steady"]?.completed == 200
            }
            #expect(finished)
            if run.process.isRunning {
                #expect(run.stop().status == 0)
                break
            }
            let exit = run.waitForExit()
            #expect(exit.bySignal, "a crash job traps: the process dies by a signal\n\(run.log)")
            crashes += 1
        }
        #expect(crashes == 3, "one crash per attempt, then the job is dead-lettered instead of run")
        let letter = try #require(try file.deadLetters(queue: "poison").first)
        #expect(letter.type == "crash")
        #expect(letter.attempts == 3, "three runs, each ended by a crash")
        #expect(letter.reason.contains("gave up after 3 attempts"))
        #expect(try file.stats()["steady"]?.completed == 200)
    }

    @Test("other programs opening and closing the file never make it lose the WAL under a running process")
    func otherProgramsOpenAndClose() throws {
        let folder = TestFolder()
        let path = folder.path("q.db")
        let file = try SQLiteQueue(path: path)
        try file.enqueue(
            contentsOf: (0..<2000).map { _ in NewJob(queue: "q", type: "sleep", payload: Array(#"{"ms":1}"#.utf8)) })
        let config = try folder.config("workers: 2\nsources: [{ kind: sqlite, path: \"q.db\" }]\nqueues: [{ name: q }]")
        let run = try RunningFairway(config: config, folder: folder.url)
        defer { run.stop() }
        #expect(run.waitUntilRunning(), "\(run.log)")
        // The sqlite3 shell opens the file, reads and closes it, as a monitoring script would. If the running
        // process had lost its locks on the file, the shell would think itself the last user, checkpoint
        // and delete the WAL, and from then on see none of the process's commits.
        func remaining() -> Int? {
            let shell = try? ChildProcess.run("/usr/bin/sqlite3", [path, "SELECT count(*) FROM jobs"])
            return shell.flatMap { Int($0.outputText.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        #expect(eventually(timeout: 60) { remaining() == 0 }, "the shell never saw the process's commits")
        #expect(FileManager.default.fileExists(atPath: path + "-wal"))
    }

    @Test("a second SIGTERM ends the drain early and still hands the running job back")
    func secondSignalEndsDrain() throws {
        let folder = TestFolder()
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(NewJob(queue: "q", type: "sleep", payload: Array(#"{"ms":5000}"#.utf8)))
        let config = try folder.config(
            "workers: 1\ndrainTimeout: 60s\nsources: [{ kind: sqlite, path: \"q.db\" }]\nqueues: [{ name: q }]"
        )
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(try eventually { try file.stats()["q"]?.leased == 1 })
        Thread.sleep(forTimeInterval: 0.2)
        let began = Date()
        kill(run.process.pid, SIGTERM)
        #expect(eventually(timeout: 5) { run.log.contains("shutting down") })
        kill(run.process.pid, SIGTERM)
        let exit = run.waitForExit(timeout: 10)
        #expect(exit.status == 0 && !exit.bySignal, "\(run.log)")
        #expect(Date().timeIntervalSince(began) < 3, "the second signal should not wait for the 5 s job")
        let stats = try #require(try file.stats()["q"])
        #expect(stats.leased == 0 && stats.ready == 1 && stats.completed == 0)
    }

    @Test("shutdown says how many jobs it released: held ones at once, running ones past the drain timeout")
    func shutdownCountsReleased() throws {
        for (drainTimeout, jobMilliseconds) in [("30s", 400), ("300ms", 5000)] {
            let folder = TestFolder()
            let file = try SQLiteQueue(path: folder.path("q.db"))
            let job = Array(#"{"ms":\#(jobMilliseconds)}"#.utf8)
            try file.enqueue(contentsOf: (0..<50).map { _ in NewJob(queue: "q", type: "sleep", payload: job) })
            let config = try folder.config(
                """
                workers: 2
                drainTimeout: \(drainTimeout)
                sources: [{ kind: sqlite, path: "q.db" }]
                queues: [{ name: q, prefetch: 10 }]
                """)
            let run = try RunningFairway(config: config, folder: folder.url, arguments: ["--log-format", "json"])
            #expect(run.waitUntilRunning(), "\(run.log)")
            #expect(try eventually { try file.stats()["q"]?.leased == 10 }, "2 running and 8 held")
            Thread.sleep(forTimeInterval: 0.1)
            #expect(run.stop().status == 0, "\(run.log)")
            let line = try #require(run.log.split(separator: "\n").first { $0.contains("drained:") }, "\(run.log)")
            let fields = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let stats = try #require(try file.stats()["q"])
            #expect(stats.leased == 0 && stats.ready + stats.completed == 50)
            #expect(fields["heldReleased"] as? String == "8", "\(line)")
            if jobMilliseconds < 1000 {
                #expect(fields["runningFinished"] as? String == "2" && fields["runningReleased"] as? String == "0")
                #expect(fields["message"] as? String == "drained: 8 jobs released to their sources")
            } else {
                #expect(fields["runningFinished"] as? String == "0" && fields["runningReleased"] as? String == "2")
                #expect(fields["message"] as? String == "drained: 10 jobs released to their sources")
                #expect(stats.completed == 0)
            }
            // Every line is one JSON object with the four fixed fields first.
            for line in run.log.split(separator: "\n") {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["time"] != nil && object?["level"] != nil && object?["message"] != nil, "\(line)")
            }
        }
    }
}

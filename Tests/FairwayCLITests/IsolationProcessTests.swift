import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// Failure isolation of `fairway run` as a real process on real SQLite files: crashes and hangs in worker
/// processes, the Python example worker, hand-back at SIGTERM, and load shedding at enqueue.
@Suite("failure isolation", .timeLimit(.minutes(10)))
struct IsolationProcessTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Seconds from `start` until the queue has completed `count` jobs in each file, polled together so that
    /// both runs see the same machine.
    static func completionSeconds(_ files: [SQLiteQueue], queues: [String], count: Int, timeout: Double = 60)
        throws -> [Double?]
    {
        let start = Date()
        var finished: [Double?] = Array(repeating: nil, count: files.count)
        while Date().timeIntervalSince(start) < timeout && finished.contains(where: { $0 == nil }) {
            for (index, file) in files.enumerated() where finished[index] == nil {
                let stats = try file.stats()
                if queues.allSatisfy({ (stats[$0]?.completed ?? 0) >= count }) {
                    finished[index] = Date().timeIntervalSince(start)
                }
            }
            Thread.sleep(forTimeInterval: 0.002)
        }
        return finished
    }

    /// `append` jobs that write "<line>-<index> ..." to `log` when they start, then block for `ms(index)`.
    static func appends(_ queue: String, _ count: Int, log: String, line: String, ms: (Int) -> Int) -> [NewJob] {
        (0..<count).map { index in
            NewJob(
                queue: queue, type: "append",
                payload: Array(#"{"path":"\#(log)","line":"\#(line)-\#(index)","ms":\#(ms(index))}"#.utf8))
        }
    }

    /// Lines in a file, 0 while it does not exist.
    static func lineCount(_ path: String) -> Int {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    static func sleeps(_ queue: String, _ count: Int, ms: Int) -> [NewJob] {
        (0..<count).map { _ in NewJob(queue: queue, type: "sleep", payload: Array(#"{"ms":\#(ms)}"#.utf8)) }
    }

    /// Processes whose parent is `pid`, from /proc.
    static func children(of pid: Int32) -> Set<Int32> {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var found: Set<Int32> = []
        for entry in entries {
            guard let child = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, Int32(fields[1]) == pid { found.insert(child) }
        }
        return found
    }

    @Test(
        "a crash job in a process queue: the process survives, the job is dead-lettered, other queues keep pace",
        .loadsMachine)
    func crashInProcessQueue() throws {
        let config = """
            workers: 3
            sources: [{ kind: sqlite, path: "q.db" }]
            queues:
              - { name: "a", maxConcurrency: 1 }
              - { name: "b", maxConcurrency: 1 }
              - { name: "iso", maxConcurrency: 1, isolation: process, attempts: 2, backoff: 0s }
            """
        let crashing = TestFolder()
        let baseline = TestFolder()
        var files: [SQLiteQueue] = []
        var runs: [RunningFairway] = []
        for folder in [crashing, baseline] {
            let file = try SQLiteQueue(path: folder.path("q.db"))
            try file.enqueue(contentsOf: Self.sleeps("a", 300, ms: 10) + Self.sleeps("b", 300, ms: 10))
            files.append(file)
        }
        try files[0].enqueue(contentsOf: (0..<40).map { _ in NewJob(queue: "iso", type: "crash") })
        for folder in [crashing, baseline] {
            runs.append(try RunningFairway(config: try folder.config(config), folder: folder.url))
        }
        for run in runs { #expect(run.waitUntilRunning(), "\(run.log)") }
        let times = try Self.completionSeconds(files, queues: ["a", "b"], count: 300)
        let withCrashes = try #require(times[0])
        let without = try #require(times[1])
        print("crash isolation: a and b took \(withCrashes) s beside 40 crashing jobs, \(without) s without")
        #expect(withCrashes <= without * 1.1, "other queues slowed by \(withCrashes / without)")
        #expect(try eventually { try files[0].stats()["iso"]?.dead == 40 })
        #expect(runs[0].process.isRunning, "the process survives its crashing jobs")
        let port = try #require(runs[0].httpPort)
        let exposition = HTTP.call("GET", port: port, "/metrics").body
        #expect(HTTP.sample(exposition, #"fairway_jobs_completed_total{queue="iso",outcome="crash"}"#) == 80)
        #expect(HTTP.sample(exposition, "fairway_worker_processes_crashed_total") == 80)
        #expect((HTTP.sample(exposition, "fairway_worker_processes_started_total") ?? 0) >= 80)
        let letters = try files[0].deadLetters(queue: "iso")
        #expect(letters.count == 40)
        #expect(letters.allSatisfy { $0.reason.contains("signal 4") && $0.reason.contains("gave up after 2 attempts") })
        for run in runs {
            let exit = run.stop()
            #expect(exit.status == 0 && !exit.bySignal, "\(run.log)")
        }
    }

    @Test(
        "a job past its timeout frees its slot at once; a worker process is killed after the grace",
        .loadsMachine, arguments: ["thread", "process"])
    func hungJob(isolation: String) throws {
        let hung = TestFolder()
        let baseline = TestFolder()
        let log = hung.path("slow.log")
        let config = """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues:
              - { name: "fast", maxConcurrency: 1 }
              - { name: "slow", maxConcurrency: 1, timeout: 1s, attempts: 1\(isolation == "process" ? ", isolation: process, killGrace: 1s" : "") }
            """
        var files: [SQLiteQueue] = []
        for folder in [hung, baseline] {
            let file = try SQLiteQueue(path: folder.path("q.db"))
            try file.enqueue(contentsOf: Self.sleeps("fast", 300, ms: 10))
            files.append(file)
        }
        try files[0].enqueue(contentsOf: Self.appends("slow", 2, log: log, line: "slow") { _ in 8000 })
        let runs = try [hung, baseline].map { try RunningFairway(config: try $0.config(config), folder: $0.url) }
        for run in runs { #expect(run.waitUntilRunning(), "\(run.log)") }

        func lines() -> Int { Self.lineCount(log) }
        #expect(eventually(timeout: 10) { lines() >= 1 })
        let firstStarted = Date()
        let firstChild = Self.children(of: runs[0].process.pid)
        #expect(isolation == "thread" || firstChild.count == 1, "one worker process runs the slow job")

        // Watch the first worker process while the fast queues are measured.
        let goneAfter = Shared<Double?>(nil)
        if isolation == "process", let child = firstChild.first {
            DispatchQueue.global().async {
                while FileManager.default.fileExists(atPath: "/proc/\(child)/stat")
                    && Date().timeIntervalSince(firstStarted) < 10
                {
                    Thread.sleep(forTimeInterval: 0.005)
                }
                goneAfter.update { $0 = Date().timeIntervalSince(firstStarted) }
            }
        }
        let times = try Self.completionSeconds(files, queues: ["fast"], count: 300)
        #expect(eventually(timeout: 10) { lines() >= 2 })
        let slowest = try #require(times[0])
        let fastest = try #require(times[1])
        print("hung \(isolation) job: fast queue took \(slowest) s beside it, \(fastest) s without")
        #expect(slowest <= fastest * 1.1, "the fast queue slowed by \(slowest / fastest)")

        let stats = try #require(try files[0].stats()["slow"])
        #expect(stats.dead >= 1)
        let letters = try files[0].deadLetters(queue: "slow")
        #expect(letters.allSatisfy { $0.reason.contains("timed out after 1s") })
        if isolation == "process" {
            #expect(eventually(timeout: 10) { goneAfter.read() != nil })
            let gone = try #require(goneAfter.read())
            print("hung process job: its worker was gone \(gone) s after the job started (timeout 1 s, grace 1 s)")
            #expect(gone > 1.5 && gone < 2.6, "killed after the timeout plus the grace: \(gone) s")
        }
        for run in runs {
            let exit = run.stop(timeout: 40)
            #expect(exit.status == 0 && !exit.bySignal, "\(run.log)")
        }
    }

    @Test("the timed-out job's slot is free at the timeout: the next job of that queue starts then", .loadsMachine)
    func slotFreeAtTimeout() throws {
        for isolation in ["thread", "process"] {
            let folder = TestFolder()
            let log = folder.path("slow.log")
            let config = try folder.config(
                """
                workers: 2
                sources: [{ kind: sqlite, path: "q.db" }]
                queues:
                  - { name: "slow", maxConcurrency: 1, timeout: 1s, attempts: 1, isolation: \(isolation)\(isolation == "process" ? ", killGrace: 3s" : "") }
                """)
            let file = try SQLiteQueue(path: folder.path("q.db"))
            try file.enqueue(contentsOf: Self.appends("slow", 2, log: log, line: "slow") { _ in 6000 })
            let run = try RunningFairway(config: config, folder: folder.url)
            #expect(run.waitUntilRunning(), "\(run.log)")
            func lines() -> Int { Self.lineCount(log) }
            #expect(eventually(timeout: 10) { lines() >= 1 })
            let first = Date()
            #expect(eventually(timeout: 10) { lines() >= 2 })
            let gap = Date().timeIntervalSince(first)
            print("\(isolation): the next job of the queue started \(gap) s after the first (timeout 1 s)")
            // The next process job needs a new worker (the timed-out one is in its 3 s grace), and its line
            // comes after that worker's start: up to 2.5 s, still far from the grace's 4 s.
            let most = isolation == "process" ? 2.5 : 1.6
            #expect(gap > 0.9 && gap < most, "\(isolation): next job after \(gap) s")
            let exit = run.stop(timeout: 40)
            #expect(exit.status == 0 && !exit.bySignal, "\(run.log)")
        }
    }

    @Test("worker commands start in the configuration file's folder, not where fairway was started")
    func workerCommandInConfigFolder() throws {
        let folder = TestFolder()
        let example = Self.repository.appendingPathComponent("docs/examples/python_worker.py").path
        try FileManager.default.copyItem(atPath: example, toPath: folder.path("worker.py"))
        try "#!/bin/sh\nexec python3 worker.py\n".write(
            toFile: folder.path("worker.sh"), atomically: true, encoding: .utf8)
        chmod(folder.path("worker.sh"), 0o755)
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues:
              - { name: "byArgument", isolation: process, command: ["python3", "worker.py"], attempts: 1 }
              - { name: "byPath", isolation: process, command: "./worker.sh", attempts: 1 }
            """)
        let log = folder.path("runs.log")
        for queue in ["byArgument", "byPath"] {
            try file.enqueue(
                contentsOf: (0..<5).map { index in
                    NewJob(
                        queue: queue, type: "append",
                        payload: Array(#"{"path":"\#(log)","line":"\#(queue)-\#(index)"}"#.utf8))
                })
        }
        #expect(FileManager.default.currentDirectoryPath != folder.url.path)
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(
            try eventually(timeout: 30) { try file.stats().values.reduce(0) { $0 + $1.completed + $1.dead } == 10 })
        let letters = try file.deadLetters()
        #expect(letters.isEmpty, "\(letters.map(\.reason))")
        #expect(try file.stats().values.reduce(0) { $0 + $1.completed } == 10)
        #expect(run.stop().status == 0)
    }

    @Test(
        "a job's timeout counts from when a worker process has it: a worker slower to start than the timeout costs the job nothing"
    )
    func timeoutExcludesWorkerStart() throws {
        let folder = TestFolder()
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 1
            sources: [{ kind: sqlite, path: "q.db" }]
            queues:
              - { name: "slowstart", isolation: process, timeout: 1s, attempts: 1, command: ["sh", "-c", "sleep 1.5; exec \(FairwayProcess.executable.path)"] }
            """)
        try file.enqueue(NewJob(queue: "slowstart", type: "sleep", payload: Array(#"{"ms":200}"#.utf8)))
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(try eventually(timeout: 20) { try file.stats().values.reduce(0) { $0 + $1.completed + $1.dead } == 1 })
        #expect(try file.deadLetters(queue: "slowstart").isEmpty, "\(run.log)")
        #expect(!run.log.contains("timed out"), "\(run.log)")
        #expect(run.stop().status == 0)
    }

    @Test("each stderr line of a worker lands in fairway's log with the worker's pid and the queue of its job")
    func workerStderrNamed() throws {
        let folder = TestFolder()
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 1
            sources: [{ kind: sqlite, path: "q.db" }]
            queues:
              - { name: "traps", isolation: process, attempts: 1 }
              - { name: "shell", isolation: process, command: ["sh", "-c", "echo 'booting up' >&2; exec \(FairwayProcess.executable.path)"], attempts: 1 }
            """)
        try file.enqueue(NewJob(queue: "traps", type: "crash"))
        try file.enqueue(NewJob(queue: "shell", type: "noop"))
        let run = try RunningFairway(config: config, folder: folder.url, arguments: ["--log-format", "json"])
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(try eventually(timeout: 20) { try file.stats().values.reduce(0) { $0 + $1.completed + $1.dead } == 2 })
        #expect(run.stop().status == 0)
        let records = run.log.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let trap = try #require(
            records.first { ($0["message"] as? String)?.contains("trapped on purpose") == true }, "\(run.log)")
        #expect(trap["queue"] as? String == "traps")
        let pid = try #require(Int32(trap["worker"] as? String ?? ""))
        #expect(pid > 0 && pid != run.process.pid)
        let letter = try #require(try file.deadLetters(queue: "traps").first)
        #expect(letter.reason.contains("worker process \(pid) "), "the log's pid is the one the reason names")
        let boot = try #require(records.first { $0["message"] as? String == "booting up" }, "\(run.log)")
        // Written while the worker started for a job of `shell`: before the job was sent ("-") or after.
        #expect(["-", "shell"].contains(boot["queue"] as? String ?? ""), "\(boot)")
        #expect(Int32(boot["worker"] as? String ?? "") ?? 0 > 0)
    }

    @Test("a job that balloons past memoryLimitMB fails its allocation in its own worker: a crash naming the limit")
    func memoryLimit() throws {
        let folder = TestFolder()
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 1
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "hogs", isolation: process, memoryLimitMB: 64, attempts: 1 }]
            """)
        try file.enqueue(NewJob(queue: "hogs", type: "crash", payload: Array(#"{"how":"oom","mb":4096}"#.utf8)))
        try file.enqueue(contentsOf: (0..<3).map { _ in NewJob(queue: "hogs", type: "noop") })
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(try eventually(timeout: 30) { try file.stats()["hogs"].map { $0.completed + $0.dead == 4 } ?? false })
        let letter = try #require(try file.deadLetters(queue: "hogs").first)
        #expect(letter.attempts == 1)
        #expect(letter.reason.contains("it ran under memoryLimitMB 64, enforced as RLIMIT_DATA"), "\(letter.reason)")
        #expect(letter.reason.contains("peak resident memory was"))
        #expect(run.log.contains("could not allocate more memory after"), "the limit, not the 4 GB, stopped it")
        #expect(try file.stats()["hogs"]?.completed == 3, "the next jobs ran in a new worker")
        #expect(run.stop().status == 0)
    }

    @Test("a job's fairness key reaches a worker process, in a pattern queue and in a keyed one")
    func keysReachWorkers() throws {
        let folder = TestFolder()
        let log = folder.path("keys.log")
        let worker = Self.repository.appendingPathComponent("Workers/python/example_worker.py").path
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues:
              - { name: "tenant-*", isolation: process, command: ["python3", "\(worker)"] }
              - { name: mail, keys: true, isolation: process, command: ["python3", "\(worker)"] }
            """)
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        let file = try SQLiteQueue(path: folder.path("q.db"), create: false)
        func append(_ queue: String, _ line: String, key: String?) -> NewJob {
            NewJob(
                queue: queue, type: "append", payload: Array(#"{"path":"\#(log)","line":"\#(line)"}"#.utf8),
                fairnessKey: key)
        }
        try file.enqueue(contentsOf: [append("tenant-42", "t", key: "acme"), append("mail", "m", key: "globex")])
        let written = { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n") }
        #expect(eventually(timeout: 30) { written().count == 2 })
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init).sorted()
        #expect(lines.count == 2 && lines[0].hasPrefix("m ") && lines[0].hasSuffix(" key=globex"), "\(lines)")
        #expect(lines.count == 2 && lines[1].hasPrefix("t ") && lines[1].hasSuffix(" key=acme"), "\(lines)")
        #expect(run.stop().status == 0)
    }

    @Test(
        "a worker that cannot start holds its queue off: its jobs wait uncharged, other queues run, and they run once it is fixed"
    )
    func workerThatCannotStart() throws {
        // A bad deploy: the worker dies on an import before its hello. Each job's start failed and counted an
        // attempt, so the whole backlog was dead-lettered within seconds, though no job had run.
        let folder = TestFolder()
        let broken = "import sys\nimport a_module_the_deploy_forgot\n"
        try broken.write(toFile: folder.path("worker.py"), atomically: true, encoding: .utf8)
        let example = Self.repository.appendingPathComponent("Workers/python/example_worker.py").path
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues:
              - { name: "broken", isolation: process, command: ["python3", "worker.py"], attempts: 2, backoff: 100ms }
              - { name: "fine", isolation: process, command: ["python3", "\(example)"], attempts: 2 }
            """)
        let log = folder.path("runs.log")
        for queue in ["broken", "fine"] {
            try file.enqueue(contentsOf: Self.appends(queue, 5, log: log, line: queue, ms: { _ in 0 }))
        }
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(try eventually(timeout: 30) { try file.stats()["fine"]?.completed == 5 }, "\(run.log)")
        // Two attempts 100 ms apart would have dead-lettered all five by now, many times over.
        #expect(eventually(timeout: 30) { run.log.components(separatedBy: "could not start;").count > 3 })
        let held = try #require(try file.stats()["broken"])
        #expect(held.dead == 0 && held.failed == 0 && held.completed == 0 && held.delayed == 0, "\(held)")
        #expect(run.log.contains("the queue's jobs wait, charged nothing"), "\(run.log)")
        #expect(run.log.contains("a_module_the_deploy_forgot"), "the worker's own error is in the log")
        let port = try #require(run.httpPort)
        let exposition = HTTP.call("GET", port: port, "/metrics").body
        #expect((HTTP.sample(exposition, "fairway_worker_processes_failed_starts_total") ?? 0) >= 3, "\(exposition)")
        #expect(HTTP.sample(exposition, #"fairway_jobs_completed_total{queue="broken",outcome="failure"}"#) ?? 0 == 0)
        // Held for 4 s or more after its third failed start: the queue says so, to `fairway queues` and the dashboard.
        let queues = HTTP.call("GET", port: port, "/queues").body
        #expect(queues.contains(#""heldOffSeconds""#) && queues.contains(#""failedWorkerStarts""#), "\(queues)")
        // The fix is deployed: once the hold ends (8 s at most by now, doubling from 1 s) the jobs run, first time.
        try "import runpy\nrunpy.run_path(\"\(example)\", run_name=\"__main__\")\n".write(
            toFile: folder.path("worker.py"), atomically: true, encoding: .utf8)
        #expect(try eventually(timeout: 90) { try file.stats()["broken"]?.completed == 5 }, "\(run.log)")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("broken-") }.allSatisfy { $0.hasSuffix("attempt=1") }, "\(lines)")
        #expect(try file.deadLetters().isEmpty)
        #expect(run.stop().status == 0)
    }

    @Test("queues that share a worker that cannot start are held off together: one failed start for all, not one each")
    func sharedWorkerThatCannotStart() throws {
        let folder = TestFolder()
        try "import a_module_the_deploy_forgot\n".write(
            toFile: folder.path("worker.py"), atomically: true, encoding: .utf8)
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues:
              - { name: "billing", isolation: process, command: ["python3", "worker.py"] }
              - { name: "emails", isolation: process, command: ["python3", "worker.py"] }
              - { name: "reports", isolation: process, command: ["python3", "worker.py"] }
            """)
        let log = folder.path("runs.log")
        for queue in ["billing", "emails", "reports"] {
            try file.enqueue(contentsOf: Self.appends(queue, 3, log: log, line: queue, ms: { _ in 0 }))
        }
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        let port = try #require(run.httpPort)
        // The first failed start holds all three: each queue trying on its own (and, with 120 such queues,
        // a thread each waiting up to 30 s for a hello) was the other way.
        #expect(
            eventually(timeout: 30) {
                HTTP.call("GET", port: port, "/queues").body.components(separatedBy: #""heldOffSeconds""#).count == 4
            }, "\(run.log)")
        let failed = run.log.components(separatedBy: "could not start;").count - 1
        #expect(failed >= 1 && failed < 3, "\(run.log)")
        #expect(run.log.contains("queuesHeld=3"), "\(run.log)")
        #expect(try file.stats().values.allSatisfy { $0.dead == 0 && $0.failed == 0 && $0.completed == 0 })
        #expect(run.stop().status == 0)
    }

    @Test("a worker that dies while a program it started holds its pipe is seen dead at once, not when that ends")
    func deathSeenPastAnInheritedPipe() throws {
        // PHP cannot keep a descriptor from the programs a handler starts: one left running in the background
        // holds the worker's end of the results pipe, whose end Fairway then saw only when that program ended.
        let folder = TestFolder()
        let library = Self.repository.appendingPathComponent("Workers/php/src/FairwayWorker.php").path
        // In the background program's command line, to find it (Fairway's own names the folder's config).
        let marker = folder.path("background-program")
        try """
        <?php
        require '\(library)';
        $worker = new Fairway\\Worker();
        $worker->handle('spawn', static function (): void {
            exec('php -r "sleep(60);" \(marker) > /dev/null 2>&1 &');
        });
        $worker->handle('crash', static fn () => exit(3));
        exit($worker->run());
        """.write(toFile: folder.path("worker.php"), atomically: true, encoding: .utf8)
        defer {
            for pid in processes(mentioning: marker) { kill(pid, SIGKILL) }
        }
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 1
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "q", isolation: process, command: ["php", "worker.php"], attempts: 1, timeout: 30s }]
            """)
        try file.enqueue(contentsOf: [NewJob(queue: "q", type: "spawn"), NewJob(queue: "q", type: "crash")])
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        #expect(try eventually(timeout: 15) { try file.stats()["q"]?.dead == 1 }, "\(run.log)")
        let letter = try #require(try file.deadLetters().first)
        #expect(letter.type == "crash" && letter.reason.contains("exited with status 3"), "\(letter.reason)")
        #expect(!processes(mentioning: marker).isEmpty, "the program the handler started still runs")
        #expect(run.stop().status == 0)
    }

    @Test("the Python example worker runs jobs, reports failures and rejections, and is replaced when it dies")
    func pythonWorker() throws {
        let folder = TestFolder()
        let log = folder.path("python.log")
        let worker = Self.repository.appendingPathComponent("docs/examples/python_worker.py").path
        let config = try folder.processQueueConfig(command: ["python3", worker])
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(contentsOf: TestFolder.appendJobs(queue: "py", log: log, count: 50))
        try file.enqueue(
            contentsOf: [
                NewJob(queue: "py", type: "fail", payload: Array(#"{"message":"no such report"}"#.utf8)),
                NewJob(queue: "py", type: "resize"),
                NewJob(queue: "py", type: "crash"),
                NewJob(queue: "py", type: "sleep", payload: Array(#"{"ms":20000}"#.utf8)),
                NewJob(queue: "py", type: "append", payload: Array(#"{"line":"no path"}"#.utf8)),
            ])
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        // 4 s alone; 43 s once in the whole suite on 2 cores, so the bound is generous.
        #expect(
            try eventually(timeout: 90) { try file.stats()["py"].map { $0.completed == 50 && $0.dead == 5 } ?? false })
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(Set(lines.map { $0.split(separator: " ")[0] }).count == 50)
        let pids = Set(lines.map { $0.split(separator: " ")[1] })
        #expect(pids.count <= 4, "workers are reused: \(pids.count) processes for 50 jobs")
        let letters = Dictionary(
            uniqueKeysWithValues: try file.deadLetters(queue: "py").map { ($0.type + $0.payload, $0) })
        let failed = try #require(letters["fail" + #"{"message":"no such report"}"#])
        #expect(failed.reason == "RuntimeError: no such report (gave up after 2 attempts)")
        let unknown = try #require(letters["resize{}"])
        #expect(unknown.reason.contains("unknown job type 'resize'") && unknown.attempts == 1)
        let crashed = try #require(letters["crash{}"])
        #expect(crashed.reason.contains("exited with status 3") && crashed.attempts == 2)
        let slept = try #require(letters["sleep" + #"{"ms":20000}"#])
        #expect(slept.reason.contains("timed out after 2s"))
        let invalid = try #require(letters["append" + #"{"line":"no path"}"#])
        #expect(invalid.reason.contains("missing field 'path'") && invalid.attempts == 1)
        let exit = run.stop()
        #expect(exit.status == 0 && !exit.bySignal, "\(run.log)")
    }

    @Test(
        "SIGTERM under load: held jobs are consumable by another process within a second, exit 0 in the deadline",
        .loadsMachine)
    func heldJobsHandedBack() throws {
        let folder = TestFolder()
        let log = folder.path("runs.log")
        let (config, file) = try folder.sqliteConfig(
            """
            workers: 2
            drainTimeout: 10s
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: "q", prefetch: 16 }]
            """)
        // Two long jobs run first and keep the first process draining; the other 14 are held behind them.
        try file.enqueue(contentsOf: Self.appends("q", 16, log: log, line: "job") { $0 < 2 ? 2500 : 50 })
        let first = try RunningFairway(config: config, folder: folder.url)
        #expect(first.waitUntilRunning(), "\(first.log)")
        #expect(try eventually { try file.stats()["q"]?.leased == 16 })
        let second = try RunningFairway(config: config, folder: folder.url)
        #expect(second.waitUntilRunning(), "\(second.log)")
        func lines() -> Int { Self.lineCount(log) }
        #expect(eventually { lines() == 2 })
        Thread.sleep(forTimeInterval: 0.2)
        #expect(lines() == 2, "the second process has nothing to run while the first holds every job")

        let signalled = Date()
        kill(first.process.pid, SIGTERM)
        #expect(eventually(timeout: 5) { lines() >= 3 })
        let handedOver = Date().timeIntervalSince(signalled)
        print("SIGTERM: a held job started in another process \(handedOver) s after the signal")
        #expect(handedOver < 1, "held jobs are back at the source at once")
        let exit = first.waitForExit(timeout: 12)
        let drained = Date().timeIntervalSince(signalled)
        #expect(exit.status == 0 && !exit.bySignal, "\(first.log)")
        #expect(drained < 10, "exit within the drain deadline: \(drained) s")
        #expect(try eventually(timeout: 60) { try file.stats()["q"]?.completed == 16 })
        #expect(second.stop().status == 0)
        let stats = try #require(try file.stats()["q"])
        #expect(stats.ready + stats.leased + stats.delayed + stats.dead == 0)
    }

    @Test("a queue at its maxBacklog refuses enqueues with 'queue full, retry after', writing nothing")
    func loadShedding() throws {
        let folder = TestFolder()
        let config = try folder.config(
            """
            sources: [{ kind: sqlite, path: "q.db" }]
            queues:
              - { name: "capped", paused: true, maxBacklog: 5, backlogRetryAfter: 2s }
              - { name: "open", paused: true }
            """)
        let run = try RunningFairway(config: config, folder: folder.url)
        #expect(run.waitUntilRunning(), "\(run.log)")
        let db = folder.path("q.db")
        let accepted = try FairwayProcess.run([
            "enqueue", "--db", db, "--queue", "capped", "--type", "noop", "--count", "5",
        ])
        #expect(accepted.status == 0, "\(accepted.stderr)")
        let refused = try FairwayProcess.run(["enqueue", "--db", db, "--queue", "capped", "--type", "noop"])
        #expect(refused.status == 75)
        #expect(
            refused.stderr.contains("queue 'capped' is full (5 jobs waiting, limit 5), retry after 2 s"),
            "\(refused.stderr)")
        let other = try FairwayProcess.run([
            "enqueue", "--db", db, "--queue", "open", "--type", "noop", "--count", "50",
        ])
        #expect(other.status == 0)
        let stats = try SQLiteQueue(path: db).stats()
        // A paused queue's jobs may be claimed and held: unfinished is ready plus leased.
        #expect(stats["capped"].map { $0.ready + $0.leased } == 5)
        #expect(stats["open"].map { $0.ready + $0.leased } == 50)
        #expect(run.stop().status == 0)
    }
}

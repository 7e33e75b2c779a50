import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Logging
import Testing

@testable import FairwaySQLite

@Suite("SQLite source", .timeLimit(.minutes(3)))
struct SQLiteSourceTests {
    @Test("jobs run and are acknowledged durably; the totals are kept in the file")
    func runsAndCounts() throws {
        let folder = TemporaryFolder()
        let harness = try SQLiteHarness(
            path: folder.path("q.db"), queues: [QueueDefinition(name: "a"), QueueDefinition(name: "b")])
        try harness.file.enqueue(contentsOf: (0..<300).map { NewJob(queue: $0 % 3 == 0 ? "b" : "a", type: "noop") })
        try harness.engine.start()
        #expect(try eventually { try harness.stats("a").completed == 200 && harness.stats("b").completed == 100 })
        harness.engine.shutdown(drainTimeout: .seconds(5))
        let reopened = try SQLiteQueue(path: folder.path("q.db"), create: false)
        let stats = try reopened.stats()
        #expect(stats["a"]?.completed == 200)
        #expect(stats["b"]?.completed == 100)
        #expect(stats["a"]?.ready == 0 && stats["a"]?.leased == 0)
        #expect(try sqlInt(folder.path("q.db"), "SELECT count(*) FROM jobs") == 0)
    }

    @Test("an enqueue from this process starts at once; one from another connection within the change tick")
    func wakesOnEnqueue() throws {
        let folder = TemporaryFolder()
        let started = Shared<[UInt64]>([])
        let probe = JobName<NoParameters>("probe")
        let harness = try SQLiteHarness(path: folder.path("q.db"), queues: [QueueDefinition(name: "q")]) { registry in
            registry.register(probe) { _, _ in started.update { $0.append(MonotonicClock.now) } }
        }
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(2)) }
        let other = try SQLiteQueue(path: folder.path("q.db"), create: false)
        var local: [Double] = []
        var remote: [Double] = []
        for round in 0..<20 {
            Thread.sleep(forTimeInterval: 0.02)
            let useOther = round % 2 == 1
            let before = MonotonicClock.now
            try (useOther ? other : harness.file).enqueue(NewJob(queue: "q", type: "probe"))
            #expect(eventually { started.read().count == round + 1 })
            let delay = Double(started.read()[round] - before) / 1e9
            if useOther { remote.append(delay) } else { local.append(delay) }
        }
        local.sort()
        remote.sort()
        #expect(local[local.count / 2] < 0.005, "same-process enqueue to start: \(local)")
        // The change tick is 5 ms; a polling worker sleeping a second would show ~500 ms.
        #expect(remote[remote.count / 2] < 0.050, "other-connection enqueue to start: \(remote)")
    }

    @Test("delayed jobs wait for their time; failed jobs back off, then go to the dead letters with the reason")
    func delaysAndBackoff() throws {
        let folder = TemporaryFolder()
        let harness = try SQLiteHarness(
            path: folder.path("q.db"),
            queues: [
                QueueDefinition(name: "later"),
                QueueDefinition(name: "flaky", retry: quickRetry(3, backoff: .milliseconds(300))),
            ]
        )
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(2)) }
        let enqueued = Date()
        try harness.file.enqueue(NewJob(queue: "later", type: "noop", delay: .milliseconds(400)))
        try harness.file.enqueue(
            NewJob(queue: "flaky", type: "fail", payload: Array(#"{"message":"upstream 503"}"#.utf8)))
        #expect(try eventually { try harness.stats("flaky").failed == 1 })
        let afterFirst = try harness.stats("flaky")
        #expect(afterFirst.delayed == 1, "the retry waits out its backoff in the file")
        #expect(try harness.stats("later").delayed == 1)
        #expect(try harness.stats("later").completed == 0)
        #expect(try eventually { try harness.stats("later").completed == 1 })
        #expect(Date().timeIntervalSince(enqueued) >= 0.39)
        #expect(try eventually { try harness.stats("flaky").dead == 1 })
        // Backoffs of 300 ms then 600 ms: the dead letter comes no sooner than 0.9 s after the enqueue.
        #expect(Date().timeIntervalSince(enqueued) >= 0.85)
        let letter = try #require(try harness.file.deadLetters(queue: "flaky").first)
        #expect(letter.attempts == 3)
        #expect(letter.reason == "upstream 503 (gave up after 3 attempts)")
        #expect(letter.payload == #"{"message":"upstream 503"}"#)
        #expect(try harness.stats("flaky").failed == 3)
    }

    @Test("an unknown job type is dead-lettered with that reason, and requeued jobs run again")
    func unknownTypeAndRequeue() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        do {
            let first = try SQLiteHarness(path: path, queues: [QueueDefinition(name: "q")])
            try first.file.enqueue(NewJob(queue: "q", type: "resize-image", payload: Array(#"{"w":64}"#.utf8)))
            try first.engine.start()
            #expect(try eventually { try first.stats("q").dead == 1 })
            first.engine.shutdown(drainTimeout: .seconds(2))
            #expect(
                try first.file.deadLetters().first?.reason
                    == "unknown job type 'resize-image': no handler is registered for it")
        }
        let resized = Shared(0)
        let second = try SQLiteHarness(path: path, queues: [QueueDefinition(name: "q")]) { registry in
            registry.register(JobName<[String: Int]>("resize-image")) { parameters, _ in
                if parameters["w"] == 64 { resized.update { $0 += 1 } }
            }
        }
        try second.engine.start()
        defer { second.engine.shutdown(drainTimeout: .seconds(2)) }
        #expect(try second.file.requeueDeadLetters(queue: "q") == 1)
        #expect(eventually { resized.read() == 1 })
        #expect(try eventually { try second.stats("q").completed == 1 && second.stats("q").dead == 0 })
        #expect(try second.file.purgeDeadLetters() == 0)
    }

    @Test("higher priority runs first within a queue; equal priorities in enqueue order")
    func priorityOrder() throws {
        let folder = TemporaryFolder()
        let order = Shared<[String]>([])
        let tagged = JobName<[String: String]>("tagged")
        let harness = try SQLiteHarness(
            path: folder.path("q.db"), workers: 1, queues: [QueueDefinition(name: "q", credit: 8)]
        ) {
            registry in
            registry.register(tagged) { parameters, _ in order.update { $0.append(parameters["tag"] ?? "") } }
        }
        try harness.file.enqueue(contentsOf: [
            NewJob(queue: "q", type: "tagged", payload: Array(#"{"tag":"low-1"}"#.utf8), priority: 0),
            NewJob(queue: "q", type: "tagged", payload: Array(#"{"tag":"high-1"}"#.utf8), priority: 5),
            NewJob(queue: "q", type: "tagged", payload: Array(#"{"tag":"low-2"}"#.utf8), priority: 0),
            NewJob(queue: "q", type: "tagged", payload: Array(#"{"tag":"high-2"}"#.utf8), priority: 5),
        ])
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(2)) }
        #expect(eventually { order.read().count == 4 })
        #expect(order.read() == ["high-1", "high-2", "low-1", "low-2"])
    }

    /// Also for queues shared by key and queues of a pattern, whose claims take one job of each of many
    /// keys in one statement: 500 keys with jobs, a credit of 10.
    @Test(
        "the source claims only what the queue's credit allows, however deep the file's backlog",
        arguments: ["plain", "keys", "pattern"])
    func claimsBoundedByCredit(layout: String) throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let definition =
            switch layout {
            case "keys": QueueDefinition(name: "deep", credit: 10, keys: KeyFairness())
            case "pattern": QueueDefinition(name: "deep-*", credit: 10)
            default: QueueDefinition(name: "deep", credit: 10)
            }
        let harness = try SQLiteHarness(path: path, queues: [definition])
        try harness.file.enqueue(
            contentsOf: (0..<3000).map {
                NewJob(
                    queue: layout == "pattern" ? "deep-\($0 % 500)" : "deep", type: "sleep",
                    payload: Array(#"{"ms":0.5}"#.utf8), fairnessKey: layout == "keys" ? "t\($0 % 500)" : nil)
            })
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(2)) }
        var samples = 0
        while try harness.stats(definition.name).completed < 500 {
            let leased = try sqlInt(path, "SELECT count(*) FROM jobs WHERE state = 2")
            #expect(leased <= 10)
            #expect(harness.engine.snapshot().queues[0].held <= 10)
            samples += 1
        }
        #expect(samples > 5)
    }

    @Test("jobs whose lease expired (their process died elsewhere) become claimable and run")
    func expiredLeasesAreReclaimed() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let file = try SQLiteQueue(path: path)
        try file.enqueue(NewJob(queue: "q", type: "noop"))
        let past = Milliseconds.now - 1000
        try sql(
            path, "UPDATE jobs SET state = 2, attempts = 1, lease_owner = 'elsewhere:1:x', lease_expires_at = \(past)")
        var options = SQLiteSource.Options()
        options.leaseDuration = .milliseconds(300)
        let harness = try SQLiteHarness(path: path, queues: [QueueDefinition(name: "q")], options: options)
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(2)) }
        #expect(try eventually(timeout: 3) { try harness.stats("q").completed == 1 })
    }

    @Test("a job another process releases (an old id made ready again) is found through the file watch, with no tick")
    func releasedByAnotherProcess() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let file = try SQLiteQueue(path: path)
        try file.enqueue(NewJob(queue: "q", type: "noop"))
        let hourAhead = Milliseconds.now + 3_600_000
        try sql(
            path,
            "UPDATE jobs SET state = 2, attempts = 1, lease_owner = 'other-host:1:x', lease_expires_at = \(hourAhead)")
        // No safety tick: only the file watch and the periodic probe of every queue can find the job.
        var options = SQLiteSource.Options()
        options.watchedCheckInterval = .seconds(60)
        let harness = try SQLiteHarness(path: path, queues: [QueueDefinition(name: "q")], options: options)
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(2)) }
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try harness.stats("q").completed == 0, "a job leased elsewhere must not run")
        try sql(path, "UPDATE jobs SET state = 0, lease_owner = NULL, lease_expires_at = NULL")
        // Well under the 60 s tick, so only the watch and the probe can pass it; 3 s failed once under
        // ThreadSanitizer on a loaded 2-core machine.
        #expect(try eventually(timeout: 15) { try harness.stats("q").completed == 1 })
    }

    @Test("the one-shot file watch is armed again before every wait: 40 jobs from another connection, no tick")
    func watchRearmedBeforeEveryWait() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let producer = try SQLiteQueue(path: path)
        var options = SQLiteSource.Options()
        options.watchedCheckInterval = .seconds(60)
        let harness = try SQLiteHarness(path: path, queues: [QueueDefinition(name: "q")], options: options)
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(2)) }
        // Each job comes while the store thread waits, or just as it goes to wait (no pause): a watch that
        // fired on the last commit and was not armed again would leave the job for the 60 s tick.
        for round in 1...40 {
            if round % 2 == 0 { Thread.sleep(forTimeInterval: Double(round % 7) / 200) }
            try producer.enqueue(NewJob(queue: "q", type: "noop"))
            try #require(
                try eventually(timeout: 5) { try harness.stats("q").completed == round },
                "job \(round) was not noticed")
        }
    }

    @Test("a restarted process on the same host reclaims the leases of its dead predecessor at once")
    func deadPredecessorReclaimedAtOnce() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let file = try SQLiteQueue(path: path)
        try file.enqueue(NewJob(queue: "q", type: "noop"))
        let finished = try ChildProcess("/bin/true", [])
        finished.waitUntilExit()
        let deadPID = finished.pid
        let host = ProcessInfo.processInfo.hostName
        let hourAhead = Milliseconds.now + 3_600_000
        let ghost = "\(host):\(deadPID):ghost"
        try sql(
            path, "UPDATE jobs SET state = 2, attempts = 1, lease_owner = '\(ghost)', lease_expires_at = \(hourAhead)")
        try sql(
            path,
            "INSERT INTO consumers(identity, host, pid, heartbeat_at) VALUES ('\(ghost)', '\(host)', \(deadPID), 0)")
        let harness = try SQLiteHarness(path: path, queues: [QueueDefinition(name: "q")])
        let began = Date()
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(2)) }
        #expect(try eventually(timeout: 5) { try harness.stats("q").completed == 1 })
        #expect(Date().timeIntervalSince(began) < 2, "waited for the lease instead of reclaiming it")
    }

    @Test("a dead consumer's journal held by another survivor: its leases wait for that charge, never freed uncharged")
    func deadConsumerBeingCharged() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let file = try SQLiteQueue(path: path)
        let id = try file.enqueue(NewJob(queue: "q", type: "attempt"))
        let finished = try ChildProcess("/bin/true", [])
        finished.waitUntilExit()
        let host = ProcessInfo.processInfo.hostName
        let ghost = "\(host):\(finished.pid):ghost"
        try sql(
            path,
            "UPDATE jobs SET state = 2, lease_owner = '\(ghost)', lease_expires_at = \(Milliseconds.now + 3_600_000)")
        try sql(
            path,
            "INSERT INTO consumers(identity, host, pid, heartbeat_at) VALUES ('\(ghost)', '\(host)', \(finished.pid), 0)"
        )
        // The dead consumer was running the job; its journal is locked, as while another survivor charges it.
        var journal: RunJournal? = try RunJournal(prefix: SQLiteSource.journalPrefix(path), owner: ghost)
        _ = journal?.begin(UInt64(id))
        let attempts = Shared<[Int]>([])
        var options = SQLiteSource.Options()
        options.leaseDuration = .milliseconds(900)
        let harness = try SQLiteHarness(path: path, queues: [QueueDefinition(name: "q")], options: options) {
            registry in
            registry.register(JobName<NoParameters>("attempt")) { _, context in
                attempts.update { $0.append(context.attempt) }
            }
        }
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(2)) }
        // Several lease renewals, each of which looks for dead consumers.
        Thread.sleep(forTimeInterval: 1.2)
        #expect(attempts.read().isEmpty, "the leases were freed while the charge was still to come")
        journal = nil  // the holder lets go without charging: the journal is an orphan for the next look
        #expect(eventually(timeout: 5) { attempts.read() == [2] }, "\(attempts.read())")
    }

    @Test("a job whose attempts were used up by runs that never settled is dead-lettered, not run again")
    func attemptsUsedUpByCrashes() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let ran = Shared(0)
        let file = try SQLiteQueue(path: path)
        try file.enqueue(NewJob(queue: "q", type: "crashy"))
        // Three runs charged by the journals of processes that died while running it.
        try sql(
            path, "UPDATE jobs SET attempts = 3, last_error = 'its process ended while running it (a crash or a kill)'")
        let harness = try SQLiteHarness(path: path, queues: [QueueDefinition(name: "q", retry: quickRetry(3))]) {
            registry in
            registry.register(JobName<NoParameters>("crashy")) { _, _ in ran.update { $0 += 1 } }
        }
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(2)) }
        #expect(try eventually { try harness.stats("q").dead == 1 })
        #expect(ran.read() == 0)
        #expect(
            try harness.file.deadLetters().first?.reason
                == "its process ended while running it (a crash or a kill) (gave up after 3 attempts)")
    }

    @Test("a completion whose lease another process took is not deleted or counted; its neighbours are")
    func lostLeaseAmongCompletions() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let file = try SQLiteQueue(path: path)
        // Ids 1 … 11 in a row, so that their completions are deleted as runs; the sixth loses its lease while
        // it runs, as when it expired and another consumer took the job.
        try file.enqueue(
            contentsOf: (1...11).map { NewJob(queue: "q", type: $0 == 6 ? "taken" : "noop") })
        let harness = try SQLiteHarness(path: path, workers: 1, queues: [QueueDefinition(name: "q")]) { registry in
            registry.register(JobName<NoParameters>("taken")) { _, _ in
                try sql(path, "UPDATE jobs SET lease_owner = 'another' WHERE type = 'taken'")
            }
        }
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(2)) }
        #expect(try eventually { try harness.stats("q").completed == 10 })
        Thread.sleep(forTimeInterval: 0.1)
        #expect(try harness.stats("q").completed == 10)
        #expect(try sqlInt(path, "SELECT count(*) FROM jobs") == 1)
        #expect(try sqlInt(path, "SELECT id FROM jobs WHERE lease_owner = 'another' AND state = 2") == 6)
    }

    @Test("a file locked by another process past the busy timeout: the error names the file, and no job is lost")
    func lockedFileLosesNothing() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let messages = CapturingLogHandler.Messages()
        var options = SQLiteSource.Options()
        options.busyTimeout = .milliseconds(100)
        let source = try SQLiteSource(
            path: path, options: options, logger: Logger(label: "test") { _ in CapturingLogHandler(sink: messages) }
        )
        var registry = JobRegistry()
        BuiltinJobs.register(in: &registry)
        let engine = try Engine(
            configuration: EngineConfiguration(workers: 2, queues: [QueueDefinition(name: "q", credit: 8)]),
            registry: registry,
            sources: [source]
        )
        try source.queue.enqueue(
            contentsOf: (0..<200).map { _ in NewJob(queue: "q", type: "sleep", payload: Array(#"{"ms":1}"#.utf8)) })
        try engine.start()
        #expect(try eventually { try source.queue.stats()["q"]!.completed > 0 })
        // Another program takes the write lock and keeps it for a second.
        let blocker = try SQLiteConnection(path: path, mode: .readWrite)
        try blocker.execute("BEGIN IMMEDIATE")
        Thread.sleep(forTimeInterval: 1)
        try blocker.execute("COMMIT")
        #expect(try eventually { try source.queue.stats()["q"]!.completed == 200 })
        engine.shutdown(drainTimeout: .seconds(2))
        let failures = messages.all.filter { $0.contains("queue file write failed") }
        #expect(!failures.isEmpty, "the lock should have made writes fail for a while")
        #expect(failures.allSatisfy { $0.contains(path) && $0.contains("locked") }, "\(failures.prefix(2))")
        let stats = try SQLiteQueue(path: path, create: false).stats()["q"]!
        #expect(stats.completed == 200 && stats.ready == 0 && stats.leased == 0 && stats.dead == 0)
    }

    @Test("shutdown releases held jobs back to the file without counting an attempt")
    func shutdownReleases() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let harness = try SQLiteHarness(path: path, workers: 1, queues: [QueueDefinition(name: "q", credit: 10)])
        try harness.file.enqueue(
            contentsOf: (0..<20).map { _ in NewJob(queue: "q", type: "sleep", payload: Array(#"{"ms":200}"#.utf8)) })
        try harness.engine.start()
        #expect(eventually { harness.engine.snapshot().busyWorkers == 1 })
        harness.engine.shutdown(drainTimeout: .seconds(5))
        let stats = try SQLiteQueue(path: path, create: false).stats()["q"]!
        #expect(stats.completed == 1)
        #expect(stats.leased == 0)
        #expect(stats.ready == 19)
        #expect(try sqlInt(path, "SELECT max(attempts) FROM jobs") == 0)
    }
}

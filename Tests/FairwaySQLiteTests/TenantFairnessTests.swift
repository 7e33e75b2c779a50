import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Testing

@testable import FairwaySQLite

/// Fairness keys within a queue and queues admitted by a pattern, on a real queue file: what one tenant's
/// flood does to the others, caps and weights per key, and queues that appear while the process runs.
@Suite("Tenants: keys within a queue and queues by pattern (SQLite)")
struct TenantFairnessTests {
    /// A job that records its tenant (from the payload) and its queue (as the handler was told it).
    static let tagged = JobName<[String: String]>("tagged")

    struct Start: Sendable {
        var tenant: String
        var queue: String
    }

    static func harness(
        _ folder: TemporaryFolder, workers: Int = 1, queues: [QueueDefinition], jobSeconds: Double = 0,
        running: Shared<[String: Int]>? = nil, most: Shared<[String: Int]>? = nil
    ) throws -> (SQLiteHarness, Shared<[Start]>) {
        let starts = Shared<[Start]>([])
        let harness = try SQLiteHarness(path: folder.path("q.db"), workers: workers, queues: queues) { registry in
            registry.register(Self.tagged) { parameters, context in
                let tenant = parameters["tenant"] ?? ""
                starts.update { $0.append(Start(tenant: tenant, queue: context.queue)) }
                if let running, let most {
                    let now = running.update { running -> Int in
                        running[tenant, default: 0] += 1
                        return running[tenant]!
                    }
                    most.update { $0[tenant] = max($0[tenant] ?? 0, now) }
                }
                if jobSeconds > 0 { Thread.sleep(forTimeInterval: jobSeconds) }
                running?.update { $0[tenant, default: 0] -= 1 }
            }
        }
        return (harness, starts)
    }

    static func job(_ queue: String, _ tenant: String, key: String? = nil) -> NewJob {
        NewJob(
            queue: queue, type: "tagged", payload: Array("{\"tenant\":\"\(tenant)\"}".utf8), fairnessKey: key)
    }

    /// 2,000 jobs of one tenant, then one job each of 20 others, all on one queue with one worker. Keys
    /// that sort before digits ('!', '-') and jobs without a key are among the quiet ones.
    static func flood(queue: String, keyed: Bool) -> [NewJob] {
        let quiet = ["!first", "-dash"] + (3...18).map { "quiet-\($0)" }
        return (0..<2000).map { _ in job(queue, "big", key: keyed ? "big" : nil) }
            + quiet.map { job(queue, "quiet-\($0)", key: keyed ? $0 : nil) }
            + [job(queue, "quiet-no-key-1"), job(queue, "quiet-no-key-2")]
    }

    /// Where the quiet tenants' jobs started, in the order of all starts.
    static func quietPositions(_ starts: [Start]) -> [Int] {
        starts.enumerated().filter { $0.element.tenant.hasPrefix("quiet") }.map(\.offset)
    }

    @Test("one key's backlog does not hold back the others: each waits for about one job per key")
    func floodedKey() throws {
        let folder = TemporaryFolder()
        let (harness, starts) = try Self.harness(
            folder, queues: [QueueDefinition(name: "mail", credit: 8, keys: KeyFairness())])
        try harness.file.enqueue(contentsOf: Self.flood(queue: "mail", keyed: true))
        try harness.engine.start()
        #expect(try eventually { try harness.stats("mail").completed == 2020 })
        harness.engine.shutdown(drainTimeout: .seconds(5))
        let positions = Self.quietPositions(starts.read())
        // The 20 quiet keys alternate with the flood: 40 starts, plus what was held before they were seen.
        #expect(positions.count == 20)
        #expect(positions.max() ?? .max < 60, "quiet tenants started at \(positions)")
        #expect(harness.engine.snapshot().queues[0].activeKeys == 0, "key state outlived the keys' jobs")
    }

    @Test("a dead letter keeps its key, and a job put back on its queue runs under the key it had")
    func deadLetterKeepsItsKey() throws {
        let folder = TemporaryFolder()
        let runs = Shared<[String?]>([])
        let flaky = JobName<[String: String]>("flaky")
        let harness = try SQLiteHarness(
            path: folder.path("q.db"), workers: 1,
            queues: [QueueDefinition(name: "mail", credit: 8, keys: KeyFairness())]
        ) { registry in
            registry.register(flaky) { _, context in
                // Fails for good the first time, succeeds when put back.
                let first = runs.update { runs -> Bool in
                    runs.append(context.fairnessKey)
                    return runs.count == 1
                }
                if first { throw JobError.permanent("not yet") }
            }
        }
        try harness.file.declareQueues([QueueDeclaration(queue: "mail", jobTypes: nil, keyed: true)])
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(5)) }
        try harness.file.enqueue(NewJob(queue: "mail", type: "flaky", payload: Array("{}".utf8), fairnessKey: "acme"))
        #expect(try eventually { try harness.stats("mail").dead == 1 })
        #expect(try harness.file.deadLetters(queue: "mail").map(\.fairnessKey) == ["acme"])
        let records = try harness.file.deadLetters(matching: DeadLetterFilter(queue: "mail"), limit: 10, offset: 0)
        #expect(records.map(\.fairnessKey) == ["acme"], "the HTTP record names the tenant too")
        #expect(try harness.file.requeueDeadLetters(queue: "mail") == 1)
        #expect(try eventually { try harness.stats("mail").completed == 1 })
        #expect(runs.read() == ["acme", "acme"], "the requeued job ran under \(runs.read())")
    }

    @Test("jobs without a key that another program writes to a keyed queue, undeclared, still run")
    func unkeyedFromAnotherProgram() throws {
        let folder = TemporaryFolder()
        let (harness, starts) = try Self.harness(
            folder, queues: [QueueDefinition(name: "mail", credit: 8, keys: KeyFairness())])
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(5)) }
        // No declaration in the file says `mail` is keyed, so these are written with no key at all.
        let other = try SQLiteQueue(path: folder.path("q.db"), create: false)
        try other.enqueue(contentsOf: [
            Self.job("mail", "x"), Self.job("mail", "y", key: "acme"), Self.job("mail", "z"),
        ])
        #expect(eventually(timeout: 10) { starts.read().count == 3 }, "\(starts.read().map(\.tenant))")
    }

    @Test("without keys the same flood holds the quiet tenants back behind it (the control)")
    func floodWithoutKeys() throws {
        let folder = TemporaryFolder()
        let (harness, starts) = try Self.harness(folder, queues: [QueueDefinition(name: "mail", credit: 8)])
        try harness.file.enqueue(contentsOf: Self.flood(queue: "mail", keyed: false))
        try harness.engine.start()
        #expect(try eventually { try harness.stats("mail").completed == 2020 })
        harness.engine.shutdown(drainTimeout: .seconds(5))
        #expect(Self.quietPositions(starts.read()).min() ?? 0 >= 2000)
    }

    @Test("a key's weight sets its share, and a key's cap holds with more workers than it")
    func weightsAndCaps() throws {
        let folder = TemporaryFolder()
        let (harness, starts) = try Self.harness(
            folder, queues: [QueueDefinition(name: "mail", credit: 16, keys: KeyFairness(weights: ["gold": 3]))])
        try harness.file.enqueue(
            contentsOf: (0..<600).flatMap { _ in
                [Self.job("mail", "gold", key: "gold"), Self.job("mail", "tin", key: "tin")]
            })
        try harness.engine.start()
        #expect(try eventually { try harness.stats("mail").completed == 1200 })
        harness.engine.shutdown(drainTimeout: .seconds(5))
        let first = starts.read().prefix(400)
        let gold = first.filter { $0.tenant == "gold" }.count
        // 3:1 of 400 is 300; start-time fair queueing keeps it within a job or two, the claims' batching a few more.
        #expect(abs(gold - 300) <= 8, "gold had \(gold) of the first 400")

        let capped = TemporaryFolder()
        let running = Shared<[String: Int]>([:])
        let most = Shared<[String: Int]>([:])
        let (second, _) = try Self.harness(
            capped, workers: 4, queues: [QueueDefinition(name: "mail", credit: 16, keys: KeyFairness(concurrency: 1))],
            jobSeconds: 0.01, running: running, most: most)
        try second.file.enqueue(
            contentsOf: (0..<40).flatMap { _ in [Self.job("mail", "a", key: "a"), Self.job("mail", "b", key: "b")] })
        try second.engine.start()
        #expect(try eventually { try second.stats("mail").completed == 80 })
        second.engine.shutdown(drainTimeout: .seconds(5))
        #expect(most.read() == ["a": 1, "b": 1], "most at once per key: \(most.read())")
    }

    @Test("a key's cap holds across two consumers of one file, for keys and for a pattern's queues")
    func capAcrossConsumers() throws {
        for pattern in [false, true] {
            let folder = TemporaryFolder()
            let running = Shared<[String: Int]>([:])
            let most = Shared<[String: Int]>([:])
            let name = pattern ? "tenant-*" : "mail"
            let definition = QueueDefinition(name: name, credit: 16, keys: KeyFairness(concurrency: 2))
            let (first, _) = try Self.harness(
                folder, workers: 4, queues: [definition], jobSeconds: 0.01, running: running, most: most)
            let (second, _) = try Self.harness(
                folder, workers: 4, queues: [definition], jobSeconds: 0.01, running: running, most: most)
            try first.file.enqueue(
                contentsOf: (0..<30).flatMap { _ in
                    ["a", "b"].map { pattern ? Self.job("tenant-\($0)", $0) : Self.job("mail", $0, key: $0) }
                })
            try first.engine.start()
            try second.engine.start()
            let done = { try sqlInt(folder.path("q.db"), "SELECT coalesce(sum(completed), 0) FROM queue_stats") }
            #expect(try eventually { try done() == 60 })
            first.engine.shutdown(drainTimeout: .seconds(5))
            second.engine.shutdown(drainTimeout: .seconds(5))
            // Counted per process, the second consumer would claim and run two more of each key while the
            // first holds its two (most at once 4). Which consumer gets a freed place is not fixed: usually
            // the one that settled, whose claim shares the settlement's transaction.
            #expect(most.read() == ["a": 2, "b": 2], "\(name): most at once per key across both: \(most.read())")
        }
    }

    @Test("a pattern admits queues as their first job is enqueued, from another connection, while running")
    func patternAdmitsQueues() throws {
        let folder = TemporaryFolder()
        let (harness, starts) = try Self.harness(
            folder,
            queues: [
                QueueDefinition(name: "tenant-vip", credit: 8), QueueDefinition(name: "tenant-*", credit: 8),
            ])
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(5)) }
        let other = try SQLiteQueue(path: folder.path("q.db"), create: false)
        try other.enqueue(Self.job("tenant-7", "seven"))
        #expect(eventually(timeout: 10) { starts.read().count == 1 })
        #expect(starts.read().first?.queue == "tenant-7", "the handler is told the job's own queue")
        try other.enqueue(contentsOf: [Self.job("tenant-vip", "vip"), Self.job("unrelated", "lost")])
        #expect(eventually(timeout: 10) { starts.read().count == 2 })
        Thread.sleep(forTimeInterval: 0.3)
        #expect(starts.read().map(\.queue) == ["tenant-7", "tenant-vip"], "a name nobody serves is not taken")
        let snapshot = harness.engine.snapshot()
        #expect(snapshot.queues[1].succeeded == 1 && snapshot.queues[0].succeeded == 1)
        #expect(snapshot.queues[1].activeKeys == 0, "an idle admitted queue is retired")
        #expect(try sqlInt(folder.path("q.db"), "SELECT count(*) FROM jobs WHERE queue = 'unrelated'") == 1)
    }

    @Test("a flooded admitted queue does not hold back the pattern's other queues")
    func floodedPatternQueue() throws {
        let folder = TemporaryFolder()
        let (harness, starts) = try Self.harness(folder, queues: [QueueDefinition(name: "tenant-*", credit: 8)])
        try harness.file.enqueue(
            contentsOf: (0..<2000).map { _ in Self.job("tenant-big", "big") }
                + (1...20).map { Self.job("tenant-\($0)", "quiet-\($0)") })
        try harness.engine.start()
        #expect(eventually { starts.read().count == 2020 })
        harness.engine.shutdown(drainTimeout: .seconds(5))
        let positions = Self.quietPositions(starts.read())
        #expect(positions.count == 20)
        #expect(positions.max() ?? .max < 60, "quiet queues started at \(positions)")
    }

    /// Claims of one job at a time (credit 1, one worker), so that the order of starts is the order of the
    /// claims: a turn over the keys (or a pattern's queues) in the file's order, each key once a pass.
    @Test(
        "keys and a pattern's queues are claimed in turn, one each, whether one statement claims several or one each",
        arguments: [(pattern: false, oneStatement: true), (false, false), (true, true), (true, false)])
    func claimsInTurn(pattern: Bool, oneStatement: Bool) throws {
        let folder = TemporaryFolder()
        // A weight on a key with no jobs, or a listed queue the pattern would match, with no jobs either,
        // sends the claims key by key; the turn must come out the same.
        var queues = [
            pattern
                ? QueueDefinition(name: "t-*", credit: 1)
                : QueueDefinition(
                    name: "mail", credit: 1, keys: KeyFairness(weights: oneStatement ? [:] : ["unused": 2]))
        ]
        if pattern && !oneStatement { queues.append(QueueDefinition(name: "t-unused", credit: 1)) }
        let (harness, starts) = try Self.harness(folder, queues: queues)
        var generator = SystemRandomNumberGenerator()
        let tenants = ["!a", "b", "c", "d-1", "d-2", "e", "f", "g", "h", "z"]
        var jobs: [NewJob] = []
        var left: [String: Int] = [:]
        for tenant in tenants {
            let count = Int.random(in: 1...5, using: &generator)
            left[tenant] = count
            for _ in 0..<count {
                jobs.append(pattern ? Self.job("t-" + tenant, tenant) : Self.job("mail", tenant, key: tenant))
            }
        }
        try harness.file.enqueue(contentsOf: jobs.shuffled(using: &generator))
        // The model: passes over the tenants in byte order, each with jobs left taking one.
        var expected: [String] = []
        while expected.count < jobs.count {
            for tenant in tenants.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) })
            where left[tenant]! > 0 {
                expected.append(tenant)
                left[tenant]! -= 1
            }
        }
        try harness.engine.start()
        #expect(eventually { starts.read().count == jobs.count })
        harness.engine.shutdown(drainTimeout: .seconds(5))
        #expect(starts.read().map(\.tenant) == expected)
        if pattern {
            #expect(starts.read().allSatisfy { $0.queue == "t-" + $0.tenant }, "a job was told another queue")
        }
    }

    @Test("producers may enqueue to any queue a declared pattern admits, and only to those")
    func producerChecksPatterns() throws {
        let folder = TemporaryFolder()
        let queue = try SQLiteQueue(path: folder.path("q.db"), create: true)
        try queue.declareQueues([
            QueueDeclaration(queue: "tenant-*", jobTypes: ["tagged"]),
            QueueDeclaration(queue: "mail", jobTypes: nil, keyed: true),
        ])
        let producer = try SQLiteJobProducer(path: folder.path("q.db"))
        _ = try producer.enqueue(contentsOf: [Self.job("tenant-42", "x")])
        #expect(throws: ProducerRefusal.self) { _ = try producer.enqueue(contentsOf: [Self.job("other-1", "x")]) }
        #expect(throws: ProducerRefusal.self) {
            _ = try producer.enqueue(contentsOf: [NewJob(queue: "tenant-42", type: "unknown")])
        }
        // A keyed queue's jobs without a key are kept under the key '' (so its index sees them).
        _ = try producer.enqueue(contentsOf: [NewJob(queue: "mail", type: "x")])
        #expect(
            try sqlInt(folder.path("q.db"), "SELECT count(*) FROM jobs WHERE queue = 'mail' AND fairness_key = ''") == 1
        )
    }
}

import Benchmark
import BenchmarkSupport
import CSQLite
import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Logging
import Synchronization

let queueCount = 120
let drainJobs = 120_000

func temporaryFile() -> (path: String, remove: @Sendable () -> Void) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fairway-bench-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return (folder.appendingPathComponent("q.db").path, { try? FileManager.default.removeItem(at: folder) })
}

func fill(_ path: String, jobs: Int) throws {
    let file = try SQLiteQueue(path: path)
    var batch: [NewJob] = []
    for index in 0..<jobs {
        batch.append(NewJob(queue: "q\(index % queueCount)", type: "noop"))
        if batch.count == 1000 {
            try file.enqueue(contentsOf: batch)
            batch.removeAll(keepingCapacity: true)
        }
    }
    if !batch.isEmpty { try file.enqueue(contentsOf: batch) }
}

/// The reference: claim 64 jobs in one transaction, delete them in another, with the C API and no engine.
func rawClaimDeleteLoop(path: String) -> Int {
    var db: OpaquePointer?
    sqlite3_open(path, &db)
    defer { sqlite3_close(db) }
    sqlite3_exec(db, "PRAGMA synchronous = NORMAL", nil, nil, nil)
    var claim: OpaquePointer?
    var delete: OpaquePointer?
    sqlite3_prepare_v2(
        db,
        """
        UPDATE jobs SET state = 2, lease_owner = 'raw', lease_expires_at = 0, attempts = attempts + 1
        WHERE id IN (SELECT id FROM jobs WHERE state = 0 AND queue = ?1 ORDER BY priority DESC, id LIMIT 64)
        RETURNING id, type, payload
        """, -1, &claim, nil)
    sqlite3_prepare_v2(db, "DELETE FROM jobs WHERE id = ?1", -1, &delete, nil)
    defer {
        sqlite3_finalize(claim)
        sqlite3_finalize(delete)
    }
    var done = 0
    var ids: [Int64] = []
    var emptyRounds = 0
    var queue = 0
    while emptyRounds < queueCount {
        ids.removeAll(keepingCapacity: true)
        sqlite3_exec(db, "BEGIN IMMEDIATE", nil, nil, nil)
        sqlite3_bind_text(claim, 1, "q\(queue)", -1, csqlite_transient())
        while sqlite3_step(claim) == SQLITE_ROW {
            ids.append(sqlite3_column_int64(claim, 0))
            blackHole(sqlite3_column_blob(claim, 2))
        }
        sqlite3_reset(claim)
        sqlite3_exec(db, "COMMIT", nil, nil, nil)
        queue = (queue + 1) % queueCount
        if ids.isEmpty {
            emptyRounds += 1
            continue
        }
        emptyRounds = 0
        sqlite3_exec(db, "BEGIN IMMEDIATE", nil, nil, nil)
        for id in ids {
            sqlite3_bind_int64(delete, 1, id)
            sqlite3_step(delete)
            sqlite3_reset(delete)
        }
        sqlite3_exec(db, "COMMIT", nil, nil, nil)
        done += ids.count
    }
    return done
}

let benchmarks: @Sendable () -> Void = {
    let jobsPerSecond = BenchmarkMetric.custom("jobs/s", polarity: .prefersLarger, useScalingFactor: false)
    let latency = BenchmarkMetric.custom("enqueue-to-start (µs)", polarity: .prefersSmaller, useScalingFactor: false)
    let commitTime = BenchmarkMetric.custom(
        "producer's enqueue call (µs)", polarity: .prefersSmaller, useScalingFactor: false)
    let configuration = Benchmark.Configuration(metrics: [jobsPerSecond], maxDuration: .seconds(30), maxIterations: 5)

    Benchmark("sqlite: enqueue, batches of 1000", configuration: configuration) { benchmark in
        let (path, remove) = temporaryFile()
        defer { remove() }
        let file = try SQLiteQueue(path: path)
        let batches = (0..<100).map { batch in
            (0..<1000).map {
                NewJob(queue: "q\(($0 + batch) % queueCount)", type: "noop", payload: Array(#"{"n":1}"#.utf8))
            }
        }
        benchmark.startMeasurement()
        let began = MonotonicClock.now
        for batch in batches {
            try file.enqueue(contentsOf: batch)
        }
        let seconds = Double(MonotonicClock.now - began) / 1e9
        benchmark.stopMeasurement()
        benchmark.measurement(jobsPerSecond, Int(100_000 / seconds))
    }

    // One job a call, 5,000 calls, as an application's request handlers enqueue: the untyped queue API
    // (reference), the typed producer (JSON encoding and the checks against the declared queues), and its
    // async form (the wait moved to a thread of its own).
    struct Parameters: Codable, Sendable {
        var customer: String
        var cents: Int
    }
    let typed = JobName<Parameters>("typed")
    func declaredFile() throws -> (SQLiteQueue, @Sendable () -> Void) {
        let (path, remove) = temporaryFile()
        let file = try SQLiteQueue(path: path)
        try file.declareQueues([QueueDeclaration(queue: "q", jobTypes: ["typed"])])
        return (file, remove)
    }
    Benchmark("sqlite: one job a call, SQLiteQueue.enqueue (reference)", configuration: configuration) { benchmark in
        let (file, remove) = try declaredFile()
        defer { remove() }
        let payload = Array(try JSONEncoder().encode(Parameters(customer: "ada", cents: 1)))
        benchmark.startMeasurement()
        let began = MonotonicClock.now
        for _ in 0..<5_000 { try file.enqueue(NewJob(queue: "q", type: "typed", payload: payload)) }
        let seconds = Double(MonotonicClock.now - began) / 1e9
        benchmark.stopMeasurement()
        benchmark.measurement(jobsPerSecond, Int(5_000 / seconds))
    }
    Benchmark("sqlite: one job a call, typed producer", configuration: configuration) { benchmark in
        let (file, remove) = try declaredFile()
        defer { remove() }
        let producer = SQLiteJobProducer(queue: file)
        benchmark.startMeasurement()
        let began = MonotonicClock.now
        for index in 0..<5_000 { try producer.enqueue(typed, Parameters(customer: "ada", cents: index), queue: "q") }
        let seconds = Double(MonotonicClock.now - began) / 1e9
        benchmark.stopMeasurement()
        benchmark.measurement(jobsPerSecond, Int(5_000 / seconds))
    }
    Benchmark("sqlite: one job a call, typed producer, async", configuration: configuration) { benchmark in
        let (file, remove) = try declaredFile()
        defer { remove() }
        let producer = SQLiteJobProducer(queue: file)
        benchmark.startMeasurement()
        let began = MonotonicClock.now
        for index in 0..<5_000 {
            try await producer.enqueue(typed, Parameters(customer: "ada", cents: index), queue: "q")
        }
        let seconds = Double(MonotonicClock.now - began) / 1e9
        benchmark.stopMeasurement()
        benchmark.measurement(jobsPerSecond, Int(5_000 / seconds))
    }

    Benchmark("sqlite: raw C loop, claim 64 then delete 64 (reference)", configuration: configuration) { benchmark in
        let (path, remove) = temporaryFile()
        defer { remove() }
        try fill(path, jobs: drainJobs)
        benchmark.startMeasurement()
        let began = MonotonicClock.now
        let done = rawClaimDeleteLoop(path: path)
        let seconds = Double(MonotonicClock.now - began) / 1e9
        benchmark.stopMeasurement()
        precondition(done == drainJobs, "raw loop drained \(done)")
        benchmark.measurement(jobsPerSecond, Int(Double(done) / seconds))
    }

    Benchmark("sqlite: drain noop jobs, 2 workers, 120 queues, durable settlement", configuration: configuration) {
        benchmark in
        let (path, remove) = temporaryFile()
        defer { remove() }
        try fill(path, jobs: drainJobs)
        let source = CountingSource(try SQLiteSource(path: path), target: drainJobs)
        let engine = try benchmarkEngine(queues: queueCount, source: source)
        benchmark.startMeasurement()
        let began = MonotonicClock.now
        try engine.start()
        source.done.wait()
        // Shutdown flushes the last settlements: the clock stops when every ack is durable.
        engine.shutdown(drainTimeout: .seconds(5))
        let seconds = Double(MonotonicClock.now - began) / 1e9
        benchmark.stopMeasurement()
        let left = try SQLiteQueue(path: path, create: false).stats().values.reduce(0) { $0 + $1.ready + $1.leased }
        precondition(left == 0, "\(left) jobs left")
        benchmark.measurement(jobsPerSecond, Int(Double(drainJobs) / seconds))
    }

    Benchmark(
        "sqlite: enqueue by another connection to handler start, idle pool",
        configuration: .init(metrics: [latency, commitTime], maxDuration: .seconds(20), maxIterations: 3)
    ) { benchmark in
        let (path, remove) = temporaryFile()
        defer { remove() }
        let started = Atomic<UInt64>(0)
        let signal = DispatchSemaphore(value: 0)
        let source = try SQLiteSource(path: path)
        let engine = try benchmarkEngine(queues: queueCount, source: source) { registry in
            registry.register(
                rawJobType: "probe",
                body: .blocking { _, _ in
                    started.store(MonotonicClock.now, ordering: .releasing)
                    signal.signal()
                })
        }
        try engine.start()
        let producer = try SQLiteQueue(path: path, create: false)
        for round in 0..<300 {
            Thread.sleep(forTimeInterval: 0.002)
            let before = MonotonicClock.now
            try producer.enqueue(NewJob(queue: "q\(round % queueCount)", type: "probe"))
            benchmark.measurement(commitTime, Int((MonotonicClock.now - before) / 1000))
            signal.wait()
            benchmark.measurement(latency, Int((started.load(ordering: .acquiring) - before) / 1000))
        }
        engine.shutdown(drainTimeout: .seconds(2))
    }
}

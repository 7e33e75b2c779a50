import Benchmark
import BenchmarkSupport
import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging
import Synchronization

/// Counts settlements and wakes the benchmark when the last one arrives.
final class DrainCounter: Sendable {
    let settled = Atomic<Int>(0)
    let target: Int
    let done = DispatchSemaphore(value: 0)

    init(target: Int) { self.target = target }

    func record() {
        if settled.add(1, ordering: .relaxed).newValue == target { done.signal() }
    }
}

/// When the handler of the latest job started.
final class StartStamp: Sendable {
    let started = Atomic<UInt64>(0)
    let signal = DispatchSemaphore(value: 0)
}

let benchmarks: @Sendable () -> Void = {
    let jobsPerSecond = BenchmarkMetric.custom("jobs/s", polarity: .prefersLarger, useScalingFactor: false)
    let latency = BenchmarkMetric.custom("enqueue-to-start (ns)", polarity: .prefersSmaller, useScalingFactor: false)

    // No-op jobs through the in-memory source, the scheduler and a pool of 2 workers, 120 queues.
    Benchmark(
        "noop jobs, 2 workers, 120 queues, in-memory source",
        configuration: .init(metrics: [.wallClock, jobsPerSecond], maxDuration: .seconds(10), maxIterations: 8)
    ) { benchmark in
        let jobs = 240_000
        let counter = DrainCounter(target: jobs)
        let source = InMemorySource { _, _ in counter.record() }
        for queue in 0..<120 {
            source.enqueue(queue: "q\(queue)", jobType: "noop", payloads: Array(repeating: [], count: jobs / 120))
        }
        let engine = try benchmarkEngine(source: source)
        benchmark.startMeasurement()
        let began = MonotonicClock.now
        try engine.start()
        counter.done.wait()
        let seconds = Double(MonotonicClock.now - began) / 1e9
        benchmark.stopMeasurement()
        benchmark.measurement(jobsPerSecond, Int(Double(jobs) / seconds))
        engine.shutdown(drainTimeout: .seconds(1))
    }

    isolationBenchmarks(jobsPerSecond: jobsPerSecond)

    // What recording a run costs a job: one begin and one end on a run journal (crash attribution).
    Benchmark(
        "run journal: begin + end of one run",
        configuration: .init(metrics: [.wallClock, .mallocCountTotal], scalingFactor: .mega, maxDuration: .seconds(5))
    ) { benchmark in
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("fairway-bench-journal-").path
        let journal = try RunJournal(prefix: prefix, owner: "benchmark")
        defer { journal.remove() }
        benchmark.startMeasurement()
        for key in benchmark.scaledIterations {
            journal.end(journal.begin(UInt64(key) &+ 1))
        }
        benchmark.stopMeasurement()
    }

    // Idle pool: a job arrives; how long until its handler starts.
    Benchmark(
        "dispatch latency, idle pool of 2",
        configuration: .init(metrics: [latency], maxDuration: .seconds(10), maxIterations: 2_000)
    ) { benchmark in
        let stamp = StartStamp()
        let probe = JobName<NoParameters>("probe")
        let source = InMemorySource()
        let engine = try benchmarkEngine(source: source) { registry in
            registry.register(
                rawJobType: "probe",
                body: .blocking { _, _ in
                    stamp.started.store(MonotonicClock.now, ordering: .releasing)
                    stamp.signal.signal()
                })
        }
        _ = probe
        try engine.start()
        for _ in 0..<200 {
            // Let both workers go back to waiting, as in an idle process.
            Thread.sleep(forTimeInterval: 0.0005)
            let enqueued = MonotonicClock.now
            source.enqueue(queue: "q\(Int.random(in: 0..<120))", jobType: "probe")
            stamp.signal.wait()
            benchmark.measurement(latency, Int(stamp.started.load(ordering: .acquiring) - enqueued))
        }
        engine.shutdown(drainTimeout: .seconds(1))
    }
}

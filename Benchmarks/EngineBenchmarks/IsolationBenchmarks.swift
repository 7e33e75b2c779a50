import Benchmark
import BenchmarkSupport
import FairwayRuntime
import Foundation

/// The cost of running jobs in worker processes instead of on the pool's threads: the same jobs and 8
/// queues, measured after a warm-up so that starting the workers is not counted.
func isolationBenchmarks(jobsPerSecond: BenchmarkMetric) {
    let cases: [(name: String, jobType: String, payload: [UInt8], jobs: Int, warmUp: Int)] = [
        ("noop", "noop", [], 40_000, 2_000),
        ("10 ms sleep", "sleep", Array(#"{"ms":10}"#.utf8), 1_200, 80),
    ]
    // 2 workers: the same concurrency for both. 8 workers: enough jobs in flight to keep both cores busy
    // while worker processes wait on pipes, which is what a job costs once latency is hidden.
    let variants: [(workers: Int, label: String, process: Bool)] = [
        (2, "thread pool", false), (2, "worker processes", true), (8, "thread pool", false),
        (8, "worker processes", true),
    ]
    for job in cases {
        for variant in variants where job.jobType == "noop" || variant.workers == 2 {
            Benchmark(
                "\(job.name) jobs, \(variant.workers) workers, 8 queues, \(variant.label)",
                configuration: .init(metrics: [jobsPerSecond], maxDuration: .seconds(20), maxIterations: 5)
            ) { benchmark in
                let source = InMemorySource()
                for queue in 0..<8 {
                    source.enqueue(
                        queue: "q\(queue)", jobType: job.jobType,
                        payloads: Array(repeating: job.payload, count: job.jobs / 8))
                }
                let counting = CountingSource(source, target: job.jobs, warmUp: job.warmUp)
                let engine = try benchmarkEngine(
                    workers: variant.workers, queues: 8, source: counting,
                    isolation: variant.process ? fairwayWorkerProcesses() : .thread)
                try engine.start()
                counting.done.wait()
                let seconds = Double(MonotonicClock.now - counting.warmedAt.load(ordering: .relaxed)) / 1e9
                benchmark.measurement(jobsPerSecond, Int(Double(job.jobs - job.warmUp) / seconds))
                engine.shutdown(drainTimeout: .seconds(1))
            }
        }
    }

    // The worker libraries' examples: their `sleep` with 0 ms as the no-op, 8 workers (the baseline that
    // pipelining is to be measured against, issue 13).
    for language in ["python", "node", "php"] {
        Benchmark(
            "no-op jobs, 8 workers, 8 queues, \(language) worker processes",
            configuration: .init(metrics: [jobsPerSecond], maxDuration: .seconds(20), maxIterations: 5)
        ) { benchmark in
            let jobs = 8_000
            let warmUp = 400
            let source = InMemorySource()
            for queue in 0..<8 {
                source.enqueue(
                    queue: "q\(queue)", jobType: "sleep",
                    payloads: Array(repeating: Array(#"{"ms":0}"#.utf8), count: jobs / 8))
            }
            let counting = CountingSource(source, target: jobs, warmUp: warmUp)
            let engine = try benchmarkEngine(
                workers: 8, queues: 8, source: counting, isolation: libraryWorkerProcesses(language: language))
            try engine.start()
            counting.done.wait()
            let seconds = Double(MonotonicClock.now - counting.warmedAt.load(ordering: .relaxed)) / 1e9
            benchmark.measurement(jobsPerSecond, Int(Double(jobs - warmUp) / seconds))
            engine.shutdown(drainTimeout: .seconds(1))
        }
    }
}

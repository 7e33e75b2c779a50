import Benchmark
import BenchmarkSupport
import FairwayRuntime
import Foundation

/// The cost of running jobs in worker processes instead of on the pool's threads: the same jobs, the same
/// 8 queues and 2 workers, measured after a warm-up so that starting the workers is not counted.
func isolationBenchmarks(jobsPerSecond: BenchmarkMetric) {
    let cases: [(name: String, jobType: String, payload: [UInt8], jobs: Int, warmUp: Int)] = [
        ("noop", "noop", [], 40_000, 2_000),
        ("10 ms sleep", "sleep", Array(#"{"ms":10}"#.utf8), 1_200, 80),
    ]
    for job in cases {
        for (label, isolation) in [("thread pool", Isolation.thread), ("worker processes", nil)] {
            Benchmark(
                "\(job.name) jobs, 2 workers, 8 queues, \(label)",
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
                    queues: 8, source: counting, isolation: isolation ?? fairwayWorkerProcesses())
                try engine.start()
                counting.done.wait()
                let seconds = Double(MonotonicClock.now - counting.warmedAt.load(ordering: .relaxed)) / 1e9
                benchmark.measurement(jobsPerSecond, Int(Double(job.jobs - job.warmUp) / seconds))
                engine.shutdown(drainTimeout: .seconds(1))
            }
        }
    }
}

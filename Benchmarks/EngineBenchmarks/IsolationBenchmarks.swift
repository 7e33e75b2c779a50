import Benchmark
import BenchmarkSupport
import FairwayRuntime
import Foundation

/// The cost of running jobs in worker processes instead of on the pool's threads: the same jobs and 8
/// queues, measured after a warm-up that ends once every worker is up, so that starting them is not counted
/// (but in the cold 10 ms rows). Each worker kind runs with its pipeline off (`pipeline 1`, one job at a
/// time) and on (`pipeline 32`, the default, and `pipeline 8`, the earlier default, for comparison with
/// older figures), in the same run. The 10 ms load runs again on
/// warm workers (rows `…, warm workers, …`): the start-up and the steady state, reported apart.
///
/// Besides jobs per second, each reports the processor time a job cost after the warm-up, in nanoseconds:
/// the supervising process's and the worker processes' apart. Unlike jobs per second it does not swing
/// with what the machine's other tenants do, so it compares two builds in a few runs.
func isolationBenchmarks(jobsPerSecond: BenchmarkMetric) {
    let supervisorTime = BenchmarkMetric.custom("supervisor ns/job", polarity: .prefersSmaller, useScalingFactor: false)
    let workerTime = BenchmarkMetric.custom("workers ns/job", polarity: .prefersSmaller, useScalingFactor: false)
    // Jobs settled before the window opened: the warm-up, and those run while the last workers started.
    let warmUpJobs = BenchmarkMetric.custom(
        "jobs before the window", polarity: .prefersSmaller, useScalingFactor: false)
    struct Load {
        var name: String
        var payload: String
        var jobs: Int
        var warmUp: Int
        /// Whether the warm-up also waits for every worker process to be up: a steady state. The cold 10 ms
        /// rows do not wait: they report what the first jobs meet while the workers start.
        var waitsForEveryWorker = true
    }
    // The built-in `noop` for the thread pool and the Swift worker; the libraries' examples have no `noop`,
    // so theirs is `sleep` with `{"ms":0}`. 10 ms: `sleep` everywhere, jobs that do some work.
    let noop = Load(name: "no-op", payload: #"{"ms":0}"#, jobs: 40_000, warmUp: 2_000)
    let tenMilliseconds = Load(
        name: "10 ms sleep", payload: #"{"ms":10}"#, jobs: 1_600, warmUp: 80, waitsForEveryWorker: false)
    // The same after 200 jobs in each worker: an interpreter's just-in-time compiler (Node's) is still warming
    // up over the first hundred jobs of a worker, which live for 10,000 (`recycleAfterJobs`).
    let tenMillisecondsWarm = Load(name: "10 ms sleep", payload: #"{"ms":10}"#, jobs: 3_200, warmUp: 1_600)

    func measure(
        _ name: String, _ load: Load, workers: Int, jobType: String = "sleep", jobs: Int? = nil,
        isolation: @escaping () -> Isolation
    ) {
        Benchmark(
            name,
            configuration: .init(
                metrics: [jobsPerSecond, supervisorTime, workerTime, warmUpJobs], maxDuration: .seconds(20),
                maxIterations: 5)
        ) {
            benchmark in
            let count = jobs ?? load.jobs
            let source = InMemorySource()
            // Twice the jobs measured: a warm-up that waits for the last worker may take many more than
            // `warmUp`. The rest are left in the source.
            for queue in 0..<8 {
                source.enqueue(
                    queue: "q\(queue)", jobType: jobType,
                    payloads: Array(repeating: Array(load.payload.utf8), count: 2 * count / 8))
            }
            let counting = CountingSource(source, target: count, warmUp: load.warmUp, measuresMachineTime: true)
            let chosen = isolation()
            let engine = try benchmarkEngine(workers: workers, queues: 8, source: counting, isolation: chosen)
            if load.waitsForEveryWorker, case .process = chosen {
                counting.isReady.withLock {
                    $0 = { [weak engine] in (engine?.snapshot().workerProcesses.started ?? 0) >= workers }
                }
            }
            try engine.start()
            counting.done.wait()
            let seconds = Double(MonotonicClock.now - counting.warmedAt.load(ordering: .relaxed)) / 1e9
            // Read at the warm-up, which comes before `done` (warmUp < count).
            guard let warmed = counting.warmedMachineTime.withLock({ $0 }) else {
                fatalError("no processor time was read at the warm-up of \(name)")
            }
            let spent = MachineTime.now() - warmed
            let measured = Double(count - load.warmUp)
            benchmark.measurement(jobsPerSecond, Int(measured / seconds))
            benchmark.measurement(supervisorTime, Int(spent.supervisor * 1e9 / measured))
            benchmark.measurement(workerTime, Int(spent.children * 1e9 / measured))
            benchmark.measurement(warmUpJobs, counting.warmedCount.load(ordering: .relaxed))
            engine.shutdown(drainTimeout: .seconds(1))
        }
    }

    for load in [noop, tenMilliseconds] {
        for workers in [2, 8] {
            let prefix = "\(load.name) jobs, \(workers) workers, 8 queues"
            let jobType = load.jobs == noop.jobs ? "noop" : "sleep"
            measure("\(prefix), thread pool", load, workers: workers, jobType: jobType) { .thread }
            for pipeline in [1, 8, 32] {
                measure(
                    "\(prefix), swift worker processes, pipeline \(pipeline)", load, workers: workers, jobType: jobType
                ) {
                    fairwayWorkerProcesses(pipeline: pipeline)
                }
            }
        }
    }
    // Workers recycled often (about 5 times each here): what replacing a worker costs the jobs around it, in
    // processor time (no-op jobs) and in waiting for a start (10 ms jobs).
    measure(
        "no-op jobs, 8 workers, 8 queues, swift worker processes, recycled every 1,000 jobs", noop, workers: 8,
        jobType: "noop"
    ) {
        fairwayWorkerProcesses(recycleAfterJobs: 1_000)
    }
    measure(
        "10 ms sleep jobs, 8 workers, 8 queues, swift worker processes, recycled every 40 jobs", tenMilliseconds,
        workers: 8
    ) {
        fairwayWorkerProcesses(recycleAfterJobs: 40)
    }
    let warm = "\(tenMillisecondsWarm.name) jobs, warm workers, 8 workers, 8 queues"
    measure("\(warm), thread pool", tenMillisecondsWarm, workers: 8) { .thread }
    measure("\(warm), swift worker processes", tenMillisecondsWarm, workers: 8) { fairwayWorkerProcesses(pipeline: 32) }
    for language in ["python", "node", "php"] {
        measure("\(warm), \(language) worker processes", tenMillisecondsWarm, workers: 8) {
            libraryWorkerProcesses(language: language, pipeline: 32)
        }
    }
    // Node's `sleep` is a timer, which fires late (libuv keeps time in whole milliseconds); its `block` waits
    // the way the other languages' `sleep` does: the library's cost apart from the timer's.
    for (name, load) in [
        ("10 ms block jobs", tenMilliseconds), ("10 ms block jobs, warm workers", tenMillisecondsWarm),
    ] {
        let row = "\(name), 8 workers, 8 queues, node worker processes, pipeline 32"
        measure(row, load, workers: 8, jobType: "block") { libraryWorkerProcesses(language: "node", pipeline: 32) }
    }
    // No-op jobs again after 4,000 jobs in each worker: V8 still compiles a Node worker's hot code over its
    // first thousands of jobs, on threads of its own, and a worker lives for 10,000 (`recycleAfterJobs`).
    // The rows above measure a worker's first 2,000 jobs, these its steady state.
    let noopWarm = Load(name: "no-op", payload: #"{"ms":0}"#, jobs: 48_000, warmUp: 32_000)
    let warmNoop = "no-op jobs, warm workers, 8 workers, 8 queues"
    measure("\(warmNoop), thread pool", noopWarm, workers: 8, jobType: "noop") { .thread }
    measure("\(warmNoop), swift worker processes, pipeline 32", noopWarm, workers: 8, jobType: "noop") {
        fairwayWorkerProcesses(pipeline: 32)
    }
    for language in ["python", "node", "php"] {
        measure("\(warmNoop), \(language) worker processes, pipeline 32", noopWarm, workers: 8) {
            libraryWorkerProcesses(language: language, pipeline: 32)
        }
    }
    // Any worker program, beside the rows above: `FAIRWAY_BENCHMARK_WORKER="node Benchmarks/scripts/floor-worker.js"`.
    if let command = ProcessInfo.processInfo.environment["FAIRWAY_BENCHMARK_WORKER"], !command.isEmpty {
        measure("\(warmNoop), FAIRWAY_BENCHMARK_WORKER worker processes, pipeline 32", noopWarm, workers: 8) {
            commandWorkerProcesses(command, pipeline: 32)
        }
    }
    // The worker libraries' examples at 8 workers; fewer no-op jobs, since interpreters are slower.
    for language in ["python", "node", "php"] {
        for load in [noop, tenMilliseconds] {
            for pipeline in [1, 8, 32] {
                measure(
                    "\(load.name) jobs, 8 workers, 8 queues, \(language) worker processes, pipeline \(pipeline)", load,
                    workers: 8, jobs: load.jobs == noop.jobs ? 16_000 : nil
                ) { libraryWorkerProcesses(language: language, pipeline: pipeline) }
            }
        }
    }
}

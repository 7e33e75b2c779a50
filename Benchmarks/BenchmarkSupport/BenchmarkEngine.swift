import FairwayJobs
import FairwayProcessWorkers
import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging

/// The engine every benchmark measures: `queues` queues named q0, q1, … with weights cycling 8, 4, 2, 1,
/// credit 32, `isolation` for all, the built-in jobs plus whatever `register` adds, and logging off.
public func benchmarkEngine(
    workers: Int = 2,
    queues: Int = 120,
    source: any JobSource,
    isolation: Isolation = .thread,
    register: (inout JobRegistry) -> Void = { _ in }
) throws -> Engine {
    var registry = JobRegistry()
    BuiltinJobs.register(in: &registry)
    register(&registry)
    var logger = Logger(label: "bench")
    logger.logLevel = .critical
    let weights: [Double] = [8, 4, 2, 1]
    return try Engine(
        configuration: EngineConfiguration(
            workers: workers,
            queues: (0..<queues).map {
                QueueDefinition(
                    name: "q\($0)", settings: QueueSettings(weight: weights[$0 % 4]), credit: 32, isolation: isolation)
            }
        ),
        registry: registry,
        sources: [source],
        processIsolation: WorkerProcesses(),
        logger: logger
    )
}

/// Worker processes that run the `fairway` binary built beside the benchmarks (or `FAIRWAY_WORKER_BINARY`):
/// build it first with `swift build -c release --scratch-path .build-benchmarks --product fairway`.
/// `pipeline` is the queue's pipeline depth (1: one job at a time).
public func fairwayWorkerProcesses(
    pipeline: Int = ProcessWorkerSettings().pipelineDepth, recycleAfterJobs: Int = 0
) -> Isolation {
    let environment = ProcessInfo.processInfo.environment
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
    let beside = URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("fairway").path
    let binary = environment["FAIRWAY_WORKER_BINARY"] ?? beside
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        fatalError(
            "no fairway binary at \(binary): run `FAIRWAY_BENCHMARKS=1 swift build -c release --scratch-path .build-benchmarks --product fairway` first"
        )
    }
    // Without the runner's malloc interposer (LD_PRELOAD), which the workers would otherwise inherit.
    return .process(
        ProcessWorkerSettings(
            command: ["/usr/bin/env", "-u", "LD_PRELOAD", binary], recycleAfterJobs: recycleAfterJobs,
            pipelineDepth: pipeline))
}

/// Worker processes running `command` (split on spaces, as a shell would a plain command line), started in the
/// repository's folder: `FAIRWAY_BENCHMARK_WORKER`'s rows, for a worker of one's own or a floor measurement
/// (Benchmarks/scripts/floor-worker.js). It is sent `sleep` jobs with `{"ms":0}`, as the examples are.
public func commandWorkerProcesses(
    _ command: String, pipeline: Int = ProcessWorkerSettings().pipelineDepth
) -> Isolation {
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let words = command.split(separator: " ").map(String.init)
    return .process(
        ProcessWorkerSettings(
            command: ["/usr/bin/env", "-u", "LD_PRELOAD"] + words, workingDirectory: repository.path,
            recycleAfterJobs: 0, pipelineDepth: pipeline))
}

/// Worker processes running a bundled worker library's example (`Workers/<language>/…`): `python`, `node`
/// or `php`. Its `sleep` job with `{"ms":0}` is that language's no-op.
public func libraryWorkerProcesses(
    language: String, pipeline: Int = ProcessWorkerSettings().pipelineDepth
) -> Isolation {
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let (program, worker) =
        switch language {
        case "python": ("python3", "Workers/python/example_worker.py")
        case "node": ("node", "Workers/node/example-worker.js")
        default: ("php", "Workers/php/examples/example_worker.php")
        }
    // The benchmark runner preloads its malloc-counting interposer (LD_PRELOAD), which the workers would
    // inherit: PHP aborts under it, and it slows every allocation of the others.
    return .process(
        ProcessWorkerSettings(
            command: ["/usr/bin/env", "-u", "LD_PRELOAD", program, repository.appendingPathComponent(worker).path],
            recycleAfterJobs: 0, pipelineDepth: pipeline))
}

import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import Logging

/// The engine every benchmark measures: `queues` queues named q0, q1, … with weights cycling 8, 4, 2, 1,
/// credit 32, the built-in jobs plus whatever `register` adds, and logging off.
public func benchmarkEngine(
    workers: Int = 2,
    queues: Int = 120,
    source: any JobSource,
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
                QueueDefinition(name: "q\($0)", settings: QueueSettings(weight: weights[$0 % 4]), credit: 32)
            }
        ),
        registry: registry,
        sources: [source],
        logger: logger
    )
}

import Benchmark
import FairwayScheduling

/// Scheduling decisions per second with every queue backlogged: one `next` and one `complete` per decision.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal],
        scalingFactor: .mega,
        maxDuration: .seconds(3),
        maxIterations: 20
    )

    for (queues, mode) in [(120, CostMode.count), (1_000, .count), (10_000, .count), (120, .time), (10_000, .time)] {
        Benchmark("decisions, \(queues) backlogged queues, \(mode) mode") { benchmark in
            var scheduler = FairScheduler(costMode: mode)
            let weights: [Double] = [8, 4, 2, 1]
            for index in 0..<queues {
                let id = scheduler.addQueue(QueueSettings(weight: weights[index % weights.count]))
                scheduler.arrived(id, count: 1 << 40, now: 0)
            }
            // Warm the heap and the cost estimates so that the measured loop is the steady state.
            for _ in 0..<(queues * 4) {
                let dispatch = scheduler.next(now: 0)!
                scheduler.complete(dispatch.queue, charge: dispatch.charge, cost: 0.001)
            }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let dispatch = scheduler.next(now: 0)!
                scheduler.complete(dispatch.queue, charge: dispatch.charge, cost: 0.001)
            }
            benchmark.stopMeasurement()
            blackHole(scheduler.virtualTime)
        }
    }
}

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

    // Groups: the same decisions through the two-level hierarchy (a group's pick, then its member's).
    for queues in [120, 10_000] {
        Benchmark("decisions, \(queues) backlogged queues in 3 groups and the top level, count mode") { benchmark in
            var scheduler = FairScheduler(costMode: .count)
            let groups = [scheduler.addGroup(weight: 1), scheduler.addGroup(weight: 4), scheduler.addGroup(weight: 8)]
            for index in 0..<queues {
                let group = index % 4 == 3 ? nil : groups[index % 4]
                let id = scheduler.addQueue(QueueSettings(weight: Double(1 + index % 3)), group: group)
                scheduler.arrived(id, count: 1 << 40, now: 0)
            }
            for _ in 0..<(queues * 4) {
                let dispatch = scheduler.next(now: 0)!
                scheduler.complete(dispatch.queue, charge: dispatch.charge)
            }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let dispatch = scheduler.next(now: 0)!
                scheduler.complete(dispatch.queue, charge: dispatch.charge)
            }
            benchmark.stopMeasurement()
            blackHole(scheduler.virtualTime)
        }
    }

    // Keys within a queue: one decision is a job taken from the key whose turn it is, its end, and a new
    // job for a key. `active` keys hold a job at any time; new keys keep arriving and idle ones retire, so
    // that 100,000 distinct keys pass through over a run (more with more iterations).
    // With 0, no keys at all: the cost every queue without keys pays.
    for active in [0, 1, 1_000, 10_000] {
        let title =
            active == 0
            ? "key decisions, a queue without keys" : "key decisions, \(active) active keys, 100,000 over the run"
        Benchmark(title) { benchmark in
            let names: [String?] = active == 0 ? [nil] : (0..<100_000).map { "tenant-\($0)" }
            var buffer = KeyFairBuffer<Int>(keyConcurrency: nil)
            var next = 0
            for _ in 0..<max(1, active) {
                buffer.append(next, key: names[next % names.count])
                next += 1
            }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let (job, key) = buffer.popNext()!
                buffer.finished(key: key)
                // The next key in turn gets a job: the one just served retires (its only job ended).
                buffer.append(job, key: names[next % names.count])
                next += 1
            }
            benchmark.stopMeasurement()
            blackHole(buffer.count)
        }
    }
}

import FairwayScheduling
import FairwayTestSupport

/// One queue of a simulated workload.
struct SimulatedQueue: CustomStringConvertible {
    var weight: Double
    /// Job run times are uniform in minCost...maxCost (seconds).
    var minCost: Double
    var maxCost: Double
    /// 0: backlogged for the whole run; otherwise jobs arrive in bursts of this size at random moments.
    var burst: Int

    var description: String {
        "w=\(weight) cost=\(minCost)...\(maxCost) burst=\(burst)"
    }
}

/// Runs the scheduler against a discrete-event model of a worker pool, and checks the fairness and
/// starvation bounds at every decision.
struct SchedulerSimulation {
    var queues: [SimulatedQueue]
    var workers: Int
    var mode: CostMode
    var decisions: Int
    var seed: UInt64

    struct Violation: CustomStringConvertible {
        var description: String
    }

    /// Pairwise bookkeeping: while both queues stay backlogged, the spread of their normalised service
    /// difference must stay within the bound.
    private struct PairWindow {
        var active = false
        var low = 0.0
        var high = 0.0
    }

    func run() -> [Violation] {
        var rng = SplitMix64(seed: seed)
        var scheduler = FairScheduler(costMode: mode)
        let ids = queues.map { scheduler.addQueue(QueueSettings(weight: $0.weight)) }
        let n = queues.count
        let globalMaxCost = queues.map(\.maxCost).max()!
        var normalised = [Double](repeating: 0, count: n)
        var othersSince = [Int](repeating: 0, count: n)
        var windows = [[PairWindow]](repeating: [PairWindow](repeating: PairWindow(), count: n), count: n)
        var violations: [Violation] = []
        var nextArrival = [Double](repeating: .infinity, count: n)
        for i in 0..<n {
            if queues[i].burst == 0 {
                scheduler.arrived(ids[i], count: 1_000_000, now: 0)
            } else {
                nextArrival[i] = Double.random(in: 0..<0.05, using: &rng)
            }
        }
        var running: [(end: Double, queue: Int, charge: Double, cost: Double)] = []
        var now = 0.0
        var made = 0

        // The bound on |Δ(S_i/w_i) − Δ(S_j/w_j)| over a window in which both stay backlogged.
        func bound(_ i: Int, _ j: Int) -> Double {
            let wi = queues[i].weight
            let wj = queues[j].weight
            switch mode {
            case .count:
                return 1 / wi + 1 / wj
            case .time:
                let own = queues[i].maxCost / wi + queues[j].maxCost / wj
                // Jobs in flight were charged an estimate; their correction comes at completion.
                let inFlight = Double(workers - 1) * globalMaxCost * (1 / wi + 1 / wj)
                return own + inFlight
            }
        }

        func observe(backlogged: [Bool]) {
            for i in 0..<n {
                for j in (i + 1)..<n {
                    guard backlogged[i] && backlogged[j] else {
                        windows[i][j].active = false
                        continue
                    }
                    let difference = normalised[i] - normalised[j]
                    if !windows[i][j].active {
                        windows[i][j] = PairWindow(active: true, low: difference, high: difference)
                    } else {
                        windows[i][j].low = min(windows[i][j].low, difference)
                        windows[i][j].high = max(windows[i][j].high, difference)
                        let spread = windows[i][j].high - windows[i][j].low
                        if spread > bound(i, j) + 1e-9 {
                            violations.append(
                                Violation(
                                    description:
                                        "decision \(made): queues \(i) (\(queues[i])) and \(j) (\(queues[j])) drifted \(spread) apart in normalised service, bound \(bound(i, j))"
                                )
                            )
                            windows[i][j].active = false
                        }
                    }
                }
            }
        }

        var wasBacklogged = [Bool](repeating: false, count: n)
        while made < decisions {
            while running.count < workers {
                let backlogged = ids.map { scheduler.ready($0) > 0 }
                for i in 0..<n where backlogged[i] && !wasBacklogged[i] {
                    othersSince[i] = 0
                }
                wasBacklogged = backlogged
                observe(backlogged: backlogged)
                guard let dispatch = scheduler.next(now: UInt64(now * 1e9)) else { break }
                let q = dispatch.queue.index
                let cost = Double.random(in: queues[q].minCost...queues[q].maxCost, using: &rng)
                normalised[q] += (mode == .count ? 1 : cost) / queues[q].weight
                if mode == .count {
                    var limit = 0
                    for k in 0..<n where k != q {
                        limit += Int((queues[k].weight / queues[q].weight + 1e-9).rounded(.down)) + 1
                    }
                    if othersSince[q] > limit {
                        violations.append(
                            Violation(
                                description:
                                    "queue \(q) (\(queues[q])) waited \(othersSince[q]) decisions, bound \(limit)")
                        )
                    }
                    for k in 0..<n where k != q && backlogged[k] {
                        othersSince[k] += 1
                    }
                }
                othersSince[q] = 0
                running.append((now + cost, q, dispatch.charge, cost))
                made += 1
            }
            let after = ids.map { scheduler.ready($0) > 0 }
            observe(backlogged: after)
            wasBacklogged = after
            // Advance to the next event: a completion or an arrival.
            let nextEnd = running.map(\.end).min() ?? .infinity
            let arrival = nextArrival.min() ?? .infinity
            guard nextEnd.isFinite || arrival.isFinite else { break }
            if nextEnd <= arrival {
                let index = running.firstIndex { $0.end == nextEnd }!
                let job = running.remove(at: index)
                now = job.end
                scheduler.complete(ids[job.queue], charge: job.charge, cost: job.cost, now: UInt64(now * 1e9))
            } else {
                let i = nextArrival.firstIndex(of: arrival)!
                now = arrival
                scheduler.arrived(ids[i], count: queues[i].burst, now: UInt64(now * 1e9))
                nextArrival[i] = now + Double.random(in: 0..<(0.02 * Double(queues[i].burst)), using: &rng)
            }
        }
        return violations
    }
}

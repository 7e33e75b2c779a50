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
    /// The index of the simulation's group the queue belongs to, or nil for the top level.
    var group: Int? = nil

    var description: String {
        "w=\(weight) cost=\(minCost)...\(maxCost) burst=\(burst)" + (group.map { " group=\($0)" } ?? "")
    }
}

/// Runs the scheduler against a discrete-event model of a worker pool, and checks the fairness and
/// starvation bounds at every decision.
struct SchedulerSimulation {
    var queues: [SimulatedQueue]
    /// The weights of the groups the queues may belong to.
    var groups: [Double] = []
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

    /// What competes at one level of the hierarchy: the top level (queues outside any group, and the
    /// groups), or the members of one group. An entity's service is its queues' service together.
    private struct Level {
        var name: String
        var entities: [[Int]]
        var weights: [Double]
        var maxCosts: [Double]
        var windows: [[PairWindow]]
        /// Scratch space for one observation, kept to allocate nothing per decision.
        var normalised: [Double]
        var active: [Bool]

        init(name: String, entities: [[Int]], weights: [Double], maxCosts: [Double]) {
            self.name = name
            self.entities = entities
            self.weights = weights
            self.maxCosts = maxCosts
            windows = Array(repeating: Array(repeating: PairWindow(), count: entities.count), count: entities.count)
            normalised = Array(repeating: 0, count: entities.count)
            active = Array(repeating: false, count: entities.count)
        }
    }

    /// The levels of the workload: the top level, then each group with more than one member.
    private func levels() -> [Level] {
        let standalone = queues.indices.filter { queues[$0].group == nil }
        let members = groups.indices.map { g in queues.indices.filter { queues[$0].group == g } }
        let used = groups.indices.filter { !members[$0].isEmpty }
        var result = [
            Level(
                name: "top level",
                entities: standalone.map { [$0] } + used.map { members[$0] },
                weights: standalone.map { queues[$0].weight } + used.map { groups[$0] },
                maxCosts: standalone.map { queues[$0].maxCost }
                    + used.map { g in
                        members[g].map { queues[$0].maxCost }.max()!
                    })
        ]
        for g in used where members[g].count > 1 {
            result.append(
                Level(
                    name: "group \(g)", entities: members[g].map { [$0] },
                    weights: members[g].map { queues[$0].weight },
                    maxCosts: members[g].map { queues[$0].maxCost }))
        }
        return result
    }

    func run() -> [Violation] {
        var rng = SplitMix64(seed: seed)
        var scheduler = FairScheduler(costMode: mode)
        let groupIDs = groups.map { scheduler.addGroup(weight: $0) }
        let ids = queues.map {
            scheduler.addQueue(QueueSettings(weight: $0.weight), group: $0.group.map { groupIDs[$0] })
        }
        let n = queues.count
        let globalMaxCost = queues.map(\.maxCost).max()!
        var service = [Double](repeating: 0, count: n)
        var othersSince = [Int](repeating: 0, count: n)
        var levels = levels()
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

        // The bound on |Δ(S_i/w_i) − Δ(S_j/w_j)| over a window in which both stay backlogged, for two
        // entities of one level with these weights and longest jobs.
        func bound(_ wi: Double, _ wj: Double, _ maxI: Double, _ maxJ: Double) -> Double {
            switch mode {
            case .count:
                return 1 / wi + 1 / wj
            case .time:
                let own = maxI / wi + maxJ / wj
                // Jobs in flight were charged an estimate; their correction comes at completion.
                let inFlight = Double(workers - 1) * globalMaxCost * (1 / wi + 1 / wj)
                return own + inFlight
            }
        }

        // One level at a time, in place (`inout`): reading `levels[l].x` in a loop copies the level each
        // time in a debug build, and that was most of the property tests' time.
        func check(_ level: inout Level, backlogged: [Bool]) {
            for e in level.entities.indices {
                var sum = 0.0
                var any = false
                for q in level.entities[e] {
                    sum += service[q]
                    any = any || backlogged[q]
                }
                level.normalised[e] = sum / level.weights[e]
                level.active[e] = any
            }
            let count = level.entities.count
            for i in 0..<count {
                for j in (i + 1)..<count {
                    guard level.active[i] && level.active[j] else {
                        level.windows[i][j].active = false
                        continue
                    }
                    let difference = level.normalised[i] - level.normalised[j]
                    guard level.windows[i][j].active else {
                        level.windows[i][j] = PairWindow(active: true, low: difference, high: difference)
                        continue
                    }
                    level.windows[i][j].low = min(level.windows[i][j].low, difference)
                    level.windows[i][j].high = max(level.windows[i][j].high, difference)
                    let spread = level.windows[i][j].high - level.windows[i][j].low
                    let limit = bound(level.weights[i], level.weights[j], level.maxCosts[i], level.maxCosts[j])
                    if spread > limit + 1e-9 {
                        violations.append(
                            Violation(
                                description:
                                    "decision \(made), \(level.name): queues \(level.entities[i]) and \(level.entities[j]) drifted \(spread) apart in normalised service, bound \(limit); \(queues)"
                            )
                        )
                        level.windows[i][j].active = false
                    }
                }
            }
        }

        func observe(backlogged: [Bool]) {
            for l in levels.indices {
                check(&levels[l], backlogged: backlogged)
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
                service[q] += mode == .count ? 1 : cost
                if mode == .count && groups.isEmpty {
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

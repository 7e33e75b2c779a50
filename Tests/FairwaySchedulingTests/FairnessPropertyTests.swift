import FairwayScheduling
import FairwayTestSupport
import PropertyBased
import Testing

/// Invariants 1 and 2 of DESIGN.md, checked over random weights, arrivals, job lengths and pool sizes.
/// The simulations keep both cores busy for about a minute: they take the machine lock, so that tests that
/// measure fairness or latency on real processes do not run beside them.
@Suite("Weighted fairness and no starvation (property-based)", .loadsMachine)
struct FairnessPropertyTests {
    static let queue = zip(
        Gen.double(in: 0.1...10),
        Gen.double(in: 0.0001...0.05),
        Gen.double(in: 1...20),
        Gen.element(of: [0, 0, 0, 1, 3, 10])
    ).map { weight, minCost, spread, burst in
        SimulatedQueue(
            weight: (weight * 10).rounded() / 10, minCost: minCost, maxCost: minCost * spread, burst: burst ?? 0)
    }

    static let workload = queue.array(of: 2...8)

    /// Queues spread at random over one to three groups and the top level.
    static let groupedWorkload = zip(queue.array(of: 2...9), Gen.double(in: 0.5...8).array(of: 1...3), Gen.uint64())
        .map { queues, weights, seed -> GroupedWorkload in
            var rng = SplitMix64(seed: seed)
            let groups = weights.map { ($0 * 2).rounded() / 2 }
            let assigned = queues.map { queue -> SimulatedQueue in
                var queue = queue
                let pick = Int.random(in: -1..<groups.count, using: &rng)
                queue.group = pick < 0 ? nil : pick
                return queue
            }
            return GroupedWorkload(queues: assigned, groups: groups)
        }

    struct GroupedWorkload: CustomStringConvertible {
        var queues: [SimulatedQueue]
        var groups: [Double]
        var description: String { "groups \(groups), queues \(queues)" }
    }

    @Test("count mode: backlogged queues stay within one job of each other, and none waits past its bound")
    func countModeFairness() async {
        await propertyCheck(count: 150, input: Self.workload, Gen.int(in: 1...4), Gen.uint64()) {
            queues, workers, seed in
            let violations = SchedulerSimulation(
                queues: queues, workers: workers, mode: .count, decisions: 1500, seed: seed
            ).run()
            #expect(violations.isEmpty, "\(violations.prefix(3))")
        }
    }

    @Test("time mode, one worker: backlogged queues stay within one maximum job cost of each other")
    func timeModeFairnessSingleWorker() async {
        await propertyCheck(count: 150, input: Self.workload, Gen.uint64()) { queues, seed in
            let violations = SchedulerSimulation(
                queues: queues, workers: 1, mode: .time, decisions: 1500, seed: seed
            ).run()
            #expect(violations.isEmpty, "\(violations.prefix(3))")
        }
    }

    @Test("time mode, several workers: within one maximum job cost plus the estimates of jobs in flight")
    func timeModeFairnessPool() async {
        await propertyCheck(count: 100, input: Self.workload, Gen.int(in: 2...4), Gen.uint64()) {
            queues, workers, seed in
            let violations = SchedulerSimulation(
                queues: queues, workers: workers, mode: .time, decisions: 1500, seed: seed
            ).run()
            #expect(violations.isEmpty, "\(violations.prefix(3))")
        }
    }

    @Test("groups, count mode: at the top level and within each group, within one job of the ideal")
    func groupedCountMode() async {
        await propertyCheck(count: 100, input: Self.groupedWorkload, Gen.int(in: 1...4), Gen.uint64()) {
            workload, workers, seed in
            let violations = SchedulerSimulation(
                queues: workload.queues, groups: workload.groups, workers: workers, mode: .count, decisions: 1500,
                seed: seed
            ).run()
            #expect(violations.isEmpty, "\(violations.prefix(3))")
        }
    }

    @Test("groups, time mode: the time-mode bound at the top level and within each group")
    func groupedTimeMode() async {
        await propertyCheck(count: 80, input: Self.groupedWorkload, Gen.int(in: 1...4), Gen.uint64()) {
            workload, workers, seed in
            let violations = SchedulerSimulation(
                queues: workload.queues, groups: workload.groups, workers: workers, mode: .time, decisions: 1500,
                seed: seed
            ).run()
            #expect(violations.isEmpty, "\(violations.prefix(3))")
        }
    }

    @Test(
        "peek names the queue next would pick, in groups or not, whatever arrived, ran, paused, was held off or ran out of tokens; a held-off queue is never picked before its hold ends, and none is lost"
    )
    func peekAgreesWithNext() async {
        await propertyCheck(count: 200, input: Gen.int(in: 1...12), Gen.uint64()) { queueCount, seed in
            var random = seed | 1
            func draw(_ bound: Int) -> Int {
                random ^= random << 13
                random ^= random >> 7
                random ^= random << 17
                return Int(random % UInt64(bound))
            }
            var scheduler = FairScheduler(costMode: draw(2) == 0 ? .count : .time)
            let groups = (0..<draw(3)).map { _ in scheduler.addGroup(weight: Double(1 + draw(8))) }
            let queues = (0..<queueCount).map { _ in
                let pick = draw(groups.count + 1)
                return scheduler.addQueue(
                    QueueSettings(
                        weight: Double(1 + draw(8)), maxConcurrency: 1 + draw(4),
                        rateLimit: draw(3) == 0 ? RateLimit(perSecond: Double(1 + draw(1_000))) : nil),
                    group: pick < groups.count ? groups[pick] : nil)
            }
            var running: [Dispatch] = []
            var now: UInt64 = 0
            for _ in 0..<400 {
                now += UInt64(draw(2_000_000))
                switch draw(5) {
                case 0: scheduler.arrived(queues[draw(queueCount)], count: 1 + draw(5), now: now)
                case 1 where !running.isEmpty:
                    let done = running.remove(at: draw(running.count))
                    scheduler.complete(done.queue, charge: done.charge, cost: Double(draw(100)) / 1_000, now: now)
                case 2:
                    let queue = queues[draw(queueCount)]
                    var settings = scheduler.settings(of: queue)
                    settings.paused = draw(3) == 0
                    scheduler.update(queue, settings: settings, now: now)
                case 3 where draw(3) == 0:
                    scheduler.holdOff(queues[draw(queueCount)], until: now + UInt64(draw(20_000_000)), now: now)
                default:
                    let peeked = scheduler.peek(now: now)
                    let picked = scheduler.next(now: now)
                    #expect(peeked == picked?.queue)
                    if let picked {
                        #expect(scheduler.heldUntil(picked.queue, now: now) == nil, "picked while held off")
                        running.append(picked)
                    }
                }
            }
            // Every hold ends: each queue's ready jobs all run, none left behind by a hold.
            for done in running { scheduler.complete(done.queue, charge: done.charge, now: now) }
            for queue in queues {
                var settings = scheduler.settings(of: queue)
                settings.paused = false
                scheduler.update(queue, settings: settings, now: now)
            }
            now += 30_000_000
            while true {
                if let picked = scheduler.next(now: now) {
                    scheduler.complete(picked.queue, charge: picked.charge, now: now)
                } else if let wake = scheduler.nextEligibleTime {
                    now = max(now, wake)
                } else {
                    break
                }
            }
            #expect(queues.allSatisfy { scheduler.ready($0) == 0 }, "a queue kept ready jobs after every hold ended")
        }
    }

    @Test("a group's share does not grow with its members: 1,000 queues of weight 1 in a group of weight 1")
    func groupShareIndependentOfMembers() {
        var scheduler = FairScheduler(costMode: .count)
        let system = scheduler.addQueue(QueueSettings(weight: 8))
        let free = scheduler.addGroup(weight: 1)
        let paid = scheduler.addGroup(weight: 4)
        let tenants = (0..<1_000).map { _ in scheduler.addQueue(QueueSettings(), group: free) }
        let vips = (0..<10).map { _ in scheduler.addQueue(QueueSettings(), group: paid) }
        for queue in [system] + tenants + vips { scheduler.arrived(queue, count: 10_000, now: 0) }
        var served = [0, 0, 0]
        for _ in 0..<13_000 {
            let dispatch = scheduler.next(now: 0)!
            let group = scheduler.group(of: dispatch.queue)
            served[group == nil ? 0 : group == free ? 1 : 2] += 1
            scheduler.complete(dispatch.queue, charge: dispatch.charge)
        }
        #expect(served == [8_000, 1_000, 4_000], "system 8, free 1, paid 4 of every 13: \(served)")
        #expect(tenants.allSatisfy { scheduler.dispatched($0) == 1 }, "the free group's 1,000 share its one 13th")
        #expect(vips.allSatisfy { scheduler.dispatched($0) == 400 })
    }

    @Test("weights 4:1 give an exact 4:1 split in count mode")
    func exactSplit() {
        var scheduler = FairScheduler(costMode: .count)
        let a = scheduler.addQueue(QueueSettings(weight: 4))
        let b = scheduler.addQueue(QueueSettings(weight: 1))
        scheduler.arrived(a, count: 100, now: 0)
        scheduler.arrived(b, count: 100, now: 0)
        var served = [0, 0]
        for _ in 0..<50 {
            let dispatch = scheduler.next(now: 0)!
            served[dispatch.queue.index] += 1
            scheduler.complete(dispatch.queue, charge: dispatch.charge)
        }
        #expect(served == [40, 10])
    }
}

import FairwayScheduling
import PropertyBased
import Testing

/// Invariants 1 and 2 of DESIGN.md, checked over random weights, arrivals, job lengths and pool sizes.
@Suite("Weighted fairness and no starvation (property-based)")
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

    @Test("peek names the queue next would pick, whatever arrived, ran, paused or ran out of tokens before")
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
            let queues = (0..<queueCount).map { _ in
                scheduler.addQueue(
                    QueueSettings(
                        weight: Double(1 + draw(8)), maxConcurrency: 1 + draw(4),
                        rateLimit: draw(3) == 0 ? RateLimit(perSecond: Double(1 + draw(1_000))) : nil))
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
                default:
                    let peeked = scheduler.peek(now: now)
                    let picked = scheduler.next(now: now)
                    #expect(peeked == picked?.queue)
                    if let picked { running.append(picked) }
                }
            }
        }
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

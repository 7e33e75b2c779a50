import FairwayScheduling
import Testing

/// Invariants 3 and 4: ineligible queues are skipped, not waited on, and re-enter without saved credit.
@Suite("Eligibility and no credit hoarding")
struct EligibilityTests {
    /// Dispatches `count` jobs, completing each at once, and returns how many each queue got.
    /// Two queues of weight 1 with `jobs` ready each.
    static func twoBacklogged(_ scheduler: inout FairScheduler, jobs: Int) -> (QueueID, QueueID) {
        let first = scheduler.addQueue(QueueSettings(weight: 1))
        let second = scheduler.addQueue(QueueSettings(weight: 1))
        scheduler.arrived(first, count: jobs, now: 0)
        scheduler.arrived(second, count: jobs, now: 0)
        return (first, second)
    }

    static func serve(_ scheduler: inout FairScheduler, _ count: Int, now: UInt64 = 0) -> [Int: Int] {
        var served: [Int: Int] = [:]
        for _ in 0..<count {
            guard let dispatch = scheduler.next(now: now) else { break }
            served[dispatch.queue.index, default: 0] += 1
            scheduler.complete(dispatch.queue, charge: dispatch.charge, now: now)
        }
        return served
    }

    @Test("a queue at max concurrency is skipped while the others keep flowing")
    func maxConcurrencySkipped() {
        var scheduler = FairScheduler()
        let capped = scheduler.addQueue(QueueSettings(weight: 100, maxConcurrency: 2))
        let other = scheduler.addQueue(QueueSettings(weight: 1))
        scheduler.arrived(capped, count: 50, now: 0)
        scheduler.arrived(other, count: 50, now: 0)
        var dispatched: [QueueID] = []
        for _ in 0..<10 {
            dispatched.append(scheduler.next(now: 0)!.queue)
        }
        #expect(dispatched.filter { $0 == capped }.count == 2)
        #expect(dispatched.filter { $0 == other }.count == 8)
        #expect(scheduler.inFlight(capped) == 2)
        #expect(!scheduler.isEligible(capped))
        scheduler.complete(capped, charge: 1)
        #expect(scheduler.next(now: 0)?.queue == capped)
    }

    @Test("a paused queue is skipped, and resumes at the current virtual time without a burst")
    func pausedSkippedAndResumedWithoutCredit() {
        var scheduler = FairScheduler()
        let paused = scheduler.addQueue(QueueSettings(weight: 1, paused: true))
        let other = scheduler.addQueue(QueueSettings(weight: 1))
        scheduler.arrived(paused, count: 1000, now: 0)
        scheduler.arrived(other, count: 1000, now: 0)
        let before = Self.serve(&scheduler, 200)
        #expect(before[paused.index] == nil)
        #expect(before[other.index] == 200)
        scheduler.update(paused, settings: QueueSettings(weight: 1), now: 0)
        #expect(scheduler.virtualTime(of: paused) >= scheduler.virtualTime)
        let after = Self.serve(&scheduler, 100)
        // Equal weights: an even split from the moment it resumed, not 200 jobs of catch-up.
        #expect(abs(after[paused.index, default: 0] - after[other.index, default: 0]) <= 2)
    }

    @Test("a queue out of rate tokens is skipped until its next token, and says when that is")
    func rateLimitedSkipped() {
        var scheduler = FairScheduler()
        let limited = scheduler.addQueue(
            QueueSettings(weight: 10, rateLimit: RateLimit(perSecond: 10, burst: 1)), now: 0)
        let other = scheduler.addQueue(QueueSettings(weight: 1))
        scheduler.arrived(limited, count: 100, now: 0)
        scheduler.arrived(other, count: 100, now: 0)
        #expect(scheduler.next(now: 0)?.queue == limited)
        // Out of tokens for 100 ms: the other queue gets every decision meanwhile.
        for _ in 0..<20 {
            let dispatch = scheduler.next(now: 50_000_000)!
            #expect(dispatch.queue == other)
            scheduler.complete(dispatch.queue, charge: dispatch.charge)
        }
        let wake = scheduler.nextEligibleTime
        #expect(wake != nil)
        #expect(wake! >= 99_000_000 && wake! <= 100_000_001)
        #expect(scheduler.next(now: 100_000_001)?.queue == limited)
    }

    @Test("a held-off queue is skipped until its hold ends, then re-enters without credit saved while held")
    func heldOffSkipped() {
        var scheduler = FairScheduler()
        let (held, other) = Self.twoBacklogged(&scheduler, jobs: 100)
        scheduler.holdOff(held, until: 1_000_000_000, now: 0)
        #expect(scheduler.heldUntil(held, now: 0) == 1_000_000_000)
        #expect(scheduler.nextEligibleTime == 1_000_000_000)
        for _ in 0..<40 {
            let dispatch = scheduler.next(now: 500_000_000)!
            #expect(dispatch.queue == other)
            scheduler.complete(dispatch.queue, charge: dispatch.charge)
        }
        scheduler.arrived(held, count: 5, now: 600_000_000)
        #expect(scheduler.next(now: 999_999_999)?.queue == other, "arrivals do not end a hold")
        #expect(scheduler.heldUntil(held, now: 1_000_000_000) == nil)
        // Back at the system's virtual time, one job behind the other queue at most: the two alternate, the
        // held one does not make up its 40 missed turns.
        var picks: [QueueID] = []
        for _ in 0..<20 {
            let dispatch = scheduler.next(now: 1_000_000_000)!
            picks.append(dispatch.queue)
            scheduler.complete(dispatch.queue, charge: dispatch.charge)
        }
        let heldPicks = picks.filter { $0 == held }.count
        #expect(heldPicks == 10 || heldPicks == 11, "\(picks)")
        #expect(scheduler.ready(held) == 105 - heldPicks)
    }

    @Test("rate limits hold over time: no more starts than rate × time + burst")
    func rateLimitHolds() {
        var scheduler = FairScheduler()
        let limited = scheduler.addQueue(QueueSettings(rateLimit: RateLimit(perSecond: 50, burst: 5)), now: 0)
        scheduler.arrived(limited, count: 10_000, now: 0)
        var started = 0
        var now: UInt64 = 0
        while now <= 2_000_000_000 {
            while let dispatch = scheduler.next(now: now) {
                started += 1
                scheduler.complete(dispatch.queue, charge: dispatch.charge, now: now)
            }
            now += 1_000_000
        }
        #expect(started <= 50 * 2 + 5 + 1)
        #expect(started >= 50 * 2)
    }

    @Test("a queue that wakes from idle starts at the current virtual time")
    func idleQueueGetsNoSavedCredit() {
        var scheduler = FairScheduler()
        let sleeper = scheduler.addQueue(QueueSettings(weight: 1))
        let busy = scheduler.addQueue(QueueSettings(weight: 1))
        scheduler.arrived(busy, count: 10_000, now: 0)
        _ = Self.serve(&scheduler, 1000)
        #expect(scheduler.virtualTime(of: sleeper) == 0)
        scheduler.arrived(sleeper, count: 1000, now: 0)
        #expect(scheduler.virtualTime(of: sleeper) >= scheduler.virtualTime)
        let after = Self.serve(&scheduler, 100)
        #expect(after[sleeper.index, default: 0] <= 51)
        #expect(after[sleeper.index, default: 0] >= 49)
    }

    @Test("a queue held at its concurrency cap re-enters at no less than the current virtual time")
    func cappedQueueReentersAtCurrentVirtualTime() {
        var scheduler = FairScheduler()
        let capped = scheduler.addQueue(QueueSettings(weight: 10, maxConcurrency: 1))
        let other = scheduler.addQueue(QueueSettings(weight: 1))
        scheduler.arrived(capped, count: 1000, now: 0)
        scheduler.arrived(other, count: 1000, now: 0)
        let held = scheduler.next(now: 0)!
        #expect(held.queue == capped)
        _ = Self.serve(&scheduler, 300)
        scheduler.complete(capped, charge: held.charge)
        #expect(scheduler.virtualTime(of: capped) >= scheduler.virtualTime)
    }

    @Test("a queue that was out of tokens re-enters at no less than the current virtual time")
    func rateLimitedQueueReentersAtCurrentVirtualTime() {
        var scheduler = FairScheduler()
        let limited = scheduler.addQueue(
            QueueSettings(weight: 10, rateLimit: RateLimit(perSecond: 1, burst: 1)), now: 0)
        let other = scheduler.addQueue(QueueSettings(weight: 1))
        scheduler.arrived(limited, count: 1000, now: 0)
        scheduler.arrived(other, count: 1000, now: 0)
        _ = Self.serve(&scheduler, 300, now: 0)
        #expect(scheduler.dispatched(limited) == 1)
        let next = scheduler.next(now: 1_000_000_001)!
        #expect(next.queue == limited)
        #expect(scheduler.virtualTime(of: limited) >= scheduler.virtualTime)
        // One token, one job: no burst of saved-up service.
        scheduler.complete(next.queue, charge: next.charge)
        #expect(scheduler.next(now: 1_000_000_002)?.queue == other)
    }

    @Test("reweighting takes effect from the next decision")
    func reweightWithinOneDecision() {
        var scheduler = FairScheduler()
        let (a, _) = Self.twoBacklogged(&scheduler, jobs: 10_000)
        let even = Self.serve(&scheduler, 100)
        #expect(even[a.index] == 50)
        scheduler.update(a, settings: QueueSettings(weight: 3), now: 0)
        let after = Self.serve(&scheduler, 400)
        // 3:1 from the change on, give or take the one decision in progress.
        #expect(abs(after[a.index, default: 0] - 300) <= 2)
    }

    @Test("withdrawn jobs leave the queue without being dispatched")
    func withdraw() {
        var scheduler = FairScheduler()
        let a = scheduler.addQueue(QueueSettings())
        scheduler.arrived(a, count: 3, now: 0)
        scheduler.withdrew(a, count: 3, now: 0)
        #expect(scheduler.next(now: 0) == nil)
        #expect(!scheduler.hasEligibleQueue)
    }

    @Test("time mode charges the queue's measured average and corrects it at completion")
    func timeModeEstimateAndCorrection() {
        var scheduler = FairScheduler(costMode: .time, initialCostEstimate: 0.001)
        let a = scheduler.addQueue(QueueSettings(weight: 2))
        scheduler.arrived(a, count: 10, now: 0)
        let first = scheduler.next(now: 0)!
        #expect(first.charge == 0.001)
        scheduler.complete(a, charge: first.charge, cost: 0.010)
        #expect(abs(scheduler.virtualTime(of: a) - 0.005) < 1e-12)
        #expect(scheduler.costEstimate(of: a) == 0.010)
    }

    @Test("time mode shares worker-seconds: a queue of long jobs gets fewer jobs, the same time")
    func timeModeSharesWorkerTime() {
        var scheduler = FairScheduler(costMode: .time)
        let long = scheduler.addQueue(QueueSettings(weight: 1))
        let short = scheduler.addQueue(QueueSettings(weight: 1))
        scheduler.arrived(long, count: 100_000, now: 0)
        scheduler.arrived(short, count: 100_000, now: 0)
        var time = [0.0, 0.0]
        var jobs = [0, 0]
        for _ in 0..<20_000 {
            let dispatch = scheduler.next(now: 0)!
            let cost = dispatch.queue == long ? 0.010 : 0.001
            time[dispatch.queue.index] += cost
            jobs[dispatch.queue.index] += 1
            scheduler.complete(dispatch.queue, charge: dispatch.charge, cost: cost)
        }
        #expect(abs(time[0] - time[1]) <= 0.010 + 0.001)
        #expect(jobs[1] > 9 * jobs[0])
    }
}

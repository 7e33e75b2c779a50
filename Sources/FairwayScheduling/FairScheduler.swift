/// Weighted fair queueing over any number of queues by virtual time (start-time fair queueing).
///
/// Each queue carries a virtual time. ``next(now:)`` picks the eligible queue with work and the smallest
/// virtual time, and advances that queue's virtual time by the job's cost divided by its weight. So among
/// queues that stay backlogged, each receives service in proportion to its weight, at most one job (count
/// mode) or one maximum job cost (time mode) away from its ideal share, and every queue with weight above
/// zero is reached within a bounded number of decisions.
///
/// A queue that becomes active (it had no work, or was paused, at its concurrency cap or out of rate
/// tokens) re-enters at no less than the scheduler's current virtual time, so it cannot spend credit saved
/// while it was not competing.
///
/// Queues may belong to a group with a weight of its own (two-level hierarchical fair queueing): at the
/// top level the groups and the queues outside any group compete by their weights, each group carrying
/// its own virtual time; within a group its backlogged members share what the group gets by theirs. So
/// a thousand queues of weight 1 in a group of weight 1 get, together, what one queue of weight 1
/// outside it gets, however many of them are active. The bound above holds at each level.
///
/// The scheduler keeps counts, not jobs, and reads no clock: callers pass `now` (monotonic nanoseconds),
/// which only rate limits use. It is a value type with no locking; its owner serialises access.
/// Each decision is O(log n) in the number of active queues and allocates nothing in steady state.
public struct FairScheduler: Sendable {
    /// What the scheduler tracks for one queue.
    struct QueueState: Sendable {
        var settings: QueueSettings
        var inverseWeight: Double
        var virtualTime: Double = 0
        var ready: Int = 0
        var inFlight: Int = 0
        var bucket: TokenBucket?
        var averageCost: Double = 0
        var costSamples: Int = 0
        var dispatched: UInt64 = 0
        /// The group the queue belongs to, or nil.
        var group: Int?
        /// Before this instant (monotonic nanoseconds) the queue is not picked: see ``holdOff(_:until:now:)``.
        var heldUntil: UInt64 = 0

        var wantsService: Bool {
            !settings.paused && ready > 0 && inFlight < settings.maxConcurrency
        }
    }

    /// What the scheduler tracks for one group of queues.
    struct GroupState: Sendable {
        var weight: Double
        var inverseWeight: Double
        /// The group's virtual time at the top level.
        var virtualTime: Double = 0
        /// The virtual time within the group: the largest start tag of a member dispatched so far.
        var innerVirtualTime: Double = 0
        /// Members that want service and hold a rate token, keyed by their virtual time within the group.
        var members = IndexedMinHeap<Double>()
    }

    public let costMode: CostMode
    private var queues: [QueueState] = []
    private var groups: [GroupState] = []
    /// What competes at the top level and may be picked now: queues outside any group that want service
    /// and hold a rate token (member 2 × queue), and groups with such a member (member 2 × group + 1),
    /// keyed by virtual time.
    private var eligible = IndexedMinHeap<Double>()
    /// Queues that want service but may not be picked before an instant, keyed by it: a rate token's arrival,
    /// or the end of a hold-off.
    private var waitingForTime = IndexedMinHeap<UInt64>()
    /// The virtual time of the system: the largest start tag dispatched so far.
    public private(set) var virtualTime: Double = 0
    /// The average measured cost over all queues: the estimate for a queue with no samples yet.
    private var globalAverageCost: Double
    private var globalCostSamples: Int = 0

    /// The weight given to the newest sample in the running average of a queue's job cost.
    static let costSmoothing = 0.2

    /// - Parameters:
    ///   - costMode: count jobs, or measure worker-seconds.
    ///   - initialCostEstimate: in time mode, the charge (seconds) for a job of a queue never measured yet.
    public init(costMode: CostMode = .count, initialCostEstimate: Double = 0.001) {
        self.costMode = costMode
        self.globalAverageCost = initialCostEstimate
    }

    // MARK: - Queues

    /// The number of queues added so far.
    public var queueCount: Int { queues.count }

    /// Adds a queue, in `group` or at the top level, and returns its identifier. Identifiers are dense,
    /// starting at 0.
    public mutating func addQueue(_ settings: QueueSettings, group: GroupID? = nil, now: UInt64 = 0) -> QueueID {
        let id = queues.count
        var state = QueueState(settings: settings, inverseWeight: 1 / settings.weight)
        state.group = group?.index
        state.virtualTime = group.map { groups[$0.index].innerVirtualTime } ?? virtualTime
        if let limit = settings.rateLimit {
            state.bucket = TokenBucket(limit: limit, now: now)
        }
        queues.append(state)
        if let group {
            groups[group.index].members.reserve(members: id + 1)
        } else {
            eligible.reserve(members: 2 * id + 1)
        }
        waitingForTime.reserve(members: queues.count)
        return QueueID(id)
    }

    /// The number of groups added so far.
    public var groupCount: Int { groups.count }

    /// Adds a group of queues with a weight (above zero) and returns its identifier, dense from 0.
    public mutating func addGroup(weight: Double) -> GroupID {
        precondition(weight > 0 && weight.isFinite, "a group's weight must be above zero")
        groups.append(GroupState(weight: weight, inverseWeight: 1 / weight, virtualTime: virtualTime))
        return GroupID(groups.count - 1)
    }

    /// Changes a group's weight. Takes effect from the group's next dispatch.
    public mutating func updateGroup(_ group: GroupID, weight: Double) {
        precondition(weight > 0 && weight.isFinite, "a group's weight must be above zero")
        groups[group.index].weight = weight
        groups[group.index].inverseWeight = 1 / weight
    }

    /// A group's weight.
    public func weight(of group: GroupID) -> Double { groups[group.index].weight }

    /// The group a queue belongs to, or nil.
    public func group(of queue: QueueID) -> GroupID? { queues[queue.index].group.map(GroupID.init) }

    /// The settings a queue runs with now.
    public func settings(of queue: QueueID) -> QueueSettings {
        queues[queue.index].settings
    }

    /// Changes a queue's weight, limits or pause state. Takes effect from the next decision.
    public mutating func update(_ queue: QueueID, settings: QueueSettings, now: UInt64) {
        let i = queue.index
        queues[i].settings = settings
        queues[i].inverseWeight = 1 / settings.weight
        if let limit = settings.rateLimit {
            if queues[i].bucket == nil {
                queues[i].bucket = TokenBucket(limit: limit, now: now)
            } else {
                queues[i].bucket!.change(to: limit, now: now)
            }
        } else {
            queues[i].bucket = nil
        }
        // Re-place the queue from scratch: limits may have made it (in)eligible.
        removeEligible(i)
        waitingForTime.remove(i)
        place(i, now: now)
    }

    // MARK: - Work arriving and leaving

    /// Records `count` jobs of `queue` now ready to run (buffered locally by the caller).
    public mutating func arrived(_ queue: QueueID, count: Int = 1, now: UInt64) {
        precondition(count >= 0)
        let i = queue.index
        queues[i].ready += count
        if !isEligible(i) && !waitingForTime.contains(i) {
            place(i, now: now)
        }
    }

    /// Records `count` ready jobs of `queue` that left without running (released back to their source).
    public mutating func withdrew(_ queue: QueueID, count: Int = 1, now: UInt64) {
        let i = queue.index
        precondition(count >= 0 && count <= queues[i].ready, "withdrawing more jobs than are ready")
        queues[i].ready -= count
        if !queues[i].wantsService {
            removeEligible(i)
            waitingForTime.remove(i)
        }
    }

    // MARK: - Decisions

    /// Picks the queue whose next job should run now, or nil when no queue is eligible.
    /// The caller must start one job of the returned queue and later report it with ``complete(_:charge:cost:)``.
    public mutating func next(now: UInt64) -> Dispatch? {
        if !waitingForTime.isEmpty {
            releaseQueuesDue(now: now)
        }
        guard let (entry, start) = eligible.min else { return nil }
        if start > virtualTime { virtualTime = start }
        guard entry & 1 == 1 else {
            let i = entry >> 1
            let charge = costMode == .count ? 1 : estimatedCost(i)
            switch Self.startJob(&queues[i], start: start, charge: charge) {
            case .stays(let key):
                eligible.raiseMinimum(to: key)
            case .leaves:
                eligible.remove(entry)
            case .waitsForToken(let due):
                eligible.remove(entry)
                waitingForTime.insert(i, key: due)
            }
            return Dispatch(queue: QueueID(i), charge: charge)
        }
        // A group: its member with the smallest virtual time within it starts, and the group is charged
        // at the top level by its own weight.
        let g = entry >> 1
        let (i, innerStart) = groups[g].members.min!
        let charge = costMode == .count ? 1 : estimatedCost(i)
        if innerStart > groups[g].innerVirtualTime { groups[g].innerVirtualTime = innerStart }
        switch Self.startJob(&queues[i], start: innerStart, charge: charge) {
        case .stays(let key):
            groups[g].members.raiseMinimum(to: key)
        case .leaves:
            groups[g].members.remove(i)
        case .waitsForToken(let due):
            groups[g].members.remove(i)
            waitingForTime.insert(i, key: due)
        }
        groups[g].virtualTime = start + charge * groups[g].inverseWeight
        if groups[g].members.isEmpty {
            eligible.remove(entry)
        } else {
            eligible.raiseMinimum(to: groups[g].virtualTime)
        }
        return Dispatch(queue: QueueID(i), charge: charge)
    }

    /// The queue ``next(now:)`` would pick now, without picking it; nil when no queue is eligible. Lets a
    /// caller that can only take some queues' jobs (a worker process of one pool) see whether the next job
    /// in fair order is one of them, and leave it to others when it is not.
    public mutating func peek(now: UInt64) -> QueueID? {
        if !waitingForTime.isEmpty {
            releaseQueuesDue(now: now)
        }
        guard let entry = eligible.min?.member else { return nil }
        return QueueID(entry & 1 == 0 ? entry >> 1 : groups[entry >> 1].members.min!.member)
    }

    /// Where a queue belongs after one of its jobs started.
    private enum Placement {
        case stays(key: Double)
        case leaves
        case waitsForToken(due: UInt64)
    }

    /// Updates a queue for a job that starts now, in one exclusive access to its state.
    @inline(__always)
    private static func startJob(_ queue: inout QueueState, start: Double, charge: Double) -> Placement {
        queue.ready -= 1
        queue.inFlight += 1
        queue.dispatched &+= 1
        queue.virtualTime = start + charge * queue.inverseWeight
        if queue.bucket != nil {
            queue.bucket!.take()
        }
        guard queue.wantsService else { return .leaves }
        if let bucket = queue.bucket, bucket.tokens < 1 {
            return .waitsForToken(due: bucket.nextTokenTime())
        }
        return .stays(key: queue.virtualTime)
    }

    /// Records that a dispatched job ended. In time mode `cost` is its measured run time in seconds; the
    /// queue's virtual time is corrected by the difference from what was charged at dispatch.
    public mutating func complete(_ queue: QueueID, charge: Double, cost: Double = 1, now: UInt64 = 0) {
        let i = queue.index
        precondition(queues[i].inFlight > 0, "completing a job that was not dispatched")
        queues[i].inFlight -= 1
        if costMode == .time {
            let measured = max(0, cost)
            queues[i].virtualTime += (measured - charge) * queues[i].inverseWeight
            recordCost(i, measured)
            if let g = queues[i].group {
                if groups[g].members.contains(i) { groups[g].members.update(i, key: queues[i].virtualTime) }
                groups[g].virtualTime += (measured - charge) * groups[g].inverseWeight
                if eligible.contains(2 * g + 1) { eligible.update(2 * g + 1, key: groups[g].virtualTime) }
            } else if eligible.contains(2 * i) {
                eligible.update(2 * i, key: queues[i].virtualTime)
            }
        }
        if !isEligible(i) && !waitingForTime.contains(i) {
            place(i, now: now)
        }
    }

    /// The instant (monotonic nanoseconds) at which a queue now waiting for a rate token gets one, or for
    /// the end of its hold-off reaches it, or nil when none waits. A caller with idle workers sleeps until
    /// then, not in a polling loop.
    public var nextEligibleTime: UInt64? {
        waitingForTime.min?.key
    }

    /// Keeps `queue` from being picked before `until` (monotonic nanoseconds), its ready jobs still counted
    /// and still arriving: for a queue whose jobs cannot run for now (the program that runs them cannot
    /// start), so that they wait rather than fail. When the hold ends the queue re-enters at no less than
    /// the system's virtual time, as any queue that becomes active does: it saves no credit while held. A
    /// later hold replaces an earlier one; a hold that has ended is no hold.
    public mutating func holdOff(_ queue: QueueID, until: UInt64, now: UInt64) {
        let i = queue.index
        queues[i].heldUntil = until
        removeEligible(i)
        waitingForTime.remove(i)
        place(i, now: now)
    }

    /// The instant before which `queue` is not picked, if it is held off now.
    public func heldUntil(_ queue: QueueID, now: UInt64) -> UInt64? {
        let until = queues[queue.index].heldUntil
        return until > now ? until : nil
    }

    // MARK: - Inspection

    /// Jobs of `queue` ready and not yet dispatched.
    public func ready(_ queue: QueueID) -> Int { queues[queue.index].ready }
    /// Jobs of `queue` dispatched and not yet completed.
    public func inFlight(_ queue: QueueID) -> Int { queues[queue.index].inFlight }
    /// Jobs of `queue` dispatched since it was added.
    public func dispatched(_ queue: QueueID) -> UInt64 { queues[queue.index].dispatched }
    /// The virtual time at which the next job of `queue` would start.
    public func virtualTime(of queue: QueueID) -> Double { queues[queue.index].virtualTime }
    /// The cost (seconds) charged at dispatch for the next job of `queue` in time mode.
    public func costEstimate(of queue: QueueID) -> Double { estimatedCost(queue.index) }
    /// Whether `queue` could be picked now: it has ready work and is neither paused, at its cap nor out of tokens.
    public func isEligible(_ queue: QueueID) -> Bool { isEligible(queue.index) }
    /// Whether any queue could be picked now.
    public var hasEligibleQueue: Bool { !eligible.isEmpty }

    // MARK: - Internals

    /// Puts a queue that is in neither heap where it belongs, re-entering at no less than the system's
    /// virtual time so that no credit is saved while it was not competing.
    private mutating func place(_ i: Int, now: UInt64) {
        guard queues[i].wantsService else { return }
        if queues[i].heldUntil > now {
            waitingForTime.insert(i, key: queues[i].heldUntil)
            return
        }
        if queues[i].bucket != nil && !queues[i].bucket!.hasToken(now: now) {
            waitingForTime.insert(i, key: queues[i].bucket!.nextTokenTime())
            return
        }
        guard let g = queues[i].group else {
            if queues[i].virtualTime < virtualTime {
                queues[i].virtualTime = virtualTime
            }
            eligible.insert(2 * i, key: queues[i].virtualTime)
            return
        }
        // Within its group a queue re-enters at no less than the group's virtual time; a group that
        // becomes active re-enters the top level at no less than the system's.
        if queues[i].virtualTime < groups[g].innerVirtualTime {
            queues[i].virtualTime = groups[g].innerVirtualTime
        }
        groups[g].members.insert(i, key: queues[i].virtualTime)
        if !eligible.contains(2 * g + 1) {
            if groups[g].virtualTime < virtualTime {
                groups[g].virtualTime = virtualTime
            }
            eligible.insert(2 * g + 1, key: groups[g].virtualTime)
        }
    }

    /// Whether a queue is where the next decision may pick it: at the top level or in its group.
    private func isEligible(_ i: Int) -> Bool {
        guard let g = queues[i].group else { return eligible.contains(2 * i) }
        return groups[g].members.contains(i)
    }

    /// Takes a queue out of the eligible ones, and its group with it when it was the group's last.
    private mutating func removeEligible(_ i: Int) {
        guard let g = queues[i].group else {
            eligible.remove(2 * i)
            return
        }
        groups[g].members.remove(i)
        if groups[g].members.isEmpty { eligible.remove(2 * g + 1) }
    }

    private mutating func releaseQueuesDue(now: UInt64) {
        while let (i, due) = waitingForTime.min, due <= now {
            waitingForTime.remove(i)
            place(i, now: now)
        }
    }

    private func estimatedCost(_ i: Int) -> Double {
        queues[i].costSamples > 0 ? queues[i].averageCost : globalAverageCost
    }

    private mutating func recordCost(_ i: Int, _ cost: Double) {
        let alpha = Self.costSmoothing
        if queues[i].costSamples == 0 {
            queues[i].averageCost = cost
        } else {
            queues[i].averageCost += alpha * (cost - queues[i].averageCost)
        }
        queues[i].costSamples &+= 1
        if globalCostSamples == 0 {
            globalAverageCost = cost
        } else {
            globalAverageCost += alpha * (cost - globalAverageCost)
        }
        globalCostSamples &+= 1
    }
}

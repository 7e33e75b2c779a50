import DequeModule

/// The jobs one queue holds, shared fairly among their fairness keys (tenants): the level below
/// ``FairScheduler``. The scheduler decides which queue runs next; this decides which key of that queue.
///
/// Keys share the queue's service by job count in proportion to their weights (1 unless the override table
/// says otherwise), by start-time fair queueing, the rule the scheduler uses between queues: a key that has
/// been waiting is served within one job of every other key that has work, however deep their backlogs. A
/// key may be capped at `keyConcurrency` jobs running at once; a capped key's held jobs are not ready until
/// one of its jobs finishes (``readyCount`` excludes them, so the scheduler never picks a queue that has
/// nothing it may start).
///
/// Jobs without a key form one more key of their own (nil). A key's state lives while it holds or runs a
/// job, and after that only until the queue's virtual time passes the key's last finish tag (forgetting it
/// sooner would let a key whose jobs come one at a time be served again at the same virtual time, ahead of
/// keys with a backlog): memory follows the active keys, not every key ever seen.
public struct KeyFairBuffer<Element: Sendable>: Sendable {
    @usableFromInline
    struct Flow: Sendable {
        @usableFromInline var key: String?
        @usableFromInline var inverseWeight: Double
        /// Virtual finish time of the flow's last dispatched job.
        @usableFromInline var finish: Double
        @usableFromInline var held: Deque<Element> = []
        @usableFromInline var running = 0
        /// Idle, kept only until the virtual time passes `finish`.
        @usableFromInline var lingering = false

        @inlinable
        init(key: String?, inverseWeight: Double, finish: Double) {
            self.key = key
            self.inverseWeight = inverseWeight
            self.finish = finish
        }
    }

    /// Slot 0 is the jobs without a key and is never retired; the others are reused as keys come and go.
    @usableFromInline var flows: [Flow?]
    @usableFromInline var slotOfKey: [String: Int] = [:]
    @usableFromInline var freeSlots: [Int] = []
    /// Flows with held jobs and room under the cap, by the start tag of their next job.
    @usableFromInline var eligible = IndexedMinHeap<Double>()
    @usableFromInline var virtualTime: Double = 0
    /// Idle flows kept for their finish tags (and flows since reactivated, skipped when swept).
    @usableFromInline var lingering: [Int] = []
    @usableFromInline var lingeringNow = 0
    @usableFromInline var sweepAt = 16
    @usableFromInline let weights: [String: Double]
    /// The most jobs of one key running at once, or nil.
    public let keyConcurrency: Int?

    /// Jobs held, ready or not.
    @inlinable public var count: Int { heldCount }
    /// Held jobs that may start now: those of keys under their cap.
    @inlinable public var readyCount: Int { readyHeld }
    @usableFromInline var heldCount = 0
    @usableFromInline var readyHeld = 0

    /// - Parameters:
    ///   - keyWeights: weights of particular keys (positive); every other key weighs 1.
    ///   - keyConcurrency: the most jobs of one key running at once (at least 1), or nil for no cap.
    @inlinable public init(keyWeights: [String: Double] = [:], keyConcurrency: Int? = nil) {
        self.weights = keyWeights.filter { $0.value > 0 && $0.value.isFinite }
        self.keyConcurrency = keyConcurrency.map { max(1, $0) }
        self.flows = [Flow(key: nil, inverseWeight: 1, finish: 0)]
    }

    @inlinable public var isEmpty: Bool { count == 0 }

    /// Keys with jobs held or running (the jobs without a key count as one when they have any).
    @inlinable public var activeKeys: Int {
        slotOfKey.count - lingeringNow + (flows[0]!.held.isEmpty && flows[0]!.running == 0 ? 0 : 1)
    }

    /// Adds a job of `key` (nil: no key) behind the others of its key.
    @inlinable public mutating func append(_ element: Element, key: String?) {
        if key == nil && slotOfKey.isEmpty {
            // Only jobs without a key: a plain queue, no turns to keep.
            flows[0]!.held.append(element)
            heldCount += 1
            if mayRun(0) { readyHeld += 1 }
            return
        }
        let slot = self.slot(for: key)
        flows[slot]!.held.append(element)
        heldCount += 1
        if mayRun(slot) {
            readyHeld += 1
            if !eligible.contains(slot) {
                eligible.insert(slot, key: max(virtualTime, flows[slot]!.finish))
            }
        }
    }

    /// The job ``popNext()`` would return, without taking it.
    @inlinable public var next: Element? {
        if slotOfKey.isEmpty { return readyCount > 0 ? flows[0]!.held.first : nil }
        guard let slot = eligible.min?.member else { return nil }
        return flows[slot]!.held.first
    }

    /// Takes the next job to start, the oldest of the key whose turn it is, and counts it running under
    /// its key until ``finished(key:)``. Nil when no held job may start.
    @inlinable public mutating func popNext() -> (element: Element, key: String?)? {
        if slotOfKey.isEmpty { return popUnkeyed() }
        guard let (slot, start) = eligible.min else { return nil }
        virtualTime = start
        if lingering.count >= sweepAt { sweepLingering() }
        let element = flows[slot]!.held.removeFirst()
        flows[slot]!.running += 1
        flows[slot]!.finish = start + flows[slot]!.inverseWeight
        heldCount -= 1
        readyHeld -= 1
        if flows[slot]!.held.isEmpty {
            eligible.remove(slot)
        } else if mayRun(slot) {
            eligible.update(slot, key: flows[slot]!.finish)
        } else {
            eligible.remove(slot)
            readyHeld -= flows[slot]!.held.count
        }
        return (element, flows[slot]!.key)
    }

    /// ``popNext()`` while every job is without a key: the first held one, with no heap to keep.
    @inlinable mutating func popUnkeyed() -> (element: Element, key: String?)? {
        guard readyCount > 0 else { return nil }
        let start = max(virtualTime, flows[0]!.finish)
        virtualTime = start
        let element = flows[0]!.held.removeFirst()
        flows[0]!.running += 1
        flows[0]!.finish = start + 1
        heldCount -= 1
        readyHeld -= 1
        if !mayRun(0) { readyHeld -= flows[0]!.held.count }
        return (element, nil)
    }

    /// Records that a job taken by ``popNext()`` under `key` ended, freeing its place under the cap.
    @inlinable public mutating func finished(key: String?) {
        let found = key.map { slotOfKey[$0] } ?? 0
        guard let slot = found, flows[slot]!.running > 0 else { return }
        let wasCapped = !mayRun(slot)
        flows[slot]!.running -= 1
        if wasCapped && !flows[slot]!.held.isEmpty {
            readyHeld += flows[slot]!.held.count
            if !slotOfKey.isEmpty {
                eligible.insert(slot, key: max(virtualTime, flows[slot]!.finish))
            }
        }
        retireIfIdle(slot)
    }

    /// Removes the held jobs `predicate` selects and returns them, oldest of each key first.
    @inlinable public mutating func removeAll(where predicate: (Element) -> Bool) -> [Element] {
        var removed: [Element] = []
        for slot in flows.indices where flows[slot]?.held.isEmpty == false {
            let before = flows[slot]!.held.count
            var kept: Deque<Element> = []
            for element in flows[slot]!.held {
                if predicate(element) { removed.append(element) } else { kept.append(element) }
            }
            guard kept.count != before else { continue }
            flows[slot]!.held = kept
            heldCount -= before - kept.count
            if mayRun(slot) {
                readyHeld -= before - kept.count
                if kept.isEmpty { eligible.remove(slot) }
            }
            retireIfIdle(slot)
        }
        return removed
    }

    /// The first held job of each key, in no particular order (the oldest of the queue is among them).
    @inlinable public var heads: [Element] {
        flows.compactMap { $0?.held.first }
    }

    // MARK: - Internals

    @inlinable func mayRun(_ slot: Int) -> Bool {
        guard let cap = keyConcurrency else { return true }
        return flows[slot]!.running < cap
    }

    @inlinable mutating func slot(for key: String?) -> Int {
        guard let key else { return 0 }
        if let slot = slotOfKey[key] {
            if flows[slot]!.lingering {
                flows[slot]!.lingering = false
                lingeringNow -= 1
            }
            return slot
        }
        if slotOfKey.isEmpty && !flows[0]!.held.isEmpty && mayRun(0) {
            // The first key: the jobs without one start taking turns with it.
            eligible.insert(0, key: max(virtualTime, flows[0]!.finish))
        }
        let flow = Flow(key: key, inverseWeight: 1 / (weights[key] ?? 1), finish: virtualTime)
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            flows[slot] = flow
        } else {
            slot = flows.count
            flows.append(flow)
        }
        slotOfKey[key] = slot
        return slot
    }

    @inlinable mutating func retireIfIdle(_ slot: Int) {
        guard slot != 0, let flow = flows[slot], flow.held.isEmpty, flow.running == 0, !flow.lingering else { return }
        guard flow.finish <= virtualTime else {
            flows[slot]!.lingering = true
            lingeringNow += 1
            lingering.append(slot)
            return
        }
        forget(slot)
    }

    /// Drops an idle flow's state; when it was the last key, the jobs without one stop taking turns.
    @inlinable mutating func forget(_ slot: Int) {
        slotOfKey[flows[slot]!.key!] = nil
        flows[slot] = nil
        freeSlots.append(slot)
        if slotOfKey.isEmpty { eligible.remove(0) }
    }

    /// Forgets the idle flows the virtual time has passed; runs when the list doubled since the last sweep.
    @inlinable mutating func sweepLingering() {
        var kept: [Int] = []
        for slot in lingering {
            guard let flow = flows[slot], flow.lingering else { continue }
            if flow.finish <= virtualTime {
                forget(slot)
                lingeringNow -= 1
            } else {
                kept.append(slot)
            }
        }
        lingering = kept
        sweepAt = max(16, 2 * kept.count)
    }
}

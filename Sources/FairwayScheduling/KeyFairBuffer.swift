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
    struct Flow: Sendable {
        var key: String?
        var inverseWeight: Double
        /// Virtual finish time of the flow's last dispatched job.
        var finish: Double
        var held: Deque<Element> = []
        var running = 0
        /// Idle, kept only until the virtual time passes `finish`.
        var lingering = false
    }

    /// Slot 0 is the jobs without a key and is never retired; the others are reused as keys come and go.
    private var flows: [Flow?]
    private var slotOfKey: [String: Int] = [:]
    private var freeSlots: [Int] = []
    /// Flows with held jobs and room under the cap, by the start tag of their next job.
    private var eligible = IndexedMinHeap<Double>()
    private var virtualTime: Double = 0
    /// Idle flows kept for their finish tags (and flows since reactivated, skipped when swept).
    private var lingering: [Int] = []
    private var lingeringNow = 0
    private var sweepAt = 16
    private let weights: [String: Double]
    /// The most jobs of one key running at once, or nil.
    public let keyConcurrency: Int?

    /// Jobs held, ready or not.
    public private(set) var count = 0
    /// Held jobs that may start now: those of keys under their cap.
    public private(set) var readyCount = 0

    /// - Parameters:
    ///   - keyWeights: weights of particular keys (positive); every other key weighs 1.
    ///   - keyConcurrency: the most jobs of one key running at once (at least 1), or nil for no cap.
    public init(keyWeights: [String: Double] = [:], keyConcurrency: Int? = nil) {
        self.weights = keyWeights.filter { $0.value > 0 && $0.value.isFinite }
        self.keyConcurrency = keyConcurrency.map { max(1, $0) }
        self.flows = [Flow(key: nil, inverseWeight: 1, finish: 0)]
    }

    public var isEmpty: Bool { count == 0 }

    /// Keys with jobs held or running (the jobs without a key count as one when they have any).
    public var activeKeys: Int {
        slotOfKey.count - lingeringNow + (flows[0]!.held.isEmpty && flows[0]!.running == 0 ? 0 : 1)
    }

    /// Adds a job of `key` (nil: no key) behind the others of its key.
    public mutating func append(_ element: Element, key: String?) {
        let slot = self.slot(for: key)
        flows[slot]!.held.append(element)
        count += 1
        if mayRun(slot) {
            readyCount += 1
            if !eligible.contains(slot) {
                eligible.insert(slot, key: max(virtualTime, flows[slot]!.finish))
            }
        }
    }

    /// The job ``popNext()`` would return, without taking it.
    public var next: Element? {
        guard let slot = eligible.min?.member else { return nil }
        return flows[slot]!.held.first
    }

    /// Takes the next job to start, the oldest of the key whose turn it is, and counts it running under
    /// its key until ``finished(key:)``. Nil when no held job may start.
    public mutating func popNext() -> (element: Element, key: String?)? {
        guard let (slot, start) = eligible.min else { return nil }
        virtualTime = start
        if lingering.count >= sweepAt { sweepLingering() }
        let element = flows[slot]!.held.removeFirst()
        flows[slot]!.running += 1
        flows[slot]!.finish = start + flows[slot]!.inverseWeight
        count -= 1
        readyCount -= 1
        if flows[slot]!.held.isEmpty {
            eligible.remove(slot)
        } else if mayRun(slot) {
            eligible.update(slot, key: flows[slot]!.finish)
        } else {
            eligible.remove(slot)
            readyCount -= flows[slot]!.held.count
        }
        return (element, flows[slot]!.key)
    }

    /// Records that a job taken by ``popNext()`` under `key` ended, freeing its place under the cap.
    public mutating func finished(key: String?) {
        let found = key.map { slotOfKey[$0] } ?? 0
        guard let slot = found, flows[slot]!.running > 0 else { return }
        let wasCapped = !mayRun(slot)
        flows[slot]!.running -= 1
        if wasCapped && !flows[slot]!.held.isEmpty {
            readyCount += flows[slot]!.held.count
            eligible.insert(slot, key: max(virtualTime, flows[slot]!.finish))
        }
        retireIfIdle(slot)
    }

    /// Removes the held jobs `predicate` selects and returns them, oldest of each key first.
    public mutating func removeAll(where predicate: (Element) -> Bool) -> [Element] {
        var removed: [Element] = []
        for slot in flows.indices where flows[slot]?.held.isEmpty == false {
            let before = flows[slot]!.held.count
            var kept: Deque<Element> = []
            for element in flows[slot]!.held {
                if predicate(element) { removed.append(element) } else { kept.append(element) }
            }
            guard kept.count != before else { continue }
            flows[slot]!.held = kept
            count -= before - kept.count
            if mayRun(slot) {
                readyCount -= before - kept.count
                if kept.isEmpty { eligible.remove(slot) }
            }
            retireIfIdle(slot)
        }
        return removed
    }

    /// The first held job of each key, in no particular order (the oldest of the queue is among them).
    public var heads: [Element] {
        flows.compactMap { $0?.held.first }
    }

    // MARK: - Internals

    private func mayRun(_ slot: Int) -> Bool {
        guard let cap = keyConcurrency else { return true }
        return flows[slot]!.running < cap
    }

    private mutating func slot(for key: String?) -> Int {
        guard let key else { return 0 }
        if let slot = slotOfKey[key] {
            if flows[slot]!.lingering {
                flows[slot]!.lingering = false
                lingeringNow -= 1
            }
            return slot
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

    private mutating func retireIfIdle(_ slot: Int) {
        guard slot != 0, let flow = flows[slot], flow.held.isEmpty, flow.running == 0, !flow.lingering else { return }
        guard flow.finish <= virtualTime else {
            flows[slot]!.lingering = true
            lingeringNow += 1
            lingering.append(slot)
            return
        }
        slotOfKey[flow.key!] = nil
        flows[slot] = nil
        freeSlots.append(slot)
    }

    /// Forgets the idle flows the virtual time has passed; runs when the list doubled since the last sweep.
    private mutating func sweepLingering() {
        var kept: [Int] = []
        for slot in lingering {
            guard let flow = flows[slot], flow.lingering else { continue }
            if flow.finish <= virtualTime {
                slotOfKey[flow.key!] = nil
                flows[slot] = nil
                freeSlots.append(slot)
                lingeringNow -= 1
            } else {
                kept.append(slot)
            }
        }
        lingering = kept
        sweepAt = max(16, 2 * kept.count)
    }
}

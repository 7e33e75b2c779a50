import FairwayRuntime
import FairwayScheduling

/// Claims that take a queue's keys in turn: for a queue that shares by fairness key, each claim walks the
/// keys that have ready jobs from where the last one stopped and takes a few jobs of each, so that one
/// key's backlog never fills the queue's credit while another key waits in the file. A pattern queue
/// (`tenant-*`) is walked the same way, its keys being the queue names it admits: a queue seen for the
/// first time is served by the next claim, with no declaration and no polling.
///
/// Each step is one seek in an index (`jobs_keyed` for keys, `jobs_ready` for queue names), so a claim
/// costs the keys it visits, not the keys or jobs in the file.
extension SQLiteSource {
    /// Where a claim of a key-sharing queue takes its jobs from.
    enum ClaimFlow {
        /// The jobs of one key of a keyed queue ('' holds those enqueued without one).
        case key(String)
        /// The jobs of one queue admitted by a pattern.
        case queue(String)

        /// The job's own queue name when it differs from its binding's.
        var queueName: String? {
            if case .queue(let name) = self { return name }
            return nil
        }
    }

    /// True when some queue caps its keys, whose claimed jobs are then counted per key.
    var hasCappedKeys: Bool { !cappedKeyQueues.isEmpty }

    /// The binding that serves jobs enqueued to `name`: the queue of that name, or else the first pattern
    /// that admits it. Nil when no binding serves it.
    func bindingIndex(named name: String) -> Int? {
        if let index = queueIndex[name] { return index }
        return patternIndices.first { bindings[$0].pattern!.matches(name) }
    }

    /// The key a delivery was claimed under, as ``claimInTurn(queue:count:now:into:)`` counts it.
    func claimKey(_ delivery: Delivery) -> String {
        delivery.queueName ?? delivery.fairnessKey ?? ""
    }

    /// Claims up to `count` jobs of a key-sharing queue, a few of each key in turn.
    func claimInTurn(queue index: Int, count: Int, now: Int64, into claimed: inout [Delivery]) throws {
        let binding = bindings[index]
        let cap = binding.keys?.concurrency
        var remaining = count
        var cursor = keyCursor[index]
        var wrapped = false
        var claimedSinceWrap = 0
        var claimedKeys: [String: Int] = [:]
        while remaining > 0 {
            guard let key = try nextKey(of: index, after: cursor) else {
                if cursor == nil {
                    mayHaveWork[index] = false
                    break
                }
                // A whole pass that found nothing to take: every key with jobs is at its cap.
                if wrapped && claimedSinceWrap == 0 { break }
                wrapped = true
                claimedSinceWrap = 0
                cursor = nil
                continue
            }
            cursor = key
            // A name the pattern matches but another queue serves, by name or by an earlier pattern.
            if binding.pattern != nil && bindingIndex(named: key) != index { continue }
            var take = min(remaining, Self.jobsPerTurn(binding.keys?.weights[key]))
            if let cap {
                take = min(take, cap - (keyOutstanding[index][key] ?? 0) - (claimedKeys[key] ?? 0))
            }
            guard take > 0 else { continue }
            let flow: ClaimFlow = binding.pattern != nil ? .queue(key) : .key(key)
            let taken = try claimJobs(queue: index, count: take, now: now, into: &claimed, flow: flow)
            if cap != nil { claimedKeys[key, default: 0] += taken }
            remaining -= taken
            claimedSinceWrap += taken
        }
        keyCursor[index] = cursor
    }

    /// The next key (or admitted queue name) after `cursor` with a ready job, in the index's order.
    func nextKey(of index: Int, after cursor: String?) throws -> String? {
        guard let connection else { return nil }
        let binding = bindings[index]
        if let pattern = binding.pattern {
            let prefix = pattern.literalPrefix
            let rows = try connection.query(
                cursor == nil
                    ? "SELECT queue FROM jobs WHERE state = 0 AND queue >= ?1 AND queue < ?2 ORDER BY queue LIMIT 1"
                    : "SELECT queue FROM jobs WHERE state = 0 AND queue > ?1 AND queue < ?2 ORDER BY queue LIMIT 1",
                [.text(cursor ?? prefix), .text(prefix + "\u{10FFFF}")]
            ) { $0.text(0) }
            return rows.first ?? nil
        }
        // From the first key, '' (the jobs enqueued without one) included, when there is no cursor. (A bound
        // number would not do: the column's text affinity turns it into text, and '' sorts before '0'.)
        let rows = try connection.query(
            cursor == nil
                ? """
                SELECT fairness_key FROM jobs
                WHERE state = 0 AND queue = ?1 AND fairness_key IS NOT NULL
                ORDER BY fairness_key LIMIT 1
                """
                : """
                SELECT fairness_key FROM jobs
                WHERE state = 0 AND queue = ?1 AND fairness_key IS NOT NULL AND fairness_key > ?2
                ORDER BY fairness_key LIMIT 1
                """,
            cursor.map { [.text(binding.name), .text($0)] } ?? [.text(binding.name)]
        ) { $0.text(0) }
        return rows.first ?? nil
    }

    /// How many jobs of a key one turn takes: its weight, rounded, at least one. The engine's
    /// ``KeyFairBuffer`` shares what is held by the exact weights; this keeps a heavy key's jobs held.
    static func jobsPerTurn(_ weight: Double?) -> Int {
        guard let weight, weight > 1 else { return 1 }
        return Int(min(weight, 64).rounded())
    }

    /// Gives the jobs without a key of a keyed queue, written since job `id`, the key '' under which the
    /// walk finds them. Producers do that themselves for a queue declared keyed in the file; this covers
    /// the others (a file whose declarations some other program wrote, jobs enqueued before any).
    func adoptUnkeyedJobs(after id: Int64) throws {
        guard let connection else { return }
        for index in keyedQueues {
            try connection.cached(
                "UPDATE jobs SET fairness_key = '' WHERE id > ?1 AND queue = ?2 AND fairness_key IS NULL"
            ).run([.int(id), .text(bindings[index].name)])
        }
    }

    /// Counts claimed and settled jobs of capped keys, after the transaction committed.
    func countKeys(claimed: [Delivery], settled: [(Delivery, Settlement)]) {
        for delivery in claimed where bindings[delivery.queue.index].keys?.concurrency != nil {
            keyOutstanding[delivery.queue.index][claimKey(delivery), default: 0] += 1
        }
        for (delivery, _) in settled where bindings[delivery.queue.index].keys?.concurrency != nil {
            let key = claimKey(delivery)
            let left = (keyOutstanding[delivery.queue.index][key] ?? 1) - 1
            keyOutstanding[delivery.queue.index][key] = left > 0 ? left : nil
        }
    }
}

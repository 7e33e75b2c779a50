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
        /// One job of each of the next keys after the given one (from the first when nil), in one statement.
        case eachKey(after: String?)
        /// One job of each of the next queues a prefix pattern admits, after the given one, in one statement.
        case eachQueue(after: String?, prefix: String)

        /// The job's own queue name when it differs from its binding's.
        var queueName: String? {
            if case .queue(let name) = self { return name }
            return nil
        }
    }

    /// The binding that serves jobs enqueued to `name`: the queue of that name, or else the first pattern
    /// that admits it. Nil when no binding serves it.
    func bindingIndex(named name: String) -> Int? {
        if let index = queueIndex[name] { return index }
        return patternIndices.first { bindings[$0].pattern!.matches(name) }
    }

    /// Claims up to `count` jobs of a key-sharing queue, a few of each key in turn.
    func claimInTurn(queue index: Int, count: Int, now: Int64, into claimed: inout [Delivery]) throws {
        let binding = bindings[index]
        let cap = binding.keys?.concurrency
        if claimsEachKeyAtOnce[index] {
            return try claimEachKeyInTurn(queue: index, count: count, now: now, into: &claimed)
        }
        var remaining = count
        var cursor = keyCursor[index]
        var wrapped = false
        var claimedSinceWrap = 0
        var claimedKeys: [String: Int] = [:]
        // A key's cap holds across every consumer of the file: its leases are counted in this transaction
        // (one writer at a time), as a queue's global cap is.
        let leased = cap == nil ? [:] : try leasesByKey(of: index)
        /// Claims up to `turn` jobs of `key`, within what this claim and the key's cap leave; returns how many
        /// it asked for and how many it got.
        func take(_ key: String, upTo turn: Int) throws -> (asked: Int, taken: Int) {
            var asked = min(remaining, turn)
            if let cap { asked = min(asked, cap - (leased[key] ?? 0) - (claimedKeys[key] ?? 0)) }
            guard asked > 0 else { return (0, 0) }
            let flow: ClaimFlow = binding.pattern != nil ? .queue(key) : .key(key)
            let taken = try claimJobs(queue: index, count: asked, now: now, into: &claimed, flow: flow).handed
            claimedKeys[key, default: 0] += taken
            remaining -= taken
            return (asked, taken)
        }
        // The key whose turn the last claim left unfinished goes on first: a claim of one job (one credit
        // freed) must not end a weighted key's turn, or keys would arrive 1:1 whatever their weights.
        if let current = cursor, keyTurnLeft[index] > 0 {
            let (asked, taken) = try take(current, upTo: keyTurnLeft[index])
            keyTurnLeft[index] = asked == 0 || taken < asked ? 0 : keyTurnLeft[index] - taken
        }
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
            let turn = jobsPerTurn[index][key] ?? jobsPerTurn[index][""] ?? 1
            let (asked, taken) = try take(key, upTo: turn)
            claimedSinceWrap += taken
            // Cut short by the claim's size, not by the key: the rest of its turn opens the next claim.
            keyTurnLeft[index] = asked > 0 && taken == asked && taken < turn ? turn - taken : 0
        }
        keyCursor[index] = cursor
    }

    /// The walk of ``claimInTurn(queue:count:now:into:)`` where every key's turn is one job and no key is
    /// capped (keys without weights, the usual case): one statement claims one job of each of the next keys,
    /// instead of a seek and a claim per key. A restart against 10,000 tenants' backlog claims its first
    /// jobs as one statement each, not 32 pairs of them.
    func claimEachKeyInTurn(queue index: Int, count: Int, now: Int64, into claimed: inout [Delivery]) throws {
        var remaining = count
        var cursor = keyCursor[index]
        while remaining > 0 {
            let from = cursor
            let flow: ClaimFlow =
                bindings[index].pattern.map { .eachQueue(after: from, prefix: $0.literalPrefix) }
                ?? .eachKey(after: from)
            let result = try claimJobs(queue: index, count: remaining, now: now, into: &claimed, flow: flow)
            remaining -= result.leased
            if let key = result.greatestKey { cursor = key }
            guard remaining > 0 else { break }
            // Fewer than asked: the walk passed the last key, and goes on from the first (a second job of
            // each, as the walk key by key does), unless there is no key with a ready job at all.
            if from == nil && result.leased == 0 {
                mayHaveWork[index] = false
                break
            }
            cursor = nil
        }
        keyCursor[index] = cursor
        keyTurnLeft[index] = 0
    }

    /// Whether binding `index` may claim a job of each of its next keys in one statement: every key's turn
    /// is one job and no key is capped; for a pattern, it must be a prefix (`tenant-*`) and no other binding
    /// may serve a name it matches (`tenant-vip` listed by name, an overlapping pattern), since the statement
    /// cannot skip such names as the walk key by key does.
    func mayClaimEachKeyAtOnce(_ queues: [QueueBinding], _ index: Int) -> Bool {
        let binding = queues[index]
        guard let keys = binding.keys, keys.concurrency == nil, jobsPerTurn[index].values.allSatisfy({ $0 == 1 })
        else { return false }
        guard let pattern = binding.pattern else { return true }
        let prefix = pattern.literalPrefix
        guard pattern.text == prefix + "*" else { return false }
        return !queues.indices.contains { other in
            guard other != index else { return false }
            let name = queues[other].pattern?.literalPrefix ?? queues[other].name
            return name.hasPrefix(prefix) || (queues[other].pattern != nil && prefix.hasPrefix(name))
        }
    }

    /// Claims one job of each of the next keys (at most ?4) after ?5 (from the first without `after`), in
    /// the index's order, one seek a key, as ``nextKey(of:after:)`` walks them: the keys of queue ?1 in
    /// `jobs_keyed`, or (`patternQueues`) the queue names from prefix ?5 below ?6 in `jobs_ready`, whose
    /// jobs then also return their queue.
    static func claimEachKey(patternQueues: Bool, after: Bool) -> String {
        let column = patternQueues ? "queue" : "fairness_key"
        let scope = patternQueues ? "queue < ?6" : "queue = ?1 AND fairness_key IS NOT NULL"
        let start = after ? "AND \(column) > ?5" : patternQueues ? "AND queue >= ?5" : ""
        return """
            WITH RECURSIVE walk(key, n) AS (
                SELECT (SELECT \(column) FROM jobs WHERE state = 0 AND \(scope) \(start)
                        ORDER BY \(column) LIMIT 1), 1
                UNION ALL
                SELECT (SELECT \(column) FROM jobs WHERE state = 0 AND \(scope) AND \(column) > walk.key
                        ORDER BY \(column) LIMIT 1), n + 1
                FROM walk WHERE walk.key IS NOT NULL AND n < ?4)
            UPDATE OR IGNORE jobs SET state = 2, lease_owner = ?2, lease_expires_at = ?3
            WHERE id IN (
                SELECT (SELECT id FROM jobs WHERE state = 0 AND \(scope) AND \(column) = walk.key
                        ORDER BY priority DESC, id LIMIT 1)
                FROM walk WHERE walk.key IS NOT NULL)
            RETURNING \(claimedColumns)\(patternQueues ? ", queue" : "")
            """
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

    /// How many jobs of each key one turn takes, by key ('' for every key not listed): its weight over the
    /// lightest weight, rounded, 1 to 64. Keys then reach the engine in proportion to their weights, and
    /// its ``KeyFairBuffer`` shares what is held by the exact weights.
    static func jobsPerTurn(_ keys: KeyFairness?) -> [String: Int] {
        let weights = (keys?.weights ?? [:]).filter { $0.value > 0 && $0.value.isFinite }
        let lightest = min(1, weights.values.min() ?? 1)
        var turns = weights.mapValues { max(1, min(64, Int(($0 / lightest).rounded()))) }
        turns[""] = max(1, min(64, Int((1 / lightest).rounded())))
        return turns
    }

    /// Gives the jobs without a key of a keyed queue, written since job `id`, the key '' under which the
    /// walk finds them. Producers do that themselves for a queue declared keyed in the file; this covers
    /// the others (a file whose declarations some other program wrote, jobs enqueued before any).
    func adoptUnkeyedJobs(after id: Int64) throws {
        guard let connection else { return }
        try SQLiteQueue.giveUnkeyedJobsAKey(queues: keyedQueueNames, after: id, in: connection)
    }

    /// Jobs of each key of a queue leased by any consumer of the file (held or running), read inside the
    /// claiming transaction. Leased rows are few (at most every consumer's credit), and the partial index
    /// of leases finds them without touching the ready ones.
    func leasesByKey(of index: Int) throws -> [String: Int] {
        guard let connection else { return [:] }
        let binding = bindings[index]
        var counts: [String: Int] = [:]
        if let pattern = binding.pattern {
            let prefix = pattern.literalPrefix
            let rows = try connection.query(
                """
                SELECT queue, count(*) FROM jobs INDEXED BY jobs_leased
                WHERE state = 2 AND queue >= ?1 AND queue < ?2 GROUP BY queue
                """,
                [.text(prefix), .text(prefix + "\u{10FFFF}")]
            ) { ($0.text(0) ?? "", $0.int(1)) }
            for (name, count) in rows { counts[name] = count }
        } else {
            let rows = try connection.query(
                """
                SELECT coalesce(fairness_key, ''), count(*) FROM jobs INDEXED BY jobs_leased
                WHERE state = 2 AND queue = ?1 GROUP BY 1
                """,
                [.text(binding.name)]
            ) { ($0.text(0) ?? "", $0.int(1)) }
            for (key, count) in rows { counts[key] = count }
        }
        return counts
    }
}

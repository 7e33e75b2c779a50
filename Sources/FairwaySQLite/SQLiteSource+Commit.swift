import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging

/// One transaction of the store thread: settlements applied, delayed jobs promoted, new jobs claimed.
extension SQLiteSource {
    /// Applies settlements, promotes due delayed jobs and claims new ones, in one transaction.
    /// Returns the claimed deliveries, to be handed over once the transaction committed.
    func commit(_ settlements: [SettledJob], _ requests: [EnqueueRequest], claim: Bool) throws
        -> [Delivery]
    {
        guard let connection else { return [] }
        let now = Milliseconds.now
        let promote = nextDelayedDue.map { $0 <= now } ?? false
        var newJobs: [[Int64]] = []
        var delayedAdded = false
        for request in requests {
            for job in request.jobs {
                if let index = bindingIndex(named: job.queue) { mayHaveWork[index] = true }
                if job.delay > .zero { delayedAdded = true }
            }
        }
        let anyClaim = claim && bindings.indices.contains { claimWorthwhile($0) }
        claimsUnfinished = false
        guard !settlements.isEmpty || !requests.isEmpty || promote || anyClaim else { return [] }
        var claimed: [Delivery] = []
        tally.clear()
        try connection.transaction {
            for request in requests {
                newJobs.append(try SQLiteQueue.insert(request.jobs, into: connection, now: now))
            }
            if let first = newJobs.lazy.compactMap(\.first).min() {
                unkeyedAfter = min(unkeyedAfter ?? first - 1, first - 1)
            }
            if let after = unkeyedAfter {
                try adoptUnkeyedJobs(after: after)
            }
            for job in settlements {
                guard let outcome = try apply(job, now: now) else { continue }
                tally.add(queue: job.queue, completed: outcome.completed, failed: outcome.failed)
            }
            try deleteCompleted(settlements)
            // queue_stats gets one update per queue per transaction, not one per job.
            for index in tally.touched where tally.completed[index] + tally.failed[index] > 0 {
                try count(bindings[index].name, completed: tally.completed[index], failed: tally.failed[index])
            }
            if promote {
                try promoteDelayed(now: now)
            }
            if claim {
                // At most `claimQueriesPerCommit` queues per transaction, in turn from where the last one
                // stopped: the first of 10,000 queues' jobs are handed on after one short transaction, not
                // after a claim in every queue.
                var queries = 0
                // When the engine holds nothing of this file (at start, say), its workers wait for this
                // commit: hand them a first few batches now and claim the rest in the next transaction.
                let starving = outstanding.allSatisfy { $0 == 0 } && settlements.isEmpty
                for step in 0..<bindings.count {
                    let index = (claimCursor + step) % bindings.count
                    // Credit returns only as settlements commit, in this same transaction.
                    var free = bindings[index].credit - outstanding[index] + tally.settled[index]
                    guard mayHaveWork[index], free >= claimThreshold(index) else { continue }
                    if bindings[index].globalConcurrency != nil {
                        guard !capFull[index] || tally.settled[index] > 0 else { continue }
                        free = min(free, try roomUnderGlobalCap(index))
                        capFull[index] = free == 0
                        guard free > 0 else { continue }
                    }
                    if bindings[index].keys != nil {
                        try claimInTurn(queue: index, count: free, now: now, into: &claimed)
                    } else {
                        try claimJobs(queue: index, count: free, now: now, into: &claimed)
                    }
                    queries += 1
                    if queries == Self.claimQueriesPerCommit
                        || (starving && claimed.count >= Self.firstHandOver && step + 1 < bindings.count)
                    {
                        claimCursor = (index + 1) % bindings.count
                        claimsUnfinished = true
                        break
                    }
                }
            }
        }
        // Committed: nothing below may throw, or the caller would settle these again and lose the claims.
        for (request, ids) in zip(requests, newJobs) {
            request.finish(.success(ids))
        }
        for index in tally.touched {
            outstanding[index] -= tally.settled[index]
        }
        for delivery in claimed {
            outstanding[delivery.queue.index] += 1
        }
        unkeyedAfter = nil
        let retried = settlements.contains { if case .retry = $0.settlement { true } else { false } }
        if delayedAdded || retried || promote {
            refreshNextDelayedDue(now: now)
        }
        return claimed
    }

    /// What every claim statement returns of a job, in the order `claimJobs` reads it.
    static let claimedColumns = "id, type, payload, attempts, enqueued_at, priority, last_error, fairness_key"

    // Every claim is `UPDATE OR IGNORE`, though no row can be ignored (it sets `state` to a constant and
    // changes no unique column): a plain UPDATE may abort on a constraint, so SQLite keeps a statement
    // journal of every page it changes, in memory up to 64 KiB and then in a temporary file. A claim whose
    // jobs lie on many pages (a backlog written by producers of many queues at once) wrote five times the
    // bytes of its whole drain to that file, and drained 1.5x slower (docs/benchmarks.md).

    /// Leases up to ?4 ready jobs of queue ?1 with fairness key ?5 to owner ?2 until ?3, returning them. (A
    /// whole queue's claim, the hot one, is a ``ReadyJobClaim``.)
    static let claimKey = """
        UPDATE OR IGNORE jobs SET state = 2, lease_owner = ?2, lease_expires_at = ?3
        WHERE id IN (
            SELECT id FROM jobs WHERE state = 0 AND queue = ?1 AND fairness_key = ?5
            ORDER BY priority DESC, id LIMIT ?4)
        RETURNING \(claimedColumns)
        """

    /// Makes delayed jobs due by ?1 ready, returning their queues. `OR IGNORE` as the claims, for the same
    /// reason: retried jobs fall due spread over the file.
    static let promoteDue = "UPDATE OR IGNORE jobs SET state = 0 WHERE state = 1 AND available_at <= ?1 RETURNING queue"

    struct JobStatements {
        /// Deletes the jobs this process completed.
        let completed: CompletedJobs
        /// Leases the first ready jobs of one queue.
        let ready: ReadyJobClaim
    }

    func statements(_ connection: SQLiteConnection) throws -> JobStatements {
        if let jobStatements { return jobStatements }
        let completed = try CompletedJobs(connection: connection, owner: identity)
        let ready = try ReadyJobClaim(connection: connection, owner: identity)
        let prepared = JobStatements(completed: completed, ready: ready)
        jobStatements = prepared
        return prepared
    }

    func claimWorthwhile(_ index: Int) -> Bool {
        mayHaveWork[index] && !capFull[index]
            && bindings[index].credit - outstanding[index] >= claimThreshold(index)
    }

    /// The fewest free credits worth a claim: a batch, except under a global cap, where every permit counts,
    /// and where the queue shares by key: there a key that just got a job waits for one settlement of the
    /// queue, not for a batch of them, before its job is held (docs/tenants.md).
    func claimThreshold(_ index: Int) -> Int {
        bindings[index].globalConcurrency != nil || bindings[index].keys != nil
            ? 1 : min(options.claimBatch, bindings[index].credit)
    }

    /// How many more jobs of a globally capped queue may be leased: its cap less the leases every consumer
    /// of the file holds on it, read inside the claiming transaction, so that no other process can claim
    /// between the count and the claim (SQLite has one writer at a time).
    func roomUnderGlobalCap(_ index: Int) throws -> Int {
        guard let connection, let cap = bindings[index].globalConcurrency else { return .max }
        let leased =
            try connection.query(
                "SELECT count(*) FROM jobs WHERE state = 2 AND queue = ?1", [.text(bindings[index].name)]
            ) { $0.int(0) }.first ?? 0
        return max(0, cap - leased)
    }

    /// Writes one settlement; returns what it adds to the queue's completed and failed counts, or nil for a
    /// completion: those are deleted together by ``deleteCompleted(_:)``, a run of consecutive ids at a time.
    func apply(_ job: SettledJob, now: Int64) throws -> (completed: Int, failed: Int)? {
        guard let connection else { return (0, 0) }
        let id = job.id
        switch job.settlement {
        case .ack:
            return nil
        case .retry(let after, let reason):
            try connection.cached(
                """
                UPDATE jobs SET state = 1, available_at = ?3, last_error = ?4, attempts = ?5, lease_owner = NULL,
                    lease_expires_at = NULL
                WHERE id = ?1 AND lease_owner = ?2 AND state = 2
                """
            ).run([
                .int(id), .text(identity), .int(now + Int64((min(after.seconds, 1e9) * 1000).rounded(.up))),
                .text(reason), .int(Int64(job.attempt)),
            ])
            guard connection.changes == 1 else { return lostLease(job) }
            return (0, 1)
        case .deadLetter(let reason):
            try moveToDeadLetters(id: id, reason: reason, now: now, ownedBy: identity, attempts: job.attempt)
            guard connection.changes == 1 else { return lostLease(job) }
            return (0, 1)
        case .release:
            try connection.cached(
                """
                UPDATE jobs SET state = 0, lease_owner = NULL, lease_expires_at = NULL
                WHERE id = ?1 AND lease_owner = ?2 AND state = 2
                """
            ).run([.int(id), .text(identity)])
            if connection.changes == 1 { mayHaveWork[job.queue] = true }
            return (0, 0)
        }
    }

    /// Deletes the completed jobs among `settlements` and counts them.
    func deleteCompleted(_ settlements: [SettledJob]) throws {
        let ids = settlements.compactMap { if case .ack = $0.settlement { $0.id } else { nil } }
        guard let connection, !ids.isEmpty else { return }
        let lost = Set(try statements(connection).completed.delete(ids))
        for job in settlements {
            guard case .ack = job.settlement else { continue }
            if !lost.isEmpty && lost.contains(job.id) {
                _ = lostLease(job)
                tally.add(queue: job.queue, completed: 0, failed: 0)
            } else {
                tally.add(queue: job.queue, completed: 1, failed: 0)
            }
        }
    }

    func lostLease(_ job: SettledJob) -> (completed: Int, failed: Int) {
        logger.warning(
            "a job's lease was lost before it was settled; another process may run it again",
            metadata: ["queue": "\(bindings[job.queue].name)", "job": "\(job.id)"]
        )
        return (0, 0)
    }

    func count(_ queue: String, completed: Int, failed: Int) throws {
        try connection?.cached(
            """
            INSERT INTO queue_stats(queue, completed, failed) VALUES (?1, ?2, ?3)
            ON CONFLICT(queue) DO UPDATE SET completed = completed + ?2, failed = failed + ?3
            """
        ).run([.text(queue), .int(Int64(completed)), .int(Int64(failed))])
    }

    /// Moves a leased job to the dead letters, with `attempts` runs (those in the file when nil).
    /// `connection.changes` tells whether it was there.
    func moveToDeadLetters(id: Int64, reason: String, now: Int64, ownedBy owner: String, attempts: Int?)
        throws
    {
        guard let connection else { return }
        try connection.cached(
            """
            INSERT INTO dead_jobs(
                id, queue, type, payload, priority, attempts, reason, enqueued_at, died_at, fairness_key)
            SELECT id, queue, type, payload, priority, coalesce(?5, attempts), ?3, enqueued_at, ?4, fairness_key
            FROM jobs
            WHERE id = ?1 AND lease_owner = ?2 AND state = 2
            """
        ).run([.int(id), .text(owner), .text(reason), .int(now), attempts.map { .int(Int64($0)) } ?? .null])
        guard connection.changes == 1 else { return }
        try connection.cached("DELETE FROM jobs WHERE id = ?1").run([.int(id)])
    }

    /// What one claim statement did.
    struct ClaimResult {
        /// Jobs handed on to the engine (not those that had used every attempt and were dead-lettered).
        var handed = 0
        /// Jobs leased, handed on or not.
        var leased = 0
        /// The greatest fairness key among them, in the file's order (bytes), when they have keys.
        var greatestKey: String?
    }

    /// Claims up to `count` ready jobs of a queue, or of one or more of its keys.
    @discardableResult
    func claimJobs(
        queue index: Int, count: Int, now: Int64, into claimed: inout [Delivery], flow: ClaimFlow? = nil
    ) throws -> ClaimResult {
        guard let connection else { return ClaimResult() }
        let binding = bindings[index]
        let expires = now + leaseMilliseconds
        // Where one statement claims across a pattern's queues, each job says its own; where it claims
        // across keys, the walk goes on after the greatest.
        var ownQueue = false
        var acrossKeys = false
        switch flow {
        case .eachQueue: (ownQueue, acrossKeys) = (true, true)
        case .eachKey: acrossKeys = true
        default: break
        }
        // Read straight into `claimed`: the claim runs for every batch, on the thread that bounds a drain.
        let first = claimed.count
        var order: [(priority: Int, id: Int64)] = []
        var usedUp: [(id: Int64, runs: Int, error: String?)] = []
        var result = ClaimResult()
        func read(_ statement: Statement) {
            let id = statement.int64(0)
            let runs = max(0, statement.int(3))
            let error = statement.text(6)
            let key = statement.text(7)
            let queue = ownQueue ? statement.text(8) : nil
            result.leased += 1
            if acrossKeys, let greatest = ownQueue ? queue : key,
                result.greatestKey.map({ $0.utf8.lexicographicallyPrecedes(greatest.utf8) }) ?? true
            {
                result.greatestKey = greatest
            }
            guard runs < maxAttempts[index] else {
                usedUp.append((id, runs, error))
                return
            }
            let (nanoseconds, overflow) = UInt64(clamping: statement.int64(4)).multipliedReportingOverflow(
                by: 1_000_000)
            claimed.append(
                Delivery(
                    queue: binding.id,
                    jobType: statement.text(1) ?? "",
                    payload: statement.blob(2),
                    attempt: runs + 1,
                    enqueuedAt: overflow ? nil : nanoseconds,
                    receipt: UInt64(id),
                    suspect: error == RunCharge.reason,
                    fairnessKey: key.flatMap { $0.isEmpty ? nil : $0 },
                    queueName: queue ?? flow.flatMap(\.queueName)
                )
            )
            order.append((statement.int(5), id))
        }
        // The claims by key return what they lease (`RETURNING`); a whole queue's is a read, then a lease.
        func claimReturning(_ sql: String, _ more: [SQLiteValue]) throws {
            let statement = try connection.cached(sql)
            defer { statement.reset() }
            try statement.bind([.text(binding.name), .text(identity), .int(expires), .int(Int64(count))] + more)
            while try statement.step() { read(statement) }
        }
        switch flow {
        case nil, .queue:
            let name = flow?.queueName ?? binding.name
            try statements(connection).ready.claim(queue: name, count: count, expires: expires, row: read)
        case .key(let key):
            try claimReturning(Self.claimKey, [.text(key)])
        case .eachKey(let after):
            try claimReturning(
                Self.claimEachKey(patternQueues: false, after: after != nil), after.map { [.text($0)] } ?? [])
        case .eachQueue(let after, let prefix):
            try claimReturning(
                Self.claimEachKey(patternQueues: true, after: after != nil),
                [.text(after ?? prefix), .text(prefix + "\u{10FFFF}")])
        }
        if result.leased < count && flow == nil { mayHaveWork[index] = false }
        for job in usedUp {
            // Its runs used every attempt without settling it: the last one ended with its process
            // (retries settle with attempts left). The journal's charge wrote why.
            try moveToDeadLetters(
                id: job.id,
                reason: RetryPolicy.gaveUp(job.error ?? RunCharge.reason, after: job.runs),
                now: now,
                ownedBy: identity,
                attempts: job.runs
            )
            try self.count(binding.name, completed: 0, failed: 1)
        }
        // Higher priority first, then enqueue order: a read returns them so; `RETURNING`, by id.
        let inOrder = zip(order, order.dropFirst()).allSatisfy { earlier, later in
            (earlier.priority, -earlier.id) > (later.priority, -later.id)
        }
        if !inOrder {
            let ranked = order.indices.sorted {
                (order[$0].priority, -order[$0].id) > (order[$1].priority, -order[$1].id)
            }
            let fresh = Array(claimed[first...])
            claimed.replaceSubrange(first..., with: ranked.lazy.map { fresh[$0] })
        }
        result.handed = order.count
        return result
    }

    func promoteDelayed(now: Int64) throws {
        guard let connection else { return }
        let queues = try connection.query(Self.promoteDue, [.int(now)]) { $0.text(0) ?? "" }
        for name in Set(queues) {
            if let index = bindingIndex(named: name) { mayHaveWork[index] = true }
        }
    }

    /// Reads when the next delayed job is due: nil when none is. When the read fails, a promotion a second
    /// from now reads it again; never a time already past, which would make the store thread promote
    /// without waiting, over and over (it did, at a whole core, once every retried job had run).
    func refreshNextDelayedDue(now: Int64) {
        do {
            nextDelayedDue = try earliestDelayed()
        } catch {
            nextDelayedDue = now + 1000
        }
    }

    func earliestDelayed() throws -> Int64? {
        guard let connection else { return nil }
        let rows = try connection.query("SELECT min(available_at) FROM jobs WHERE state = 1") { statement in
            statement.isNull(0) ? nil : statement.int64(0)
        }
        return rows.first ?? nil
    }
}

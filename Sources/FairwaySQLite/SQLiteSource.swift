import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging

/// The embedded queue: jobs in one SQLite file, claimed with leases, settled durably in batches.
///
/// One store thread owns the write connection. Workers hand it settlements and wake it; each time it wakes
/// it commits every pending settlement and claims new jobs for the queues whose credit freed, in one
/// transaction (group commit). A claim sets a lease; leases are renewed while the process lives, and when it
/// dies they expire and the jobs become claimable again (at once for a restart on the same host).
///
/// An attempt is counted when a job starts, not when it is claimed: each run is written to a ``RunJournal``
/// beside the file, and when a consumer dies the jobs its journal shows running are charged one attempt
/// (with the reason) before their leases are freed. A job that takes its process down is quarantined after
/// its attempts; jobs that were merely claimed or held keep their count.
///
/// Jobs enqueued through ``queue`` wake the store thread directly; jobs enqueued by other processes are
/// noticed through `PRAGMA data_version` on a short tick, which costs one cheap statement.
public final class SQLiteSource: JobSource, QueueDepthReporting, @unchecked Sendable {
    /// How the source runs.
    public struct Options: Sendable {
        /// How long a claim holds a job. Renewed every third of it while the process lives.
        public var leaseDuration: Duration = .seconds(30)
        /// How often the file is checked for jobs written by other processes when the file cannot be
        /// watched (no inotify). Where it can, writes wake the source at once and this tick is not used.
        public var changeCheckInterval: Duration = .milliseconds(5)
        /// A slow safety net under the file watch, for writes it cannot see (another machine on a shared
        /// file system, which SQLite does not support well anyway).
        public var watchedCheckInterval: Duration = .seconds(1)
        /// How long a write waits for another process's lock before it fails (and is retried).
        public var busyTimeout: Duration = .seconds(5)
        /// The fewest free credits of a queue worth a claim (at most its credit): claims come in batches.
        public var claimBatch: Int = 16

        public init() {}
    }

    public let name = "sqlite"
    public let path: String
    /// The library API over the same file; its enqueues wake this source at once.
    public let queue: SQLiteQueue
    private let options: Options
    private let logger: Logger
    private let identity: String
    private let host: String
    /// The jobs this process is running, kept so that they outlive a crash.
    private let journal: RunJournal
    /// Checkpoints the log off the store thread.
    private let checkpointer: WALCheckpointer

    private let monitor = NSCondition()
    // Guarded by `monitor`.
    private var pending: [(Delivery, Settlement)] = []
    private var enqueues: [EnqueueRequest] = []
    private var hinted: Set<String> = []
    /// Set when the file may hold work nobody has looked at yet: at start, and when it changed.
    private var fileChanged = true
    /// Set before the store thread starts and cleared after it stopped; the store thread reads it.
    private var watcher: FileChangeWatcher?
    private var delivering = false
    private var closing = false
    private var closed = false
    private var storeThreadRunning = false

    // Owned by the store thread once started.
    private var connection: SQLiteConnection?
    private var sink: (any DeliverySink)?
    private var bindings: [QueueBinding] = []
    private var queueIndex: [String: Int] = [:]
    private var maxAttempts: [Int] = []
    private var outstanding: [Int] = []
    /// What the current transaction settled (store thread only).
    private var tally = SettledTally(queues: 0)
    private var mayHaveWork: [Bool] = []
    private var nextDelayedDue: Int64?
    private var lastDataVersion: Int64 = 0
    private var nextLeaseRenewal: Int64 = 0
    private var failureBackoff: Duration = .zero
    private var highestSeenID: Int64 = 0
    private var lastFullProbe: Double = 0
    /// The most queues one transaction claims from.
    static let claimQueriesPerCommit = 256
    /// Where the next transaction's claims start (store thread only).
    private var claimCursor = 0
    /// True when the last transaction stopped claiming before it had visited every queue (store thread only).
    private var claimsUnfinished = false
    /// When every queue should be probed for work made ready by another process (seconds since 1970).
    private var fullProbeDue: Double?
    /// When to look for another writer's commit again (seconds since 1970), after a file change was
    /// noticed before the commit was visible.
    private var recheckAt: Double?
    private var rechecksLeft = 0
    /// Delays of the rechecks after a notice, shortest first.
    private static let recheckDelays = [0.0002, 0.001, 0.005, 0.02, 0.1]

    /// Opens (creating if needed) the queue file at `path`.
    public init(path: String, options: Options = Options(), logger: Logger = Logger(label: "fairway.sqlite")) throws {
        self.path = path
        self.options = options
        self.logger = logger
        self.queue = try SQLiteQueue(path: path, create: true)
        self.connection = try QueueFile.open(path: path, create: true, busyTimeout: options.busyTimeout)
        self.host = ProcessInfo.processInfo.hostName
        self.identity = "\(host):\(getpid()):\(UUID().uuidString.prefix(8))"
        self.journal = try RunJournal(prefix: Self.journalPrefix(path), owner: identity)
        self.checkpointer = WALCheckpointer(path: path)
        queue.onEnqueue = { [weak self] queues in self?.hint(queues) }
    }

    /// Sets each queue's attempts, so that a job whose attempts ran out while its process died is
    /// dead-lettered when claimed instead of run again. Call before `start`.
    public func setMaxAttempts(_ attempts: [String: Int]) {
        monitor.withLock { configuredAttempts = attempts }
    }

    private var configuredAttempts: [String: Int] = [:]

    // MARK: - JobSource

    public func start(queues: [QueueBinding], sink: any DeliverySink) throws {
        guard let connection else { throw SQLiteError(path: path, code: 21, message: "source already closed") }
        let attempts = monitor.withLock { configuredAttempts }
        bindings = queues
        queueIndex = Dictionary(uniqueKeysWithValues: queues.enumerated().map { ($1.name, $0) })
        maxAttempts = queues.map { attempts[$0.name] ?? .max }
        outstanding = Array(repeating: 0, count: queues.count)
        tally = SettledTally(queues: queues.count)
        mayHaveWork = Array(repeating: true, count: queues.count)
        self.sink = sink
        // A fair drain touches every queue's pages in every transaction; SQLite's default 2 MiB page cache
        // holds them for about a hundred queues. 16 MiB, filled only as pages are used, drains 1,000 queues
        // 15 % faster (docs/benchmarks.md).
        try connection.execute("PRAGMA cache_size = -16384")
        try checkpointer.start(writer: connection)
        let now = Milliseconds.now
        try reclaimingOrphans { orphans in
            try connection.transaction {
                try registerConsumer(now: now)
                try reclaimFromDeadConsumers(now: now, orphans: orphans)
            }
        }
        lastDataVersion = try connection.dataVersion()
        highestSeenID = try highestJobID()
        nextDelayedDue = try earliestDelayed()
        nextLeaseRenewal = now + leaseMilliseconds / 3
        monitor.withLock {
            delivering = true
            storeThreadRunning = true
        }
        queue.routeEnqueue = { [weak self] jobs in
            guard let self else { throw EnqueueError(index: nil, message: "the queue file's source has stopped") }
            return try self.enqueueThroughStore(jobs)
        }
        watcher = FileChangeWatcher(paths: [path, path + "-wal"]) { [weak self] in self?.noticeFileChange() }
        if watcher == nil {
            logger.info("cannot watch the queue file; checking it for other writers on a tick instead")
        }
        let thread = Thread { [self] in storeLoop() }
        thread.name = "fairway-sqlite"
        thread.start()
    }

    public func settle(_ delivery: Delivery, _ settlement: Settlement) {
        monitor.lock()
        pending.append((delivery, settlement))
        if pending.count == 1 { monitor.signal() }
        monitor.unlock()
    }

    public func stopDelivering() {
        monitor.withLock {
            delivering = false
            monitor.signal()
        }
    }

    public func close() {
        queue.routeEnqueue = nil
        monitor.lock()
        closing = true
        monitor.signal()
        while storeThreadRunning {
            monitor.wait()
        }
        monitor.unlock()
        // Only now: the store thread reads `watcher` until it has stopped.
        watcher?.stop()
        watcher = nil
        checkpointer.stop(writer: connection)
        jobStatements = nil
        if let connection {
            try? connection.transaction {
                try connection.cached("DELETE FROM consumers WHERE identity = ?").run([.text(identity)])
            }
        }
        connection = nil
        journal.remove()
    }

    public func runStarting(_ delivery: Delivery) -> RunJournal.Mark {
        journal.begin(delivery.receipt)
    }

    public func runEnded(_ mark: RunJournal.Mark) {
        journal.end(mark)
    }

    /// Where the run journals of the consumers of the file at `path` live: beside it.
    static func journalPrefix(_ path: String) -> String { path + ".running-" }

    private func noticeFileChange() {
        monitor.withLock {
            fileChanged = true
            monitor.signal()
        }
    }

    private let depthLock = NSLock()
    private var cachedDepths: (at: Date, depths: [String: QueueDepth])?

    /// Ready jobs and the oldest one's age per queue, from the file; cached for a second.
    public func queueDepths() -> [String: QueueDepth] {
        depthLock.withLock {
            if let cachedDepths, Date().timeIntervalSince(cachedDepths.at) < 1 { return cachedDepths.depths }
            let stats = (try? queue.stats()) ?? [:]
            let depths = stats.mapValues {
                QueueDepth(ready: $0.ready, oldestAgeSeconds: $0.ready > 0 ? $0.oldestAgeSeconds : nil)
            }
            cachedDepths = (Date(), depths)
            return depths
        }
    }

    /// Hands jobs to the store thread and waits until they are committed.
    private func enqueueThroughStore(_ jobs: [NewJob]) throws -> [Int64] {
        let request = EnqueueRequest(jobs: jobs)
        let accepted = monitor.withLock { () -> Bool in
            guard storeThreadRunning && !closing else { return false }
            enqueues.append(request)
            monitor.signal()
            return true
        }
        guard accepted else {
            let connection = try QueueFile.open(path: path, create: false)
            return try connection.transaction { try SQLiteQueue.insert(jobs, into: connection, now: Milliseconds.now) }
        }
        request.done.wait()
        return try request.result!.get()
    }

    /// Wakes the store thread because jobs were enqueued on these queues by this process.
    func hint(_ queues: Set<String>) {
        monitor.withLock {
            hinted.formUnion(queues)
            monitor.signal()
        }
    }

    // MARK: - The store thread

    private var leaseMilliseconds: Int64 { Int64(options.leaseDuration.seconds * 1000) }

    private func storeLoop() {
        while true {
            monitor.lock()
            let wakeAt = nextWake()
            while pending.isEmpty && enqueues.isEmpty && hinted.isEmpty && !fileChanged && !closing && !claimsUnfinished
                && Date() < wakeAt
            {
                _ = monitor.wait(until: wakeAt)
            }
            let noticed = fileChanged
            fileChanged = false
            let settlements = pending
            pending.removeAll(keepingCapacity: true)
            let requests = enqueues
            enqueues.removeAll()
            let hints = hinted
            hinted.removeAll()
            let mayDeliver = delivering && !closing
            let finishing = closing
            monitor.unlock()

            for name in hints {
                if let index = queueIndex[name] { mayHaveWork[index] = true }
            }
            if !hints.isEmpty { nextDelayedDue = (try? earliestDelayed()) ?? nextDelayedDue }
            do {
                let changed = try checkForOtherWriters()
                runFullProbeIfDue()
                // A write can be seen before its commit is: look again shortly, a few times.
                if changed {
                    rechecksLeft = 0
                    recheckAt = nil
                } else if noticed {
                    rechecksLeft = Self.recheckDelays.count
                }
                if !changed && rechecksLeft > 0
                    && (noticed || (recheckAt.map { Date().timeIntervalSince1970 >= $0 } ?? false))
                {
                    let delay = Self.recheckDelays[Self.recheckDelays.count - rechecksLeft]
                    rechecksLeft -= 1
                    recheckAt = Date().timeIntervalSince1970 + delay
                } else if rechecksLeft == 0 {
                    recheckAt = nil
                }
                let claimed = try commit(settlements, requests, claim: mayDeliver)
                failureBackoff = .zero
                if let sink, !claimed.isEmpty {
                    sink.deliver(contentsOf: claimed)
                }
                try maintainLeases()
            } catch {
                for request in requests {
                    request.finish(.failure(error))
                }
                // Nothing is lost: the settlements stay pending and their jobs stay leased in the file.
                logger.error("queue file write failed; retrying", metadata: ["error": "\(error)"])
                monitor.withLock { pending.insert(contentsOf: settlements, at: 0) }
                failureBackoff = min(.seconds(5), max(.milliseconds(50), failureBackoff * 2))
                Thread.sleep(forTimeInterval: failureBackoff.seconds)
                if finishing && monitor.withLock({ pending.count }) > 0 && failureBackoff >= .seconds(5) {
                    logger.critical("giving up on settlements at close; their jobs stay leased and will run again")
                    monitor.withLock { pending.removeAll() }
                }
                if !finishing { continue }
            }
            if finishing && monitor.withLock({ pending.isEmpty }) { break }
        }
        monitor.withLock {
            storeThreadRunning = false
            monitor.broadcast()
        }
    }

    private func nextWake() -> Date {
        let now = Milliseconds.now
        let tick = watcher == nil ? options.changeCheckInterval : options.watchedCheckInterval
        var wake = now + max(1, Int64(tick.seconds * 1000))
        if let due = nextDelayedDue { wake = min(wake, due) }
        wake = min(wake, nextLeaseRenewal)
        var planned = Double(max(wake, now)) / 1000
        if let recheckAt { planned = min(planned, recheckAt) }
        if let fullProbeDue { planned = min(planned, fullProbeDue) }
        return Date(timeIntervalSince1970: planned)
    }

    /// Notices commits by other processes (and other connections of this one); true when there were some.
    ///
    /// New jobs are found by id (ids only grow), which touches only the new rows; jobs made ready again by
    /// other processes (released, or leases that expired) are found by probing every queue, at most every
    /// `fullProbeInterval`.
    private func checkForOtherWriters() throws -> Bool {
        guard let connection else { return false }
        let version = try connection.dataVersion()
        guard version != lastDataVersion else { return false }
        lastDataVersion = version
        let fresh = try connection.query(
            "SELECT DISTINCT queue FROM jobs WHERE id > ?1 AND state = 0", [.int(highestSeenID)]
        ) {
            $0.text(0) ?? ""
        }
        for name in fresh {
            if let index = queueIndex[name] { mayHaveWork[index] = true }
        }
        highestSeenID = max(highestSeenID, try highestJobID())
        fullProbeDue = min(fullProbeDue ?? .infinity, lastFullProbe + Self.fullProbeInterval)
        runFullProbeIfDue()
        nextDelayedDue = try earliestDelayed()
        return true
    }

    /// Marks every queue as worth a claim, when a probe is due.
    private func runFullProbeIfDue() {
        let now = Date().timeIntervalSince1970
        guard let due = fullProbeDue, now >= due else { return }
        fullProbeDue = nil
        lastFullProbe = now
        for index in mayHaveWork.indices { mayHaveWork[index] = true }
    }

    /// How often a change by another process makes every queue be looked at, not only those with new jobs.
    static let fullProbeInterval = 0.25

    private func highestJobID() throws -> Int64 {
        try connection?.query("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'") { $0.int64(0) }.first ?? 0
    }

    /// Applies settlements, promotes due delayed jobs and claims new ones, in one transaction.
    /// Returns the claimed deliveries, to be handed over once the transaction committed.
    private func commit(_ settlements: [(Delivery, Settlement)], _ requests: [EnqueueRequest], claim: Bool) throws
        -> [Delivery]
    {
        guard let connection else { return [] }
        let now = Milliseconds.now
        let promote = nextDelayedDue.map { $0 <= now } ?? false
        var newJobs: [[Int64]] = []
        var delayedAdded = false
        for request in requests {
            for job in request.jobs {
                if let index = queueIndex[job.queue] { mayHaveWork[index] = true }
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
            for (delivery, settlement) in settlements {
                let outcome = try apply(settlement, to: delivery, now: now)
                tally.add(queue: delivery.queue.index, completed: outcome.completed, failed: outcome.failed)
            }
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
                for step in 0..<bindings.count {
                    let index = (claimCursor + step) % bindings.count
                    // Credit returns only as settlements commit, in this same transaction.
                    let free = bindings[index].credit - outstanding[index] + tally.settled[index]
                    guard mayHaveWork[index], free >= min(options.claimBatch, bindings[index].credit) else { continue }
                    try claimJobs(queue: index, count: free, now: now, into: &claimed)
                    queries += 1
                    if queries == Self.claimQueriesPerCommit {
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
        let retried = settlements.contains { if case .retry = $0.1 { true } else { false } }
        if delayedAdded || retried || promote {
            // When the read fails, a promotion a second from now reads it again.
            nextDelayedDue = (try? earliestDelayed()) ?? min(nextDelayedDue ?? .max, now + 1000)
        }
        return claimed
    }

    /// The statements run for every job, prepared on first use (store thread only).
    private var jobStatements: JobStatements?

    private struct JobStatements {
        /// Deletes a completed job this process holds; the owner is bound once, the id per job.
        let ack: Statement
        /// Leases up to ?4 ready jobs of queue ?1 to owner ?2 until ?3, returning them.
        let claim: Statement
    }

    private func statements(_ connection: SQLiteConnection) throws -> JobStatements {
        if let jobStatements { return jobStatements }
        let ack = try connection.prepare(
            "DELETE FROM jobs WHERE id = ?1 AND lease_owner = ?2 AND state = 2", persistent: true)
        try ack.bind(.text(identity), at: 2)
        let claim = try connection.prepare(
            """
            UPDATE jobs SET state = 2, lease_owner = ?2, lease_expires_at = ?3
            WHERE id IN (SELECT id FROM jobs WHERE state = 0 AND queue = ?1 ORDER BY priority DESC, id LIMIT ?4)
            RETURNING id, type, payload, attempts, enqueued_at, priority, last_error
            """,
            persistent: true
        )
        let prepared = JobStatements(ack: ack, claim: claim)
        jobStatements = prepared
        return prepared
    }

    private func claimWorthwhile(_ index: Int) -> Bool {
        mayHaveWork[index]
            && bindings[index].credit - outstanding[index] >= min(options.claimBatch, bindings[index].credit)
    }

    /// Writes one settlement; returns what it adds to the queue's completed and failed counts.
    private func apply(_ settlement: Settlement, to delivery: Delivery, now: Int64) throws -> (
        completed: Int, failed: Int
    ) {
        guard let connection else { return (0, 0) }
        let id = Int64(delivery.receipt)
        switch settlement {
        case .ack:
            let delete = try statements(connection).ack
            try delete.bind(id, at: 1)
            try delete.execute()
            guard connection.changes == 1 else { return lostLease(delivery) }
            return (1, 0)
        case .retry(let after, let reason):
            try connection.cached(
                """
                UPDATE jobs SET state = 1, available_at = ?3, last_error = ?4, attempts = ?5, lease_owner = NULL,
                    lease_expires_at = NULL
                WHERE id = ?1 AND lease_owner = ?2 AND state = 2
                """
            ).run([
                .int(id), .text(identity), .int(now + Int64((min(after.seconds, 1e9) * 1000).rounded(.up))),
                .text(reason), .int(Int64(delivery.attempt)),
            ])
            guard connection.changes == 1 else { return lostLease(delivery) }
            return (0, 1)
        case .deadLetter(let reason):
            try moveToDeadLetters(id: id, reason: reason, now: now, ownedBy: identity, attempts: delivery.attempt)
            guard connection.changes == 1 else { return lostLease(delivery) }
            return (0, 1)
        case .release:
            try connection.cached(
                """
                UPDATE jobs SET state = 0, lease_owner = NULL, lease_expires_at = NULL
                WHERE id = ?1 AND lease_owner = ?2 AND state = 2
                """
            ).run([.int(id), .text(identity)])
            if connection.changes == 1 { mayHaveWork[delivery.queue.index] = true }
            return (0, 0)
        }
    }

    private func lostLease(_ delivery: Delivery) -> (completed: Int, failed: Int) {
        logger.warning(
            "a job's lease was lost before it was settled; another process may run it again",
            metadata: ["queue": "\(bindings[delivery.queue.index].name)", "job": "\(delivery.receipt)"]
        )
        return (0, 0)
    }

    private func count(_ queue: String, completed: Int, failed: Int) throws {
        try connection?.cached(
            """
            INSERT INTO queue_stats(queue, completed, failed) VALUES (?1, ?2, ?3)
            ON CONFLICT(queue) DO UPDATE SET completed = completed + ?2, failed = failed + ?3
            """
        ).run([.text(queue), .int(Int64(completed)), .int(Int64(failed))])
    }

    /// Moves a leased job to the dead letters, with `attempts` runs (those in the file when nil).
    /// `connection.changes` tells whether it was there.
    private func moveToDeadLetters(id: Int64, reason: String, now: Int64, ownedBy owner: String, attempts: Int?)
        throws
    {
        guard let connection else { return }
        try connection.cached(
            """
            INSERT INTO dead_jobs(id, queue, type, payload, priority, attempts, reason, enqueued_at, died_at)
            SELECT id, queue, type, payload, priority, coalesce(?5, attempts), ?3, enqueued_at, ?4 FROM jobs
            WHERE id = ?1 AND lease_owner = ?2 AND state = 2
            """
        ).run([.int(id), .text(owner), .text(reason), .int(now), attempts.map { .int(Int64($0)) } ?? .null])
        guard connection.changes == 1 else { return }
        try connection.cached("DELETE FROM jobs WHERE id = ?1").run([.int(id)])
    }

    private func claimJobs(queue index: Int, count: Int, now: Int64, into claimed: inout [Delivery]) throws {
        guard let connection else { return }
        let binding = bindings[index]
        let statement = try statements(connection).claim
        defer { statement.reset() }
        try statement.bind([.text(binding.name), .text(identity), .int(now + leaseMilliseconds), .int(Int64(count))])
        var rows:
            [(
                id: Int64, type: String, payload: [UInt8], attempts: Int, enqueuedAt: Int64, priority: Int,
                error: String?
            )] =
                []
        while try statement.step() {
            rows.append(
                (
                    statement.int64(0), statement.text(1) ?? "", statement.blob(2), statement.int(3),
                    statement.int64(4), statement.int(5), statement.text(6)
                )
            )
        }
        if rows.count < count { mayHaveWork[index] = false }
        rows.sort { ($0.priority, -$0.id) > ($1.priority, -$1.id) }
        for row in rows {
            let runs = max(0, row.attempts)
            if runs >= maxAttempts[index] {
                // Its runs used every attempt without settling it: the last one ended with its process
                // (retries settle with attempts left). The journal's charge wrote why.
                let reason = row.error ?? RunCharge.reason
                try moveToDeadLetters(
                    id: row.id,
                    reason: RetryPolicy.gaveUp(reason, after: runs),
                    now: now,
                    ownedBy: identity,
                    attempts: runs
                )
                try self.count(binding.name, completed: 0, failed: 1)
                continue
            }
            let (nanoseconds, overflow) = UInt64(clamping: row.enqueuedAt).multipliedReportingOverflow(by: 1_000_000)
            claimed.append(
                Delivery(
                    queue: binding.id,
                    jobType: row.type,
                    payload: row.payload,
                    attempt: runs + 1,
                    enqueuedAt: overflow ? nil : nanoseconds,
                    receipt: UInt64(row.id),
                    suspect: row.error == RunCharge.reason
                )
            )
        }
    }

    private func promoteDelayed(now: Int64) throws {
        guard let connection else { return }
        let queues = try connection.query(
            "UPDATE jobs SET state = 0 WHERE state = 1 AND available_at <= ?1 RETURNING queue",
            [.int(now)]
        ) { $0.text(0) ?? "" }
        for name in Set(queues) {
            if let index = queueIndex[name] { mayHaveWork[index] = true }
        }
    }

    private func earliestDelayed() throws -> Int64? {
        guard let connection else { return nil }
        let rows = try connection.query("SELECT min(available_at) FROM jobs WHERE state = 1") { statement in
            statement.isNull(0) ? nil : statement.int64(0)
        }
        return rows.first ?? nil
    }

    // MARK: - Leases

    private func registerConsumer(now: Int64) throws {
        try connection?.cached(
            "INSERT OR REPLACE INTO consumers(identity, host, pid, heartbeat_at) VALUES (?1, ?2, ?3, ?4)"
        ).run([.text(identity), .text(host), .int(Int64(getpid())), .int(now)])
    }

    /// Runs `body` with the run journals of consumers that died, discarding them once `body` charged them
    /// (committed), keeping them for the next process when it threw.
    private func reclaimingOrphans(_ body: ([RunJournal.Orphan]) throws -> Void) throws {
        let orphans = RunJournal.orphans(withPrefix: Self.journalPrefix(path))
        do {
            try body(orphans)
        } catch {
            orphans.forEach(RunJournal.keep)
            throw error
        }
        orphans.forEach(RunJournal.discard)
    }

    /// Charges one attempt to each job a dead consumer's journal shows running, then frees its leases;
    /// frees the leases of other consumers that died on this host (without a journal: nothing is charged).
    /// A restart does not wait for its own old leases to expire.
    private func reclaimFromDeadConsumers(now: Int64, orphans: [RunJournal.Orphan]) throws {
        guard let connection else { return }
        for orphan in orphans {
            var charged = 0
            for key in orphan.keys {
                try connection.cached(
                    "UPDATE jobs SET attempts = attempts + 1, last_error = ?3 WHERE id = ?1 AND state = 2 AND lease_owner = ?2"
                ).run([.int(Int64(bitPattern: key)), .text(orphan.owner), .text(RunCharge.reason)])
                charged += connection.changes
            }
            try connection.cached(
                "UPDATE jobs SET state = 0, lease_owner = NULL, lease_expires_at = NULL WHERE state = 2 AND lease_owner = ?1"
            ).run([.text(orphan.owner)])
            let released = connection.changes
            try connection.cached("DELETE FROM consumers WHERE identity = ?1").run([.text(orphan.owner)])
            if released > 0 {
                for index in mayHaveWork.indices { mayHaveWork[index] = true }
                logger.info(
                    "reclaimed the jobs of a consumer that ended; those it was running were charged an attempt",
                    metadata: ["consumer": "\(orphan.owner)", "jobs": "\(released)", "charged": "\(charged)"])
            }
        }
        let consumers = try connection.query(
            "SELECT identity, pid FROM consumers WHERE host = ?1 AND identity != ?2",
            [
                .text(host), .text(identity),
            ]
        ) { ($0.text(0) ?? "", $0.int(1)) }
        for (other, pid) in consumers where !Self.processIsAlive(pid) || pid == Int(getpid()) {
            try connection.cached(
                "UPDATE jobs SET state = 0, lease_owner = NULL, lease_expires_at = NULL WHERE state = 2 AND lease_owner = ?1"
            ).run([.text(other)])
            let released = connection.changes
            try connection.cached("DELETE FROM consumers WHERE identity = ?1").run([.text(other)])
            if released > 0 {
                for index in mayHaveWork.indices { mayHaveWork[index] = true }
                logger.info(
                    "reclaimed jobs of a consumer that ended",
                    metadata: ["consumer": "\(other)", "jobs": "\(released)"])
            }
        }
    }

    private static func processIsAlive(_ pid: Int) -> Bool {
        kill(pid_t(pid), 0) == 0 || errno == EPERM
    }

    /// Renews this process's leases, and frees those of consumers whose leases expired.
    private func maintainLeases() throws {
        guard let connection else { return }
        let now = Milliseconds.now
        guard now >= nextLeaseRenewal else { return }
        nextLeaseRenewal = now + max(1, leaseMilliseconds / 3)
        try reclaimingOrphans { orphans in
            try connection.transaction {
                try connection.cached(
                    "UPDATE jobs SET lease_expires_at = ?2 WHERE state = 2 AND lease_owner = ?1"
                ).run([.text(identity), .int(now + leaseMilliseconds)])
                try registerConsumer(now: now)
                // Dead consumers' journals first: their running jobs are charged before expiry frees them.
                try reclaimFromDeadConsumers(now: now, orphans: orphans)
                try freeExpiredLeases(now: now)
                try connection.cached("DELETE FROM consumers WHERE heartbeat_at < ?1").run([
                    .int(now - 10 * leaseMilliseconds)
                ])
            }
        }
    }

    /// Frees the leases of consumers that stopped renewing them (hung, or on another host), uncharged.
    private func freeExpiredLeases(now: Int64) throws {
        guard let connection else { return }
        let freed = try connection.query(
            """
            UPDATE jobs SET state = 0, lease_owner = NULL, lease_expires_at = NULL
            WHERE state = 2 AND lease_expires_at < ?1 AND lease_owner != ?2 RETURNING queue
            """,
            [.int(now), .text(identity)]
        ) { $0.text(0) ?? "" }
        for name in Set(freed) {
            if let index = queueIndex[name] { mayHaveWork[index] = true }
        }
    }
}

/// Jobs handed to the store thread by a producer of this process, and the producer's wait for them.
private final class EnqueueRequest: @unchecked Sendable {
    let jobs: [NewJob]
    let done = DispatchSemaphore(value: 0)
    private(set) var result: Result<[Int64], any Error>?

    init(jobs: [NewJob]) { self.jobs = jobs }

    func finish(_ result: Result<[Int64], any Error>) {
        self.result = result
        done.signal()
    }
}

/// What a job is charged when its process died while running it.
enum RunCharge {
    static let reason = "its process ended while running it (a crash or a kill)"
}

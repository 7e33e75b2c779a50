import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging
import NIOConcurrencyHelpers

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
///
/// One duty per file: this one holds the state and the `JobSource` calls; the store thread's loop is in
/// `SQLiteSource+StoreLoop.swift`, the transaction it commits (settlements and claims) in
/// `SQLiteSource+Commit.swift`, leases and dead consumers in `SQLiteSource+Leases.swift`. Members are
/// internal so that those files can share them; the comment on each says which thread may touch it.
public final class SQLiteSource: JobSource, QueueDepthReporting, ConnectionReporting, @unchecked Sendable {
    // Unchecked Sendable: members shared between threads are guarded by `monitor`; the others belong to the store thread (each comment says which).
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
    /// The queue file as a library, opened on first use by the dead-letter calls.
    let deadLetterQueue = NIOLockedValueBox<SQLiteQueue?>(nil)
    /// The library API over the same file; its enqueues wake this source at once.
    public let queue: SQLiteQueue
    let options: Options
    let logger: Logger
    /// This consumer's name in the file's leases, `consumers` table and run journal (``makeIdentity()``).
    let identity: String
    let host: String
    /// The jobs this process is running, kept so that they outlive a crash.
    let journal: RunJournal
    /// Checkpoints the log off the store thread.
    let checkpointer: WALCheckpointer

    let monitor = MonotonicCondition()
    // Guarded by `monitor`.
    var pending: [SettledJob] = []
    var enqueues: [EnqueueRequest] = []
    var hinted: Set<String> = []
    /// Set when the file may hold work nobody has looked at yet: at start, and when it changed.
    var fileChanged = true
    /// Set before the store thread starts and cleared after it stopped; the store thread reads it.
    var watcher: FileChangeWatcher?
    /// Whether the watch is armed and has not fired since: the store thread arms it again before it waits.
    var watchArmed = true
    var storeState = StoreThreadState.notStarted
    /// Turns of the store thread's loop: tests read it to see that an idle source waits.
    var storeTurns = 0
    /// Set while the path no longer names the file this source opened (deleted or replaced).
    var fileLost = false
    /// The file the path named when the source started (store thread only).
    var openedFile: QueueFileIdentity?
    /// When the store thread next looks at the path (seconds since 1970; store thread only).
    var nextIdentityCheck: Double = 0

    /// False while the queue file this source opened is no longer at its path: `/readyz` then says so.
    public var isConnected: Bool { monitor.withLock { !fileLost } }

    // Owned by the store thread once started.
    var connection: SQLiteConnection?
    var sink: (any DeliverySink)?
    var bindings: [QueueBinding] = []
    var queueIndex: [String: Int] = [:]
    /// The bindings whose names are patterns, in binding order (the first that matches serves a name).
    var patternIndices: [Int] = []
    /// The bindings that share by fairness key and are not patterns.
    var keyedQueues: [Int] = []
    /// Their names as a JSON array, bound whole to the statement that gives their unkeyed jobs a key.
    var keyedQueueNames = "[]"
    /// Set when jobs written since this id may include a keyed queue's jobs without a key, which the next
    /// transaction gives the key '' (``adoptUnkeyedJobs(after:)``; store thread only).
    var unkeyedAfter: Int64?
    /// Per binding that shares by key: the key its last claim stopped at (nil: from the first).
    var keyCursor: [String?] = []
    /// Per binding that shares by key: jobs left in the turn of the key at `keyCursor` (store thread only).
    var keyTurnLeft: [Int] = []
    /// Per binding: jobs per turn by key, '' for the keys not listed (``jobsPerTurn(_:)``).
    var jobsPerTurn: [[String: Int]] = []
    /// Per binding that shares by key: whether one statement may claim a job of each of its next keys
    /// (``claimEachKeyInTurn(queue:count:now:into:)``; store thread only).
    var claimsEachKeyAtOnce: [Bool] = []

    var maxAttempts: [Int] = []
    var outstanding: [Int] = []
    /// What the current transaction settled (store thread only).
    var tally = SettledTally(queues: 0)
    var mayHaveWork: [Bool] = []
    /// Set for a globally capped queue whose cap every consumer's leases used up when last counted; cleared
    /// when a lease may have been freed: this process settled one, another process wrote, leases expired.
    var capFull: [Bool] = []
    var nextDelayedDue: Int64?
    var lastDataVersion: Int64 = 0
    var nextLeaseRenewal: Int64 = 0
    var failureBackoff: Duration = .zero
    var highestSeenID: Int64 = 0
    var lastFullProbe: Double = 0
    /// The most queues one transaction claims from.
    static let claimQueriesPerCommit = 256
    /// Jobs after which a transaction that claims for an engine holding nothing commits and hands them on.
    static let firstHandOver = 64
    /// Where the next transaction's claims start (store thread only).
    var claimCursor = 0
    /// True when the last transaction stopped claiming before it had visited every queue (store thread only).
    var claimsUnfinished = false
    /// When every queue should be probed for work made ready by another process (seconds since 1970).
    var fullProbeDue: Double?
    /// When to look for another writer's commit again (seconds since 1970), after a file change was
    /// noticed before the commit was visible.
    var recheckAt: Double?
    var rechecksLeft = 0
    /// Delays of the rechecks after a notice, shortest first.
    static let recheckDelays = [0.0002, 0.001, 0.005, 0.02, 0.1]

    /// Opens (creating if needed) the queue file at `path`.
    public init(path: String, options: Options = Options(), logger: Logger = Logger(label: "fairway.sqlite")) throws {
        self.path = path
        self.options = options
        self.logger = logger
        self.queue = try SQLiteQueue(path: path, create: true)
        self.connection = try QueueFile.open(path: path, create: true, busyTimeout: options.busyTimeout)
        self.host = ProcessInfo.processInfo.hostName
        self.identity = Self.makeIdentity()
        self.journal = try RunJournal(prefix: Self.journalPrefix(path), owner: identity)
        self.checkpointer = WALCheckpointer(path: path)
        queue.onEnqueue = { [weak self] queues in self?.hint(queues) }
    }

    /// A consumer's name in the file: 12 random base-32 characters (60 bits). Every leased row carries it,
    /// so its length is paid on every claim and ack: the host name it used to start with (a Kubernetes pod
    /// name is 30 characters) made a drain 11 % slower. The `consumers` table keeps host and pid beside it.
    static func makeIdentity() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)
        var generator = SystemRandomNumberGenerator()
        return String(decoding: (0..<12).map { _ in alphabet[Int(generator.next() % 32)] }, as: UTF8.self)
    }

    /// Sets each queue's attempts, so that a job whose attempts ran out while its process died is
    /// dead-lettered when claimed instead of run again. Call before `start`.
    public func setMaxAttempts(_ attempts: [String: Int]) {
        monitor.withLock { configuredAttempts = attempts }
    }

    var configuredAttempts: [String: Int] = [:]
    /// The queue names and patterns the bindings serve, for the depth readers (guarded by `monitor`).
    var servedNames: Set<String> = []
    var servedPatterns: [QueuePattern] = []

    // MARK: - JobSource

    public func start(queues: [QueueBinding], sink: any DeliverySink) throws {
        guard let connection else { throw SQLiteError(path: path, code: 21, message: "source already closed") }
        let attempts = monitor.withLock {
            servedNames = Set(queues.filter { $0.pattern == nil }.map(\.name))
            servedPatterns = queues.compactMap(\.pattern)
            return configuredAttempts
        }
        bindings = queues
        queueIndex = Dictionary(uniqueKeysWithValues: queues.enumerated().map { ($1.name, $0) })
        patternIndices = queues.indices.filter { queues[$0].pattern != nil }
        keyedQueues = queues.indices.filter { queues[$0].keys != nil && queues[$0].pattern == nil }
        keyedQueueNames = SQLiteQueue.jsonList(keyedQueues.map { queues[$0].name })
        keyCursor = Array(repeating: nil, count: queues.count)
        keyTurnLeft = Array(repeating: 0, count: queues.count)
        jobsPerTurn = queues.map { Self.jobsPerTurn($0.keys) }
        claimsEachKeyAtOnce = queues.indices.map { mayClaimEachKeyAtOnce(queues, $0) }

        maxAttempts = queues.map { attempts[$0.name] ?? .max }
        outstanding = Array(repeating: 0, count: queues.count)
        tally = SettledTally(queues: queues.count)
        mayHaveWork = Array(repeating: true, count: queues.count)
        capFull = Array(repeating: false, count: queues.count)
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
                try adoptUnkeyedJobs(
                    after: SQLiteQueue.keysGivenThrough(keyedQueues.map { queues[$0].name }, in: connection))
            }
        }
        lastDataVersion = try connection.dataVersion()
        highestSeenID = try highestJobID()
        nextDelayedDue = try earliestDelayed()
        nextLeaseRenewal = now + leaseMilliseconds / 3
        monitor.withLock { storeState = .delivering }
        queue.routeEnqueue = { [weak self] jobs in
            guard let self else { throw EnqueueError(index: nil, message: "the queue file's source has stopped") }
            return try self.enqueueThroughStore(jobs)
        }
        openedFile = QueueFileIdentity(path: path)
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
        pending.append(SettledJob(delivery, settlement))
        if pending.count == 1 { monitor.signal() }
        monitor.unlock()
    }

    /// Hands them to the store thread together: one hold of the lock, at most one wake-up.
    public func settle(contentsOf settlements: [(Delivery, Settlement)]) {
        monitor.lock()
        let wasEmpty = pending.isEmpty
        pending.append(contentsOf: settlements.lazy.map { SettledJob($0.0, $0.1) })
        if wasEmpty && !pending.isEmpty { monitor.signal() }
        monitor.unlock()
    }

    public func stopDelivering() {
        monitor.withLock {
            if storeState == .delivering { storeState = .holding }
            monitor.signal()
        }
    }

    public func close() {
        queue.routeEnqueue = nil
        monitor.lock()
        switch storeState {
        case .notStarted: storeState = .stopped
        case .delivering, .holding: storeState = .closing
        case .closing, .stopped: break
        }
        monitor.signal()
        while storeState == .closing {
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

    func noticeFileChange() {
        monitor.withLock {
            fileChanged = true
            watchArmed = false
            monitor.signal()
        }
    }

    /// Ready jobs and the oldest one's age per queue, from the file (on the caller's reader connection).
    /// The queues a pattern admits are added up under the pattern, the queue that serves them.
    public func queueDepths() -> [String: QueueDepth] {
        let stats = (try? queue.stats()) ?? [:]
        let (named, patterns) = monitor.withLock { (servedNames, servedPatterns) }
        var depths: [String: QueueDepth] = [:]
        for (name, stat) in stats {
            let depth = QueueDepth(ready: stat.ready, oldestAgeSeconds: stat.ready > 0 ? stat.oldestAgeSeconds : nil)
            guard !named.contains(name), let pattern = patterns.first(where: { $0.matches(name) }) else {
                depths[name] = depth
                continue
            }
            var sum = depths[pattern.text] ?? QueueDepth(ready: 0, oldestAgeSeconds: nil)
            sum.ready += depth.ready
            if let age = depth.oldestAgeSeconds { sum.oldestAgeSeconds = max(sum.oldestAgeSeconds ?? 0, age) }
            depths[pattern.text] = sum
        }
        return depths
    }

    /// Hands jobs to the store thread and waits until they are committed.
    func enqueueThroughStore(_ jobs: [NewJob]) throws -> [Int64] {
        let request = EnqueueRequest(jobs: jobs)
        let accepted = monitor.withLock { () -> Bool in
            guard storeState == .delivering || storeState == .holding else { return false }
            enqueues.append(request)
            monitor.signal()
            return true
        }
        guard accepted else {
            let connection = try QueueFile.open(path: path, create: false)
            return try connection.transaction { try SQLiteQueue.insert(jobs, into: connection, now: Milliseconds.now) }
        }
        return try request.result.wait().get()
    }

    /// Wakes the store thread because jobs were enqueued on these queues by this process.
    func hint(_ queues: Set<String>) {
        monitor.withLock {
            hinted.formUnion(queues)
            monitor.signal()
        }
    }

    /// The statements run for every job, prepared on first use (store thread only).
    var jobStatements: JobStatements?
}

/// What a job is charged when its process died while running it.
enum RunCharge {
    static let reason = "its process ended while running it (a crash or a kill)"
}

/// Where the store thread is in its life. Guarded by the source's `monitor`.
enum StoreThreadState: Equatable {
    case notStarted
    /// Running: settling, taking enqueues, and claiming new jobs for the engine.
    case delivering
    /// Running, but claiming nothing: the engine drains (`stopDelivering`).
    case holding
    /// Asked to stop (`close`): it commits what is pending, then ends.
    case closing
    /// Ended, or closed before it started.
    case stopped
}

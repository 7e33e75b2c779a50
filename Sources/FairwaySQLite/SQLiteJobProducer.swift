import FairwayRuntime
import Foundation
import NIOConcurrencyHelpers

/// Enqueues into a SQLite queue file, shared with any consumer of the file in this process or another.
///
/// Before it writes, it checks what the consumers declared in the file when they started (their queues and,
/// per queue, the job types they handle) and refuses, with a ``ProducerRefusal`` that names the known
/// queues, jobs that no consumer would take. It never creates the file unless told to (a typo in a path
/// would otherwise start a new, empty queue that nobody reads).
public final class SQLiteJobProducer: JobProducer {
    /// The queue file this producer writes to.
    public let queue: SQLiteQueue
    public let checks: ProducerChecks
    /// True when this producer may create the file, and so may fill a file no consumer has declared yet.
    private let mayCreate: Bool
    private let declarations = NIOLockedValueBox<(queues: DeclaredQueues?, readAt: UInt64)>((nil, 0))

    /// Opens the queue file at `path`.
    /// - Parameter create: create the file if it does not exist (and accept any queue until a consumer has
    ///   declared its own); otherwise a missing file is refused.
    public init(path: String, create: Bool = false, checks: ProducerChecks = ProducerChecks()) throws {
        if !create && !FileManager.default.fileExists(atPath: path) {
            throw ProducerRefusal.missingFile(path: path)
        }
        self.queue = try SQLiteQueue(path: path, create: create)
        self.checks = checks
        self.mayCreate = create
    }

    /// Writes through a queue file already open in this process, such as a running source's: its jobs
    /// then wake that source at once.
    public init(queue: SQLiteQueue, checks: ProducerChecks = ProducerChecks()) {
        self.queue = queue
        self.checks = checks
        self.mayCreate = false
    }

    public func enqueue(contentsOf jobs: [NewJob]) throws -> [String] {
        try check(jobs)
        return try queue.enqueue(contentsOf: jobs).map { String($0) }
    }

    /// Throws when a job names a queue or a job type that no consumer of the file declared.
    func check(_ jobs: [NewJob]) throws {
        guard !(checks.allowUndeclaredQueues && checks.allowUnknownJobTypes) else { return }
        var declared = try currentDeclarations(refresh: false)
        if declared.map({ known in jobs.contains { known.serving($0.queue) == nil } }) ?? true {
            // A consumer may have started (or been reconfigured) since the last read.
            declared = try currentDeclarations(refresh: true)
        }
        guard let declared else {
            if checks.allowUndeclaredQueues || mayCreate { return }
            throw ProducerRefusal.nothingDeclared(path: queue.path)
        }
        for job in jobs {
            guard let declaration = declared.serving(job.queue) else {
                if checks.allowUndeclaredQueues { continue }
                throw ProducerRefusal.undeclaredQueue(
                    queue: job.queue, in: queue.path, known: declared.byName.keys.sorted())
            }
            if let types = declaration.jobTypes, !checks.allowUnknownJobTypes, !types.contains(job.type) {
                throw ProducerRefusal.unknownJobType(type: job.type, queue: job.queue, known: types)
            }
        }
    }

    /// The declarations, read again from the file when asked to or when older than a second.
    private func currentDeclarations(refresh: Bool) throws -> DeclaredQueues? {
        let now = MonotonicClock.now
        let cached = declarations.withLockedValue { $0 }
        if !refresh, cached.readAt > 0, now < cached.readAt + 1_000_000_000 { return cached.queues }
        let fresh = try queue.declaredQueues().map(DeclaredQueues.init)
        declarations.withLockedValue { $0 = (fresh, now) }
        return fresh
    }
}

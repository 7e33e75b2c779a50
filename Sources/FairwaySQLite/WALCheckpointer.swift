import CSQLite
import FairwayRuntime
import Foundation

/// Copies the write-ahead log back into the queue file on a thread of its own, so that the store thread,
/// the file's only writer in this process, never waits for a checkpoint and its `fdatasync`.
///
/// SQLite's default runs a checkpoint inside the commit that grows the log past 1,000 pages; under a
/// drain that is a tenth of the writer's time and most of its waiting. Here the writer's commit only
/// signals; a second connection checkpoints (PASSIVE: it never blocks the writer or readers) while the
/// writer goes on. Under steady writes a background checkpoint never quite catches up with the end of the
/// log, and SQLite starts the log over only when one has; so the writer finishes the job itself once the
/// log passes `inlineCheckpointPages` (16 MiB). That checkpoint copies only what the background ones left,
/// and the log stays bounded whatever the load.
final class WALCheckpointer: @unchecked Sendable {
    // Unchecked Sendable: `connection` belongs to the checkpoint thread once started; `state` is guarded by `condition`.
    /// Log pages after a commit that start a background checkpoint (SQLite's own threshold).
    static let backgroundCheckpointPages = 1_000
    /// Log pages after a commit at which the writer checkpoints in its own commit, as SQLite would at
    /// 1,000. Measured on a 120-queue drain: 1,000 costs the store thread a fifth more time than 4,000;
    /// 8,000 and 16,000 gain nothing more and keep a larger log (docs/benchmarks.md).
    static let inlineCheckpointPages = 4_000

    private let path: String
    /// The checkpoint thread's own connection (that thread only, once started).
    private var connection: SQLiteConnection?
    private let condition = MonotonicCondition()
    // Guarded by `condition`.
    private var state = State.notStarted

    /// The checkpoint thread's life.
    private enum State {
        case notStarted
        /// Waiting for a commit to ask for a checkpoint.
        case idle
        case checkpointRequested
        /// ``stop(writer:)`` is waiting for the thread to end.
        case stopping
        case stopped
    }

    init(path: String) {
        self.path = path
    }

    /// Takes over `writer`'s checkpoints and starts the checkpoint thread.
    func start(writer: SQLiteConnection) throws {
        connection = try SQLiteConnection(path: path, mode: .readWrite)
        condition.withLock { state = .idle }
        sqlite3_wal_hook(
            writer.handle,
            { context, database, _, pages in
                let checkpointer = Unmanaged<WALCheckpointer>.fromOpaque(context!).takeUnretainedValue()
                if pages >= Int32(WALCheckpointer.inlineCheckpointPages) {
                    sqlite3_wal_checkpoint_v2(database, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
                } else if pages >= Int32(WALCheckpointer.backgroundCheckpointPages) {
                    checkpointer.request()
                }
                return SQLITE_OK
            }, Unmanaged.passUnretained(self).toOpaque())
        let thread = Thread { [self] in run() }
        thread.name = "fairway-sqlite-checkpoint"
        thread.start()
    }

    /// Stops the thread and hands checkpoints back to `writer` (SQLite's automatic ones).
    func stop(writer: SQLiteConnection?) {
        if let handle = writer?.handle {
            sqlite3_wal_autocheckpoint(handle, Int32(Self.backgroundCheckpointPages))
        }
        condition.lock()
        switch state {
        case .notStarted: state = .stopped
        case .idle, .checkpointRequested: state = .stopping
        case .stopping, .stopped: break
        }
        condition.signal()
        while state != .stopped {
            condition.wait()
        }
        condition.unlock()
    }

    private func request() {
        condition.lock()
        if state == .idle {
            state = .checkpointRequested
            condition.signal()
        }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while state == .idle {
                condition.wait()
            }
            let stop = state != .checkpointRequested
            if !stop { state = .idle }
            condition.unlock()
            if stop { break }
            // A failure (the file is busy, say) leaves the log to the next request or to the writer's own
            // checkpoint at `inlineCheckpointPages`; nothing is lost either way.
            // A connection learns that the file is in WAL mode when it first reads it; until then a
            // checkpoint does nothing.
            _ = try? connection?.query("PRAGMA schema_version") { $0.int(0) }
            sqlite3_wal_checkpoint_v2(connection?.handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
        }
        connection = nil
        condition.withLock {
            state = .stopped
            condition.broadcast()
        }
    }
}

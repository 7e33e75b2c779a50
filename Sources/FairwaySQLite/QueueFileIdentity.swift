import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Which file a path names (device and inode), to notice that the queue file was deleted or replaced while
/// a consumer has it open: SQLite goes on with the file it opened, and jobs written to the path from then on
/// land in another file that this consumer never reads.
struct QueueFileIdentity: Equatable {
    let device: UInt64
    let inode: UInt64

    /// The file at `path` now; nil when there is none.
    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }
}

extension SQLiteSource {
    /// How often the store thread looks whether the path still names the file it opened.
    static let identityCheckInterval = 1.0

    /// Looks, at most every ``identityCheckInterval``, whether the path still names the file this source
    /// opened; says so in the log when that changes, and readiness follows (``isConnected``).
    /// Store thread only.
    func checkFileIdentity() {
        let now = Date().timeIntervalSince1970
        guard now >= nextIdentityCheck, let opened = openedFile else { return }
        nextIdentityCheck = now + Self.identityCheckInterval
        let current = QueueFileIdentity(path: path)
        let lost = current != opened
        let was = monitor.withLock { () -> Bool in
            defer { fileLost = lost }
            return fileLost
        }
        if lost && !was {
            logger.error(
                """
                the queue file was \(current == nil ? "deleted" : "replaced by another file") while in use: this \
                process goes on with the file it opened, and jobs written to the path now are not seen by it; \
                restart it
                """,
                metadata: ["path": "\(path)"])
        } else if !lost && was {
            logger.notice("the queue file is back at its path", metadata: ["path": "\(path)"])
        }
    }
}

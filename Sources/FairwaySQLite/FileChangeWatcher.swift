#if os(Linux)
    import FairwayRuntime
    import Foundation
    import Glibc

    /// Calls back on the first write to any of the watched files, by any process, after each `arm()`:
    /// the way the source notices jobs enqueued by other processes without a polling tick.
    ///
    /// One-shot (inotify's `IN_ONESHOT`) because a watch that stays armed makes every page the process
    /// itself writes to the log post an event from inside its `pwrite`: 5–10 % of the store thread in a
    /// deep drain. The store thread arms the watch only when it is about to wait. Costs nothing while idle.
    final class FileChangeWatcher: @unchecked Sendable {
        // Unchecked Sendable: its stored properties are file descriptors, paths and a one-shot, set in init and used through thread-safe system calls.
        private let notify: Int32
        private let paths: [String]
        private let stopPipe: (read: Int32, write: Int32)
        private let stopped = OneShot<Void>()

        /// Returns nil when inotify is not available (then the caller keeps a short tick). Starts armed.
        init?(paths: [String], onChange: @escaping @Sendable () -> Void) {
            let notify = inotify_init1(Int32(IN_CLOEXEC))
            guard notify >= 0 else { return nil }
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else {
                Glibc.close(notify)
                return nil
            }
            self.notify = notify
            self.paths = paths
            self.stopPipe = (fds[0], fds[1])
            guard arm() else {
                Glibc.close(notify)
                Glibc.close(fds[0])
                Glibc.close(fds[1])
                return nil
            }
            let thread = Thread { [notify, stopPipe, stopped] in
                var buffer = [UInt8](repeating: 0, count: 4096)
                var descriptors = [
                    pollfd(fd: notify, events: Int16(POLLIN), revents: 0),
                    pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0),
                ]
                while true {
                    let ready = poll(&descriptors, 2, -1)
                    if ready < 0 && errno == EINTR { continue }
                    if ready < 0 || descriptors[1].revents != 0 { break }
                    if descriptors[0].revents != 0 {
                        let count = buffer.withUnsafeMutableBytes { read(notify, $0.baseAddress, $0.count) }
                        // A fired one-shot watch also posts IN_IGNORED as it goes: that is no change.
                        if count > 0 && Self.containsModification(buffer, count: count) { onChange() }
                    }
                }
                stopped.fulfil(())
            }
            thread.name = "fairway-sqlite-watch"
            thread.start()
        }

        /// Watches every path until the next write to one of them; false when a path cannot be watched.
        @discardableResult
        func arm() -> Bool {
            paths.allSatisfy { inotify_add_watch(notify, $0, UInt32(IN_MODIFY) | UInt32(IN_ONESHOT)) >= 0 }
        }

        /// Stops watching and waits for the watcher's thread to end.
        func stop() {
            var byte: UInt8 = 1
            _ = write(stopPipe.write, &byte, 1)
            stopped.wait()
            Glibc.close(notify)
            Glibc.close(stopPipe.read)
            Glibc.close(stopPipe.write)
        }

        /// Whether the events read into `buffer` include a write (events of watched files carry no name).
        private static func containsModification(_ buffer: [UInt8], count: Int) -> Bool {
            let header = MemoryLayout<inotify_event>.size
            var offset = 0
            while offset + header <= count {
                let (mask, length) = buffer.withUnsafeBytes { raw in
                    (
                        raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                        raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)
                    )
                }
                if mask & UInt32(IN_MODIFY) != 0 { return true }
                offset += header + Int(length)
            }
            return false
        }
    }
#else
    /// No inotify here: the source falls back to its change tick.
    final class FileChangeWatcher: @unchecked Sendable {
        // Unchecked Sendable: it has no state.
        init?(paths: [String], onChange: @escaping @Sendable () -> Void) { return nil }
        @discardableResult func arm() -> Bool { false }
        func stop() {}
    }
#endif

#if os(Linux)
    import FairwayRuntime
    import Foundation
    import Glibc

    /// Calls back when any of the watched files is written, by any process, through inotify: the way the
    /// source notices jobs enqueued by other processes without a polling tick. Costs nothing while idle.
    final class FileChangeWatcher: @unchecked Sendable {
        // Unchecked Sendable: its stored properties are file descriptors and a one-shot, set in init and used through thread-safe system calls.
        private let notify: Int32
        private let stopPipe: (read: Int32, write: Int32)
        private let stopped = OneShot<Void>()

        /// Returns nil when inotify is not available (then the caller keeps a short tick).
        init?(paths: [String], onChange: @escaping @Sendable () -> Void) {
            let notify = inotify_init1(Int32(IN_CLOEXEC))
            guard notify >= 0 else { return nil }
            var watched = 0
            for path in paths where inotify_add_watch(notify, path, UInt32(IN_MODIFY)) >= 0 {
                watched += 1
            }
            var fds: [Int32] = [0, 0]
            guard watched == paths.count, pipe(&fds) == 0 else {
                Glibc.close(notify)
                return nil
            }
            self.notify = notify
            self.stopPipe = (fds[0], fds[1])
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
                        _ = buffer.withUnsafeMutableBytes { read(notify, $0.baseAddress, $0.count) }
                        onChange()
                        // The process's own commits modify the file too. Not waiting in poll for a
                        // millisecond lets the kernel merge their events instead of waking this thread on
                        // every write (5 % of a drain's CPU); a first change after quiet still wakes it at once.
                        usleep(1_000)
                    }
                }
                stopped.fulfil(())
            }
            thread.name = "fairway-sqlite-watch"
            thread.start()
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
    }
#else
    /// No inotify here: the source falls back to its change tick.
    final class FileChangeWatcher: @unchecked Sendable {
        // Unchecked Sendable: its stored properties are file descriptors and a one-shot, set in init and used through thread-safe system calls.
        init?(paths: [String], onChange: @escaping @Sendable () -> Void) { return nil }
        func stop() {}
    }
#endif

import FairwayRuntime
import Foundation

/// Forks worker processes from one thread that lives as long as the process.
///
/// A worker is SIGKILLed when its supervisor dies (`PR_SET_PDEATHSIG`), but the kernel sends that signal
/// when the *thread* that forked the child ends, not the process. Forked from the engine's worker threads,
/// which come and go (a replacement for a hung job, one thread too many after it), a pooled worker died
/// with the thread that had started it while other threads still used it, and the job just sent to it was
/// charged a crash "killed from outside" that nobody outside caused.
enum WorkerSpawner {
    /// Runs `body` (which forks) on the spawning thread, blocking the caller until it returns.
    static func run(_ body: @escaping @Sendable () -> pid_t) -> pid_t {
        let request = Request(body)
        let thread = self.thread
        thread.condition.lock()
        defer { thread.condition.unlock() }
        thread.waiting.append(request)
        thread.condition.broadcast()
        while request.pid == nil {
            thread.condition.wait()
        }
        return request.pid ?? -1
    }

    /// One fork asked for; `pid` is set once it ran. Guarded by the spawning thread's condition.
    private final class Request: @unchecked Sendable {
        // Unchecked Sendable: `pid` is read and written only under `SpawningThread.condition`.
        let body: @Sendable () -> pid_t
        var pid: pid_t?

        init(_ body: @escaping @Sendable () -> pid_t) {
            self.body = body
        }
    }

    private final class SpawningThread: @unchecked Sendable {
        // Unchecked Sendable: `waiting` is guarded by `condition`. Spawns are rare: one condition serves
        // both the thread (new requests) and the callers (their pid).
        let condition = MonotonicCondition()
        var waiting: [Request] = []

        init() {
            let thread = Thread { [self] in serve() }
            thread.name = "fairway-worker-spawner"
            thread.start()
        }

        private func serve() {
            condition.lock()
            while true {
                while waiting.isEmpty {
                    condition.wait()
                }
                let request = waiting.removeFirst()
                condition.unlock()
                let pid = request.body()
                condition.lock()
                request.pid = pid
                condition.broadcast()
            }
        }
    }

    /// Started on first use, never ended.
    private static let thread = SpawningThread()
}

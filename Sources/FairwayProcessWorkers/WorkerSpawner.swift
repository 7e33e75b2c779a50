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
    /// Runs `fork` (in `body`) on the spawning thread and returns its result to the caller.
    static func run(_ body: @escaping @Sendable () -> pid_t) -> pid_t {
        let request = Request(body)
        thread.condition.withLock {
            thread.requests.append(request)
            thread.condition.broadcast()
        }
        request.condition.lock()
        while request.pid == nil {
            request.condition.wait()
        }
        defer { request.condition.unlock() }
        return request.pid ?? -1
    }

    private final class Request: @unchecked Sendable {
        // Unchecked Sendable: `pid` is guarded by `condition`; `body` is only read.
        let body: @Sendable () -> pid_t
        let condition = MonotonicCondition()
        var pid: pid_t?

        init(_ body: @escaping @Sendable () -> pid_t) {
            self.body = body
        }
    }

    private final class SpawningThread: @unchecked Sendable {
        // Unchecked Sendable: `requests` is guarded by `condition`.
        let condition = MonotonicCondition()
        var requests: [Request] = []

        init() {
            let thread = Thread { [self] in serve() }
            thread.name = "fairway-worker-spawner"
            thread.start()
        }

        private func serve() {
            while true {
                condition.lock()
                while requests.isEmpty {
                    condition.wait()
                }
                let batch = requests
                requests.removeAll()
                condition.unlock()
                for request in batch {
                    let pid = request.body()
                    request.condition.withLock {
                        request.pid = pid
                        request.condition.broadcast()
                    }
                }
            }
        }
    }

    /// Started on first use, never ended.
    private static let thread = SpawningThread()
}

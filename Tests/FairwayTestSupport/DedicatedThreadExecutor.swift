import Foundation
import NIOConcurrencyHelpers

/// A task executor with a thread of its own. swift-testing runs synchronous tests on the shared
/// cooperative pool, and many of this suite's tests block their thread while a process or an engine
/// works; an async test that runs a `ServiceGroup` on that pool can then wait minutes for a thread. Run
/// such a test's tasks here instead (`withTaskExecutorPreference(DedicatedThreadExecutor.shared)`), and
/// it makes progress whatever the other tests do.
public final class DedicatedThreadExecutor: TaskExecutor, @unchecked Sendable {
    // Unchecked Sendable: `jobs` is only touched while `pending` (a pthread mutex and condition) is held.
    /// One executor for the whole test process; its thread lives as long as the process.
    public static let shared = DedicatedThreadExecutor(name: "fairway-test-executor")

    /// 1 while jobs wait, 0 when there are none.
    private let pending = ConditionLock(value: 0)
    private var jobs: [UnownedJob] = []

    private init(name: String) {
        let thread = Thread { [self] in runJobs() }
        thread.name = name
        thread.start()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pending.lock()
        jobs.append(job)
        pending.unlock(withValue: 1)
    }

    private func runJobs() {
        while true {
            pending.lock(whenValue: 1)
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            pending.unlock(withValue: 0)
            for job in batch {
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
    }
}

/// A task executor that runs jobs on the one worker thread that owns it, so that an async handler keeps its
/// worker for as long as it runs, exactly like a blocking one, and never touches the cooperative pool.
final class WorkerThreadExecutor: TaskExecutor, @unchecked Sendable {
    // Unchecked Sendable: `jobs` and `finished` are guarded by `monitor`, a pthread mutex the compiler cannot see.
    private let monitor = Monitor()
    private lazy var condition = Monitor.Condition(monitor)
    private var jobs: [UnownedJob] = []
    private var finished = true

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        monitor.lock()
        jobs.append(job)
        condition.signal()
        monitor.unlock()
    }

    /// Runs `body` to completion on the calling thread. `started` receives the task, for cancellation.
    func run(_ body: @escaping @Sendable () async -> Void, started: (Task<Void, Never>) -> Void) {
        monitor.lock()
        finished = false
        monitor.unlock()
        let task = Task(executorPreference: self) {
            await body()
            self.markFinished()
        }
        started(task)
        let executor = asUnownedTaskExecutor()
        while true {
            monitor.lock()
            while jobs.isEmpty && !finished {
                condition.wait()
            }
            if jobs.isEmpty {
                monitor.unlock()
                return
            }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            monitor.unlock()
            for job in batch {
                job.runSynchronously(on: executor)
            }
        }
    }

    private func markFinished() {
        monitor.lock()
        finished = true
        condition.signal()
        monitor.unlock()
    }
}

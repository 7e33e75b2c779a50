import Foundation

/// Job types every Fairway process knows, for demos, smoke tests and benchmarks.
public enum BuiltinJobs {
    /// Does nothing and succeeds. Its payload is not decoded.
    public static let noop = "noop"
    /// Blocks its worker thread for `ms` milliseconds, from 0 to a day: `{"ms": 250}`. Ignores cancellation
    /// on purpose.
    public static let sleep = JobName<SleepParameters>("sleep")
    /// Throws with the given message: `{"message": "boom"}`. Retried, then dead-lettered.
    public static let fail = JobName<FailParameters>("fail")
    /// Takes its process down on purpose: traps (fatalError) by default; `{"how": "segfault"}` raises SIGSEGV,
    /// `"kill"` SIGKILL (what an OOM kill looks like), `"exit"` exits with status 3, `"oom"` allocates and
    /// touches memory a megabyte at a time, up to `mb` (256 by default, at most 65,536), and traps when an
    /// allocation fails or the amount is reached (a job that balloons, for a worker's `memoryLimitMB`).
    public static let crash = "crash"

    struct CrashParameters: Decodable {
        var how: String?
        var mb: Int?
    }
    /// The longest sleep the `sleep` and `append` jobs accept, in milliseconds: a day.
    public static let maxSleepMilliseconds: Double = 86_400_000

    /// Appends a line to a file, then optionally sleeps: `{"path": "/tmp/runs.log", "line": "job-7", "ms": 2}`.
    /// Writes `line` followed by the job id and attempt, in one append, so a test can count every execution.
    /// With `end`, appends that line the same way after the sleep: the lines of concurrent jobs then bracket
    /// their runs, and their order in the file shows how many ran at once (a cap's check).
    public static let append = JobName<AppendParameters>("append")

    public struct AppendParameters: Codable, Sendable, Hashable {
        public var path: String
        public var line: String
        public var ms: Double?
        public var end: String?
        public init(path: String, line: String, ms: Double? = nil, end: String? = nil) {
            self.path = path
            self.line = line
            self.ms = ms
            self.end = end
        }
    }

    public struct SleepParameters: Codable, Sendable, Hashable {
        public var ms: Double
        public init(ms: Double) { self.ms = ms }
    }

    public struct FailParameters: Codable, Sendable, Hashable {
        public var message: String?
        public init(message: String? = nil) { self.message = message }
    }

    /// The error the `fail` job throws.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// Registers `noop`, `sleep`, `fail`, `crash`, `append` and `pooled`.
    public static func register(in registry: inout JobRegistry) {
        registry.register(rawJobType: noop, body: .blocking { _, _ in })
        registry.register(sleep) { parameters, _ in
            blockThread(nanoseconds: try nanoseconds(milliseconds: parameters.ms, job: "sleep"))
        }
        registry.register(fail) { parameters, _ in
            throw Failure(description: parameters.message ?? "fail job failed on purpose")
        }
        registry.register(append) { parameters, context in
            let pause = try parameters.ms.map { try nanoseconds(milliseconds: $0, job: "append") } ?? 0
            guard !parameters.path.isEmpty, !parameters.path.utf8.contains(0) else {
                throw JobError.permanent(
                    "append: path must be a file name without NUL bytes, got \(parameters.path.debugDescription)")
            }
            try appendLine(parameters.line, to: parameters.path, context)
            if pause > 0 {
                blockThread(nanoseconds: pause)
            }
            if let end = parameters.end {
                try appendLine(end, to: parameters.path, context)
            }
        }
        registerPooled(in: &registry)
        registry.register(
            rawJobType: crash,
            body: .blocking { payload, context in
                let parameters =
                    JSONNesting.isTooDeep(payload)
                    ? nil : try? JSONDecoder().decode(CrashParameters.self, from: Data(payload))
                let how = parameters?.how ?? "trap"
                switch how {
                case "segfault": raise(SIGSEGV)
                case "kill": raise(SIGKILL)
                case "exit": exit(3)
                case "oom":
                    let most = min(max(parameters?.mb ?? 256, 1), 65_536)
                    for megabytes in 0..<most {
                        guard let block = malloc(1 << 20) else {
                            fatalError("crash job: could not allocate more memory after \(megabytes) MB")
                        }
                        memset(block, 1, 1 << 20)
                    }
                    fatalError("crash job: allocated \(most) MB without a limit stopping it")
                default: break
                }
                fatalError("crash job on queue '\(context.queue)' trapped on purpose (attempt \(context.attempt))")
            })
    }

    /// Appends `line`, the job id and the attempt to the file at `path`, in one write.
    static func appendLine(_ line: String, to path: String, _ context: JobContext) throws {
        let text = "\(line) id=\(context.jobID) attempt=\(context.attempt)\n"
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard descriptor >= 0 else {
            throw Failure(description: "append: cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { Foundation.close(descriptor) }
        let written = text.utf8CString.withUnsafeBufferPointer { buffer in
            write(descriptor, buffer.baseAddress, buffer.count - 1)
        }
        guard written == text.utf8.count else {
            throw Failure(description: "append: short write to \(path)")
        }
    }

    /// A number of milliseconds from a payload as nanoseconds, refused (permanently) unless from 0 to a day.
    static func nanoseconds(milliseconds: Double, job: String) throws -> UInt64 {
        guard milliseconds.isFinite, milliseconds >= 0, milliseconds <= maxSleepMilliseconds else {
            throw JobError.permanent(
                "\(job): ms must be a number from 0 to \(Int(maxSleepMilliseconds)) (a day), got \(milliseconds)")
        }
        return UInt64((milliseconds * 1_000_000).rounded())
    }

    /// Sleeps the calling OS thread, resuming after signals.
    public static func blockThread(nanoseconds: UInt64) {
        // nanosleep for 0 still waits out the kernel's timer slack (about 0.1 ms on a VM): return at once.
        guard nanoseconds > 0 else { return }
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR {
            request = remaining
        }
    }
}

import Foundation

/// How the worker processes of a process-isolated queue are started and recycled.
public struct ProcessWorkerSettings: Sendable, Hashable {
    /// The program and its arguments. Empty means the running program itself, re-executed as a worker, so
    /// the handlers it registered run unchanged.
    public var command: [String]
    /// The folder workers start in, against which a relative program path (`./worker.sh`) is resolved; nil:
    /// the supervisor's. A configuration file sets its own folder, as it does for a SQLite path.
    public var workingDirectory: String?
    /// A worker is replaced after this many jobs (a leak costs a restart, never the process). 0: never.
    public var recycleAfterJobs: Int
    /// A worker whose resident memory exceeds this after a job is replaced. 0: never.
    public var recycleAboveMemoryBytes: Int
    /// After a job's timeout the worker is asked to stop (SIGTERM); past this grace it is killed (SIGKILL).
    public var killGrace: Duration
    /// The most data memory a worker may hold (RLIMIT_DATA: its heap and private writable mappings); an
    /// allocation past it fails inside that worker, which then usually dies and is replaced. 0: no limit.
    public var memoryLimitBytes: Int
    /// The most jobs one worker is sent before it answers the first (pipelining), when the worker offers
    /// a pipeline in its hello; the smaller of the two applies. 1: one job at a time. The default, 32, is
    /// the fastest depth measured for short jobs (docs/benchmarks.md). How long a job may wait in a
    /// pipeline is bounded by the engine's send-ahead budget (25 ms of expected run time), not by this depth.
    public var pipelineDepth: Int

    /// The largest pipeline depth accepted.
    public static let maxPipelineDepth = 64

    public init(
        command: [String] = [],
        workingDirectory: String? = nil,
        recycleAfterJobs: Int = 10_000,
        recycleAboveMemoryBytes: Int = 512 << 20,
        killGrace: Duration = .seconds(2),
        memoryLimitBytes: Int = 0,
        pipelineDepth: Int = 32
    ) {
        self.command = command
        self.workingDirectory = workingDirectory
        self.recycleAfterJobs = max(0, recycleAfterJobs)
        self.recycleAboveMemoryBytes = max(0, recycleAboveMemoryBytes)
        self.killGrace = killGrace
        self.memoryLimitBytes = max(0, memoryLimitBytes)
        self.pipelineDepth = min(max(1, pipelineDepth), Self.maxPipelineDepth)
    }

    /// Where `program` is: as given when absolute, against `directory` when it names a relative path,
    /// else the first executable match on PATH (as given when none is found, so that the start fails
    /// naming it).
    public static func locate(_ program: String, in directory: String?) -> String {
        if program.hasPrefix("/") { return program }
        if program.contains("/") {
            guard let directory else { return program }
            return directory.hasSuffix("/") ? directory + program : directory + "/" + program
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let candidate = "\(folder)/\(program)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return program
    }
}

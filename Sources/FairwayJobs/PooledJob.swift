import Foundation

extension BuiltinJobs {
    /// Holds one of `size` slots shared by every process on the host for `ms` milliseconds, the way a job
    /// holds a connection from a database's limited pool, waiting while all are taken:
    /// `{"pool": "/tmp/db-pool", "size": 85, "ms": 120, "path": "/tmp/runs.log", "line": "w8"}`.
    /// A slot is an exclusive lock on the file `slot-N` in the folder `pool`, so a process that dies frees
    /// its slot. With `path`, appends `line` when the run starts and, when it ends, `line` with the wall
    /// clock (milliseconds since 1970) at start, at taking the slot and at giving it back: a burst
    /// benchmark's record of queue time and of connections in use.
    public static let pooled = JobName<PooledParameters>("pooled")

    public struct PooledParameters: Codable, Sendable, Hashable {
        public var pool: String
        public var size: Int
        public var ms: Double
        public var path: String?
        public var line: String?
        public init(pool: String, size: Int, ms: Double, path: String? = nil, line: String? = nil) {
            self.pool = pool
            self.size = size
            self.ms = ms
            self.path = path
            self.line = line
        }
    }

    /// The most slots a pool may have.
    public static let maxPoolSize = 10_000

    static func registerPooled(in registry: inout JobRegistry) {
        registry.register(pooled) { parameters, context in
            let hold = try nanoseconds(milliseconds: parameters.ms, job: "pooled")
            guard (1...maxPoolSize).contains(parameters.size) else {
                throw JobError.permanent("pooled: size must be from 1 to \(maxPoolSize), got \(parameters.size)")
            }
            for path in [parameters.pool, parameters.path ?? "x"] where path.isEmpty || path.utf8.contains(0) {
                throw JobError.permanent("pooled: \(path.debugDescription) is not a file name")
            }
            let line = parameters.line ?? "pooled"
            let started = wallMilliseconds()
            if let path = parameters.path { try appendLine("start \(line)", to: path, context) }
            let slot = try takeSlot(of: parameters)
            let acquired = wallMilliseconds()
            blockThread(nanoseconds: hold)
            let released = wallMilliseconds()
            Foundation.close(slot)
            if let path = parameters.path {
                try appendLine(
                    "end \(line) started=\(started) acquired=\(acquired) released=\(released)", to: path, context)
            }
        }
    }

    /// Locks a free slot file of the pool and returns its descriptor; closing it frees the slot. When every
    /// slot is taken, waits for one of them, chosen at random (one connection's queue of a pool).
    private static func takeSlot(of parameters: PooledParameters) throws -> Int32 {
        try FileManager.default.createDirectory(atPath: parameters.pool, withIntermediateDirectories: true)
        let first = Int.random(in: 0..<parameters.size)
        for step in 0..<parameters.size {
            let descriptor = try openSlot((first + step) % parameters.size, of: parameters.pool)
            if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { return descriptor }
            Foundation.close(descriptor)
        }
        let descriptor = try openSlot(first, of: parameters.pool)
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let reason = String(cString: strerror(errno))
                Foundation.close(descriptor)
                throw Failure(description: "pooled: cannot lock a slot of \(parameters.pool): \(reason)")
            }
        }
        return descriptor
    }

    private static func openSlot(_ index: Int, of pool: String) throws -> Int32 {
        let path = "\(pool)/slot-\(index)"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw Failure(description: "pooled: cannot open \(path): \(String(cString: strerror(errno)))")
        }
        return descriptor
    }

    private static func wallMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }
}

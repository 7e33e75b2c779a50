import Foundation
import NIOConcurrencyHelpers

/// A program a test starts, through `posix_spawn`, and reaps by its pid alone.
///
/// Not Foundation's `Process`: up to Swift 6.3.1 its `run()` reads `/proc/self/fd` entries past their end while
/// it looks for descriptors to close, and a suite run died of SIGSEGV there (fixed upstream in
/// swiftlang/swift-corelibs-foundation#5472); its `waitUntilExit` was also seen waiting forever on a child that had
/// already exited. Here the child closes every descriptor above 2 itself (glibc's
/// `posix_spawn_file_actions_addclosefrom_np`), so a pipe of one test never leaks into another test's child and
/// holds its reader open.
///
/// A child still running when this is released is killed and reaped: a test that ends early must not leave a
/// process taking CPU from every test after it.
public final class ChildProcess: Sendable {
    /// Where one of the child's standard streams goes.
    public enum Stream: Sendable {
        /// The test process's own.
        case inherit
        /// `/dev/null`.
        case null
        /// A pipe whose other end is `input`, `output` or `error`.
        case pipe
        /// Appended to the file at this path.
        case append(String)
        /// For stderr only: wherever stdout goes.
        case sameAsOutput
    }

    /// How the child ended.
    public enum Exit: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)

        /// The exit code, or the number of the signal that ended it (as Foundation's `terminationStatus`).
        public var status: Int32 {
            switch self {
            case .exited(let code), .signaled(let code): code
            }
        }

        public var bySignal: Bool {
            if case .signaled = self { return true }
            return false
        }

        /// The status a shell reports: the exit code, or 128 + the signal.
        public var shellStatus: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        }

        init(waitStatus status: Int32) {
            let signal = status & 0x7F
            self = signal == 0 ? .exited((status >> 8) & 0xFF) : .signaled(signal)
        }
    }

    /// A program run to its end, with what it wrote.
    public struct Finished: Sendable {
        public var exit: Exit
        public var output: Data
        public var error: Data

        public var outputText: String { String(decoding: output, as: UTF8.self) }
        public var errorText: String { String(decoding: error, as: UTF8.self) }
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "cannot start \(path): \(reason)" }
    }

    public let pid: pid_t
    /// The write end of the child's stdin, when that is `.pipe`.
    public let input: FileHandle?
    /// The read end of the child's stdout, when that is `.pipe`.
    public let output: FileHandle?
    /// The read end of the child's stderr, when that is `.pipe`.
    public let error: FileHandle?
    private let ended = NIOLockedValueBox<Exit?>(nil)

    /// Starts the program at `path` (absolute: PATH is not searched) with `arguments`, the test process's
    /// environment with `environment` laid over it, in `directory` (nil: the test process's).
    public init(
        _ path: String, _ arguments: [String], environment: [String: String] = [:], directory: String? = nil,
        input: Stream = .null, output: Stream = .inherit, error: Stream = .inherit
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var parentEnds: [Int32] = []
        var childEnds: [Int32] = []
        defer { for descriptor in childEnds { close(descriptor) } }
        func plan(_ stream: Stream, _ target: Int32) throws -> FileHandle? {
            switch stream {
            case .inherit:
                return nil
            case .null:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
                return nil
            case .append(let file):
                posix_spawn_file_actions_addopen(&actions, target, file, O_WRONLY | O_APPEND | O_CREAT, 0o644)
                return nil
            case .sameAsOutput:
                posix_spawn_file_actions_adddup2(&actions, 1, target)
                return nil
            case .pipe:
                var ends: [Int32] = [0, 0]
                guard pipe(&ends) == 0 else {
                    throw SpawnError(path: path, reason: "pipe: \(String(cString: strerror(errno)))")
                }
                for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
                let (mine, theirs) = target == 0 ? (ends[1], ends[0]) : (ends[0], ends[1])
                parentEnds.append(mine)
                childEnds.append(theirs)
                posix_spawn_file_actions_adddup2(&actions, theirs, target)
                return FileHandle(fileDescriptor: mine, closeOnDealloc: true)
            }
        }
        do {
            self.input = try plan(input, 0)
            self.output = try plan(output, 1)
            self.error = try plan(error, 2)
        } catch {
            for descriptor in parentEnds { close(descriptor) }
            throw error
        }
        Self.closeFrom(&actions, 3)
        if let directory { Self.changeDirectory(&actions, directory) }
        let variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0)=\($1)" }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = variables.map { strdup($0) } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let failure = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard failure == 0 else {
            throw SpawnError(path: path, reason: String(cString: strerror(failure)))
        }
        self.pid = pid
    }

    deinit {
        if isRunning {
            kill(pid, SIGKILL)
            waitUntilExit()
        }
    }

    /// Whether the child has not ended yet (it is reaped as soon as it is seen to have ended).
    public var isRunning: Bool { reap() == nil }

    /// How the child ended; nil while it runs.
    public var exit: Exit? { reap() }

    /// Blocks until the child ends.
    @discardableResult
    public func waitUntilExit() -> Exit {
        if let exit = reap() { return exit }
        // Waits without reaping, so that other threads asking `isRunning` meanwhile are not blocked on the lock.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
        return reap() ?? .exited(-1)
    }

    private func reap() -> Exit? {
        ended.withLockedValue { ended in
            if let ended { return ended }
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
            ended = Exit(waitStatus: status)
            return ended
        }
    }

    /// Runs a program to its end with stdin `/dev/null` and returns its exit and all it wrote to stdout and to
    /// stderr (read together, so that a full stderr pipe cannot stall a child still writing to stdout).
    public static func run(
        _ path: String, _ arguments: [String], environment: [String: String] = [:], directory: String? = nil
    ) throws -> Finished {
        let child = try ChildProcess(
            path, arguments, environment: environment, directory: directory, output: .pipe, error: .pipe)
        var streams = [child.output!.fileDescriptor, child.error!.fileDescriptor].map {
            pollfd(fd: $0, events: Int16(POLLIN), revents: 0)
        }
        var read: [Data] = [Data(), Data()]
        var chunk = [UInt8](repeating: 0, count: 65536)
        while streams.contains(where: { $0.fd >= 0 }) {
            guard poll(&streams, nfds_t(streams.count), -1) >= 0 else {
                if errno == EINTR { continue }
                break
            }
            for index in streams.indices where streams[index].fd >= 0 && streams[index].revents != 0 {
                let count = chunk.withUnsafeMutableBytes { Glibc.read(streams[index].fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    read[index].append(contentsOf: chunk[0..<count])
                } else if count == 0 || errno != EINTR {
                    streams[index].fd = -1
                }
            }
        }
        return Finished(exit: child.waitUntilExit(), output: read[0], error: read[1])
    }

    private typealias FileActionWithDescriptor =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias FileActionWithPath =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    /// glibc declares these two (2.34 and 2.29) only under _GNU_SOURCE, which Swift's Glibc module does not
    /// define; they are looked up by name, once.
    private static let addCloseFrom = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np").map {
        unsafeBitCast($0, to: FileActionWithDescriptor.self)
    }
    private static let addChangeDirectory = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addchdir_np").map {
        unsafeBitCast($0, to: FileActionWithPath.self)
    }

    private static func closeFrom(_ actions: inout posix_spawn_file_actions_t, _ lowest: Int32) {
        _ = addCloseFrom?(&actions, lowest)
    }

    private static func changeDirectory(_ actions: inout posix_spawn_file_actions_t, _ directory: String) {
        guard let addChangeDirectory else {
            preconditionFailure("this C library cannot start a child in another folder")
        }
        _ = addChangeDirectory(&actions, directory)
    }
}

/// Runs a program to its end and returns its exit status, or 128 + the signal that ended it; 127 when it
/// cannot be started. `quiet` sends its stdout and stderr to `/dev/null`.
public func spawnAndWait(_ path: String, _ arguments: [String], quiet: Bool = false) -> Int32 {
    let stream: ChildProcess.Stream = quiet ? .null : .inherit
    guard let child = try? ChildProcess(path, arguments, input: .inherit, output: stream, error: stream) else {
        return 127
    }
    return child.waitUntilExit().shellStatus
}

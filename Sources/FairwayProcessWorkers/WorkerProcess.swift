import CProcess
import FairwayRuntime
import Foundation
import NIOConcurrencyHelpers

/// One worker process as its supervisor sees it: the pipes to it, and its life and death.
///
/// Jobs go out on the child's stdin (several ahead when it accepts a pipeline) and results come back on its stdout; its stderr is the
/// supervisor's, for logs. A child that dies mid-job is seen through its pidfd (or the end of its stdout, which a
/// program it started may hold open) and reaped here, so its pid is never signalled after it could have been
/// reused.
public final class WorkerProcess: @unchecked Sendable {
    // Unchecked Sendable: `life` is a locked box holding an enum; `jobsRun` belongs to the one worker thread that has the process checked out of its pool.
    /// The environment variable that tells a program it was started as a worker process.
    public static let environmentKey = "FAIRWAY_PROCESS_WORKER"

    public let pid: pid_t
    let channel: WorkerChannel
    /// Jobs this process has finished. Touched only by the thread that has the process checked out.
    var jobsRun = 0
    /// `jobsRun` when its memory was last read (0: never), likewise.
    var jobsAtMemoryCheck = 0
    /// Found above its pool's `recycleAboveMemoryMB` while busy: it is sent no more, and replaced.
    var overMemoryLimit = false
    /// Its replacement is starting, or started, in the background: it nears `recycleAfterJobs`. Likewise.
    var replacementStarted = false
    /// Jobs sent to it so far, with `outstanding` of them not answered yet: what recycling counts.
    func jobsSent(_ outstanding: Int) -> Int { jobsRun + outstanding }
    /// How many jobs it accepts before it answers the first, as its hello offered (1: one at a time). Set
    /// before the process is handed out, then read only.
    private(set) var pipeline = 1

    /// The process's life as its supervisor moves it on, only ever forward.
    private enum Life {
        /// Running; may be given jobs.
        case serving
        /// Sent SIGTERM; given no more jobs.
        case terminating
        /// Its stdin closed, so that it exits; given no more jobs.
        case retiring
        /// Exited and reaped, with how it ended; its pipes are closed and its pid is never signalled again.
        case reaped(exitDescription: String)

        var isReaped: Bool {
            if case .reaped = self { return true }
            return false
        }
    }
    private let life = NIOLockedValueBox(Life.serving)

    /// Relays the worker's stderr into the supervisor's log, when asked to.
    let stderrRelay: WorkerStderrRelay?

    /// The data limit it was started with (RLIMIT_DATA), 0 for none; named in the reason when it dies.
    let memoryLimitBytes: Int

    private init(pid: pid_t, channel: WorkerChannel, stderrRelay: WorkerStderrRelay?, memoryLimitBytes: Int) {
        self.pid = pid
        self.channel = channel
        self.stderrRelay = stderrRelay
        self.memoryLimitBytes = memoryLimitBytes
    }

    /// Marks which queue's job the worker runs now (nil: none), for the lines its stderr relay hands on.
    func running(queue: String?) {
        // Once per job: the relay only when the queue changes (a pipeline of one queue's jobs never asks).
        guard let stderrRelay, queue != runningQueue else { return }
        runningQueue = queue
        stderrRelay.running(queue: queue)
    }
    /// What `running(queue:)` last told the relay; touched only by the thread that has the process.
    private var runningQueue: String?

    /// Starts a worker and waits for its hello. `command` empty means this program, re-executed; `directory`
    /// is the folder it starts in (nil: ours), against which a relative program path is resolved. With a
    /// `stderrSink` its stderr goes there line by line; without, it is ours.
    static func spawn(
        command: [String], directory: String?, startTimeout: Duration,
        stderrSink: WorkerStderrRelay.Sink? = nil, memoryLimitBytes: Int = 0
    ) throws(WorkerStartError) -> WorkerProcess {
        let program: String
        let arguments: [String]
        if command.isEmpty {
            program = Self.currentExecutable()
            arguments = CommandLine.arguments.isEmpty ? [program] : CommandLine.arguments
        } else {
            program = ProcessWorkerSettings.locate(command[0], in: directory)
            arguments = command
            // Said here, before the fork: after it, a program that cannot be run is only an exit status 127.
            if access(program, X_OK) != 0 {
                throw .init(
                    command: arguments,
                    reason: program.contains("/")
                        ? "\(program): \(Self.errnoText())"
                        : "no program '\(program)' in PATH (\(ProcessInfo.processInfo.environment["PATH"] ?? ""))")
            }
        }
        var toChild: [Int32] = [-1, -1]
        var fromChild: [Int32] = [-1, -1]
        guard fw_pipe_cloexec(&toChild) == 0 else { throw .init(command: arguments, reason: Self.errnoText()) }
        guard fw_pipe_cloexec(&fromChild) == 0 else {
            close(toChild[0])
            close(toChild[1])
            throw .init(command: arguments, reason: Self.errnoText())
        }
        var environment = ProcessInfo.processInfo.environment
        environment[environmentKey] = "1"
        // A Swift worker that traps would spend about a second printing a backtrace before it dies, holding a
        // core while other queues wait; the supervisor reports the signal. Set SWIFT_BACKTRACE to have them.
        if environment["SWIFT_BACKTRACE"] == nil {
            environment["SWIFT_BACKTRACE"] = "enable=no"
        }
        var fromStderr: [Int32] = [-1, -1]
        if stderrSink != nil, fw_pipe_cloexec(&fromStderr) != 0 {
            close(toChild[0])
            close(toChild[1])
            close(fromChild[0])
            close(fromChild[1])
            throw .init(command: arguments, reason: Self.errnoText())
        }
        // Forked on the spawner's thread, which outlives every engine thread (see `WorkerSpawner`).
        let variables = environment.map { "\($0.key)=\($0.value)" }
        let (input, output, errors) = (toChild[0], fromChild[1], fromStderr[1])
        let pid = WorkerSpawner.run {
            Self.withCStrings(arguments) { argv in
                Self.withCStrings(variables) { envp in
                    fw_spawn_worker(program, argv, envp, input, output, errors, directory, Int64(memoryLimitBytes))
                }
            }
        }
        close(toChild[0])
        close(fromChild[1])
        if fromStderr[1] >= 0 { close(fromStderr[1]) }
        guard pid > 0 else {
            close(toChild[1])
            close(fromChild[0])
            if fromStderr[0] >= 0 { close(fromStderr[0]) }
            throw .init(command: arguments, reason: String(cString: strerror(-pid)))
        }
        let relay = stderrSink.map { WorkerStderrRelay(descriptor: fromStderr[0], pid: pid, sink: $0) }
        let process = WorkerProcess(
            pid: pid, channel: WorkerChannel(input: fromChild[0], output: toChild[1]), stderrRelay: relay,
            memoryLimitBytes: memoryLimitBytes)
        // Its end is seen as such, not only as the end of its stdout, which a program it starts may hold.
        process.channel.peerEnded = fw_pidfd_open(pid)
        do {
            guard process.waitReadable(timeout: startTimeout) else {
                process.kill()
                _ = process.reap()
                throw WorkerStartError(
                    command: arguments, reason: "no hello within \(startTimeout) (is it a Fairway worker?)")
            }
            // The whole hello within the start timeout: a worker that stalls halfway must not hang us.
            let (hello, _) = try process.channel.receive(before: ContinuousClock.now + startTimeout)
            guard hello.kind == .hello, hello.protocol == WorkerMessage.protocolVersion else {
                process.kill()
                _ = process.reap()
                throw WorkerStartError(
                    command: arguments,
                    reason: "expected hello for protocol \(WorkerMessage.protocolVersion), got \(hello.kind.rawValue)"
                        + (hello.protocol.map { " for protocol \($0)" } ?? ""))
            }
            let offered = hello.pipeline ?? 1
            guard offered >= 1 else {
                process.kill()
                _ = process.reap()
                throw WorkerStartError(
                    command: arguments, reason: "its hello offers a pipeline of \(offered) jobs; it must be at least 1")
            }
            process.pipeline = min(offered, ProcessWorkerSettings.maxPipelineDepth)
            process.channel.makeOutputNonBlocking()
            process.channel.makeInputNonBlocking()
            process.channel.yieldsBeforeSleeping = WorkerChannel.standardYields
        } catch let error as WorkerStartError {
            throw error
        } catch {
            // A worker whose pipe closed is dying: give its exit a moment to show. One that wrote something
            // other than a hello is alive, and is killed here: that death would be this kill, not news.
            let closed = (error as? WorkerProtocolError) == .closed
            guard process.exits(within: closed ? .seconds(1) : .zero) else {
                process.kill()
                process.reap()
                throw WorkerStartError(command: arguments, reason: "\(error); it was stopped")
            }
            var death = process.reap()
            if death == "exited with status 127" {
                // What the child exits with when its exec fails, and a shell when it cannot find a program.
                death += " (a program could not be run: not found, not executable, or neither a binary nor a #! script)"
            }
            throw WorkerStartError(command: arguments, reason: "\(error); it \(death)")
        }
        return process
    }

    /// Waits for the result of the job with id `id`, the oldest the worker has not answered (jobs are
    /// answered in the order sent). Throws when the worker dies or breaks the protocol.
    func result(of id: String) throws(WorkerProtocolError) -> WorkerMessage {
        let (message, _) = try channel.receive()
        guard message.kind == .result else {
            throw .malformed("expected a result, got \(message.kind.rawValue)")
        }
        guard message.id == id else {
            throw .malformed("result for job '\(message.id ?? "")' while job '\(id)' runs")
        }
        guard message.outcome != nil else { throw .malformed("result without an outcome") }
        jobsRun += 1
        return message
    }

    /// Asks the worker to stop its job (SIGTERM), and kills it (SIGKILL) if it is still there after `grace`.
    func terminate(grace: Duration) {
        let first = life.withLockedValue { life -> Bool in
            if !life.isReaped { _ = Foundation.kill(pid, SIGTERM) }
            guard case .serving = life else { return false }
            life = .terminating
            return true
        }
        guard first else { return }
        killAfter(grace)
    }

    /// True once ``terminate(grace:)`` or ``retire(grace:)`` was called, or the process ended: it is not
    /// given another job.
    var stopRequested: Bool {
        life.withLockedValue { life in
            if case .serving = life { return false }
            return true
        }
    }

    /// Ends the worker politely: its stdin closes, it exits, and it is reaped in the background; past
    /// `grace` it is killed.
    func retire(grace: Duration) {
        life.withLockedValue { life in
            switch life {
            case .serving, .terminating:
                close(channel.output)
                life = .retiring
            case .retiring, .reaped:
                break
            }
        }
        killAfter(grace)
        Self.onThreadOfItsOwn("fairway-reap") { [self] in _ = reap() }
    }

    /// SIGKILL after `grace`, timed on a thread of its own. Not on Dispatch's global queue: its few threads
    /// can all be held by blocking work (a reap waits for an exit): a kill queued behind them came 0.9 s
    /// late in a CI run, and never at all while every one of those threads was blocked (WorkerProcessEndTests).
    /// The thread looks every 10 ms whether the worker was reaped meanwhile and ends with it: a worker recycled
    /// every few seconds must not leave a thread asleep for each whole grace.
    private func killAfter(_ grace: Duration) {
        Self.onThreadOfItsOwn("fairway-kill") { [self] in
            let deadline = ContinuousClock.now + grace
            while ContinuousClock.now < deadline {
                if life.withLockedValue({ $0.isReaped }) { return }
                Thread.sleep(forTimeInterval: min(0.01, ContinuousClock.now.duration(to: deadline).timeInterval))
            }
            kill()
        }
    }

    /// Runs `body` on a new thread: for the rare waits of a worker's end (a timeout, a recycle, a shutdown).
    private static func onThreadOfItsOwn(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            // Named from the thread itself, for `ps` and /proc (not seen there under ThreadSanitizer).
            Thread.current.name = name
            body()
        }
        thread.start()
    }

    /// SIGKILL, unless the process was already reaped.
    func kill() {
        life.withLockedValue { life in
            if !life.isReaped { _ = Foundation.kill(pid, SIGKILL) }
        }
    }

    /// True when the process has exited (a zombie waiting to be reaped, or reaped). Asks the kernel without
    /// reaping: a write to a dead worker's stdin can still succeed while another process briefly holds the
    /// pipe (a child between its fork and its exec), so a failed write alone does not tell.
    var hasExited: Bool {
        life.withLockedValue { life in
            if life.isReaped { return true }
            var info = siginfo_t()
            guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 else { return false }
            return info._sifields._sigchld.si_pid == pid
        }
    }

    /// Whether the process exits within `time`, looked at every 10 ms; it is not reaped. For a worker whose
    /// pipe closed, which is usually one dying: killed at once, it would be described by the kill.
    func exits(within time: Duration) -> Bool {
        let deadline = ContinuousClock.now + time
        while !hasExited {
            guard ContinuousClock.now < deadline else { return false }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return true
    }

    /// Waits for the process to exit, reaps it, and says how it ended ("was killed by signal 9 (Killed)").
    /// Closes the pipes. Safe to call more than once.
    @discardableResult
    func reap() -> String {
        if case .reaped(let known) = life.withLockedValue({ $0 }) { return known }
        // Wait without reaping, so that a concurrent kill() never signals a reused pid.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
        return life.withLockedValue { life in
            if case .reaped(let known) = life { return known }
            var status: Int32 = 0
            var usage = rusage()
            while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
            var text = Self.describe(status: status)
            if memoryLimitBytes > 0 && status != 0 {
                // Facts, not a guess: the limit it ran under and the most memory it held.
                text +=
                    " (it ran under memoryLimitMB \(memoryLimitBytes >> 20), enforced as RLIMIT_DATA; "
                    + "its peak resident memory was \(usage.ru_maxrss >> 10) MB)"
            }
            close(channel.input)
            if case .retiring = life {} else { close(channel.output) }
            if channel.peerEnded >= 0 {
                close(channel.peerEnded)
                channel.peerEnded = -1
            }
            life = .reaped(exitDescription: text)
            return text
        }
    }

    /// Resident memory in bytes, from /proc; nil when it cannot be read.
    var residentBytes: Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    // MARK: - Helpers

    private func waitReadable(timeout: Duration) -> Bool {
        var descriptor = pollfd(fd: channel.input, events: Int16(POLLIN), revents: 0)
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            let milliseconds = max(0, Int32(min(left.timeInterval * 1000, Double(Int32.max))))
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { return true }
            if ready == 0 { return false }
            if errno != EINTR { return true }
        }
    }

    static func describe(status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 {
            return "exited with status \((status >> 8) & 0xff)"
        }
        let name = String(cString: strsignal(signal))
        let hint = signal == SIGKILL ? " (out of memory, or killed from outside)" : ""
        return "was killed by signal \(signal) (\(name))\(hint)"
    }

    private static func currentExecutable() -> String {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return path
        }
        return CommandLine.arguments.first ?? "fairway"
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer {
            for pointer in pointers { free(pointer) }
        }
        return body(pointers)
    }
}

/// A worker process could not be started: the command, and why.
public struct WorkerStartError: Error, CustomStringConvertible, Equatable {
    public var command: [String]
    public var reason: String

    public var description: String {
        "worker process \(command.joined(separator: " ")) could not start: \(reason)"
    }
}

extension Duration {
    var timeInterval: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}

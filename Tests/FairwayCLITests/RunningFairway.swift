import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation

/// A `fairway run` process started by a test, with its output in a log file.
final class RunningFairway {
    let process: ChildProcess
    let logPath: String

    init(config: String, folder: URL, environment: [String: String] = [:], arguments: [String] = []) throws {
        logPath = folder.appendingPathComponent("run-\(UUID().uuidString.prefix(6)).log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        // A test that ends early (a failed `#require`) does not leave the process running: `ChildProcess` kills
        // it when released.
        process = try ChildProcess(
            FairwayProcess.executable.path, ["run", "--config", config] + arguments, environment: environment,
            output: .append(logPath), error: .sameAsOutput)
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The HTTP port the process said it listens on.
    var httpPort: Int? {
        guard let range = log.range(of: #"http=[0-9.]+:(\d+)"#, options: .regularExpression) else { return nil }
        return Int(log[range].split(separator: ":").last ?? "")
    }

    /// Waits until the process says it is serving; false if it exited or took too long.
    func waitUntilRunning(timeout: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.contains("fairway running") { return true }
            if !process.isRunning { return false }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return false
    }

    /// Sends a signal and waits for the process to end.
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: Double = 30) -> (status: Int32, bySignal: Bool) {
        kill(process.pid, signal)
        return waitForExit(timeout: timeout)
    }

    @discardableResult
    func waitForExit(timeout: Double = 30) -> (status: Int32, bySignal: Bool) {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.005)
        }
        if process.isRunning { kill(process.pid, SIGKILL) }
        let exit = process.waitUntilExit()
        return (exit.status, exit.bySignal)
    }

    /// CPU seconds (user + system) the process has used so far, from /proc.
    var cpuSeconds: Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// A folder for one test, removed at the end.
final class TestFolder {
    let url: URL

    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("fairway-cli-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes a configuration file and returns its path.
    func config(_ yaml: String) throws -> String {
        let path = path("fairway.yaml")
        // Tests run side by side: each process listens on a port of its own.
        let text = yaml.contains("http:") ? yaml : yaml + "\nhttp: { listen: \"127.0.0.1:0\" }\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Writes a configuration file whose source is the SQLite file `q.db` in this folder, and creates that
    /// file: the configuration's path and the queue file, for a test to fill before it starts `fairway run`.
    func sqliteConfig(_ yaml: String) throws -> (path: String, file: SQLiteQueue) {
        (try config(yaml), try SQLiteQueue(path: path("q.db")))
    }
}

/// Processes whose command line mentions `text` (a test's own config path): workers left behind, if any.
func processes(mentioning text: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> Int32? in
        guard let pid = Int32(entry),
            let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
            String(decoding: data, as: UTF8.self).contains(text)
        else { return nil }
        return pid
    }
}

extension TestFolder {
    /// A configuration with one process-isolated queue `py` whose workers run `command`: 2 workers,
    /// 2 attempts without backoff, a 2 s timeout, a 500 ms kill grace.
    func processQueueConfig(command: [String]) throws -> String {
        let quoted = command.map { "\"\($0)\"" }.joined(separator: ", ")
        return try config(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues:
              - { name: "py", isolation: process, command: [\(quoted)], attempts: 2, backoff: 0s, timeout: 2s, killGrace: 500ms }
            """)
    }

    /// `count` jobs of type `append` on `queue`, each writing `job-N` to the file at `log`.
    static func appendJobs(queue: String, log: String, count: Int) -> [NewJob] {
        (0..<count).map { index in
            NewJob(queue: queue, type: "append", payload: Array(#"{"path":"\#(log)","line":"job-\#(index)"}"#.utf8))
        }
    }
}

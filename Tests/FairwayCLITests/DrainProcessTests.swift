import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// `POST /drain` and `fairway drain`, the preStop hook of a pod being scaled in, against a running process.
@Suite("drain for scale-in", .timeLimit(.minutes(3)))
struct DrainProcessTests {
    @Test("fairway drain: readiness 503 at once, running jobs finish, held ones go back, the process stays up")
    func drainEndpoint() throws {
        let folder = TestFolder()
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(
            contentsOf: (0..<40).map { _ in NewJob(queue: "a", type: "sleep", payload: Array(#"{"ms":400}"#.utf8)) })
        let config = try folder.config(
            """
            workers: 2
            drainTimeout: 10s
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: a, prefetch: 8 }]
            """)
        let run = try RunningFairway(config: config, folder: folder.url, environment: ["FAIRWAY_ADMIN_TOKEN": "t0k"])
        defer { run.stop() }
        #expect(run.waitUntilRunning(), "\(run.log)")
        let port = try #require(run.httpPort)
        #expect(
            eventually(timeout: 10) { HTTP.call("GET", port: port, "/scale").body.contains("\"busy_workers\":2") })
        #expect(HTTP.call("POST", port: port, "/drain").status == 401, "drain needs the admin token")

        let started = Date()
        let drain = try ChildProcess(
            FairwayProcess.executable.path,
            ["drain", "--url", "http://127.0.0.1:\(port)", "--token", "t0k", "--actor", "prestop"],
            output: .pipe, error: .null)
        #expect(
            eventually(timeout: 2) { HTTP.call("GET", port: port, "/readyz").status == 503 },
            "readiness turns 503 as soon as the drain begins")
        #expect(drain.isRunning, "the drain answers only once running jobs are done")
        let answered = try #require(drain.output).readDataToEndOfFile()
        #expect(drain.waitUntilExit() == .exited(0))
        #expect(Date().timeIntervalSince(started) < 8)
        let answer = try JSONSerialization.jsonObject(with: answered) as? [String: Any]
        #expect(answer?["drained"] as? Bool == true)
        #expect(answer?["runningAtStart"] as? Int == 2)
        #expect(answer?["runningFinished"] as? Int == 2, "running jobs were let finish, not killed")
        #expect(answer?["runningReleased"] as? Int == 0)

        // Drained: nothing runs or is held here; every job is done or back in the file for another process.
        let stats = try #require(try file.stats()["a"])
        #expect(stats.leased == 0)
        #expect(stats.completed + stats.ready == 40, "nothing lost: \(stats)")
        #expect(run.process.isRunning, "the process keeps serving until it is stopped")
        #expect(HTTP.call("GET", port: port, "/healthz").status == 200)
        #expect(HTTP.call("GET", port: port, "/readyz").status == 503)
        #expect(HTTP.call("GET", port: port, "/audit").body.contains("prestop"))
        #expect(run.log.contains("drained on request: "), "\(run.log)")

        let stopping = Date()
        let exit = run.stop()
        #expect(exit.status == 0 && !exit.bySignal, "\(run.log)")
        #expect(Date().timeIntervalSince(stopping) < 5, "SIGTERM after a drain has nothing left to wait for")
    }
}

import FairwayTestSupport
import Foundation
import Testing

/// SIGHUP against a running `fairway run`, and `fairway reload` in front of it.
@Suite("Reload: SIGHUP and fairway reload", .serialized, .timeLimit(.minutes(3)))
struct ReloadProcessTests {
    static let base = "sources: [{ kind: sqlite, path: \"q.db\" }]\nhttp: { listen: \"127.0.0.1:0\" }\n"

    private func weight(_ port: Int, _ queue: String) -> Double? {
        HTTP.sample(HTTP.call("GET", port: port, "/metrics").body, "fairway_queue_weight{queue=\"\(queue)\"}")
    }

    @Test("SIGHUP applies changed weights and pauses live, names what needs a restart, and refuses an invalid file")
    func sighup() throws {
        let folder = TestFolder()
        let config = try folder.config(Self.base + "workers: 2\nqueues: [{ name: a }, { name: b }]\n")
        let run = try RunningFairway(config: config, folder: folder.url)
        defer { _ = run.stop() }
        #expect(run.waitUntilRunning(), "\(run.log)")
        let port = try #require(run.httpPort)
        #expect(weight(port, "a") == 1)

        // A live change and a change that needs a restart.
        try (Self.base + "workers: 3\nqueues: [{ name: a, weight: 5 }, { name: b, paused: true }]\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        kill(run.process.pid, SIGHUP)
        #expect(eventually(timeout: 10) { weight(port, "a") == 5 }, "\(run.log)")
        #expect(
            eventually(timeout: 10) {
                HTTP.sample(HTTP.call("GET", port: port, "/metrics").body, "fairway_queue_paused{queue=\"b\"}") == 1
            }, "\(run.log)")
        #expect(
            eventually(timeout: 5) {
                run.log.contains("applied only by a restart") && run.log.contains("workers: 2 → 3")
            })
        let audit = HTTP.call("GET", port: port, "/audit").body
        #expect(
            audit.contains(#""action":"reload","actor":"reload","after":"weight 5.0","#)
                && audit.contains(#""before":"weight 1.0","target":"a""#)
                && audit.contains(#""after":"weight 1.0, paused","#),
            "each applied change is in the audit trail: \(audit)")

        // A file that became invalid: refused, the field named, the process runs on as it was.
        try (Self.base + "workers: 3\nqueues: [{ name: a, weight: -1 }, { name: b }]\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        kill(run.process.pid, SIGHUP)
        #expect(eventually(timeout: 10) { run.log.contains("reload refused") }, "\(run.log)")
        #expect(run.log.contains("weight"), "the refusal should name the field: \(run.log)")
        #expect(run.process.isRunning)
        #expect(weight(port, "a") == 5)
        #expect(HTTP.call("GET", port: port, "/readyz").status == 200)
        let stopped = run.stop()
        #expect(stopped.status == 0 && !stopped.bySignal, "\(run.log)")
    }

    @Test("fairway reload refuses an invalid file with exit 2 and leaves the process alone; a valid one is applied")
    func reloadCommand() throws {
        let folder = TestFolder()
        let config = try folder.config(Self.base + "workers: 1\nqueues: [{ name: a }]\n")
        let run = try RunningFairway(config: config, folder: folder.url)
        defer { _ = run.stop() }
        #expect(run.waitUntilRunning(), "\(run.log)")
        let port = try #require(run.httpPort)
        let pid = "\(run.process.pid)"

        try (Self.base + "workers: 1\nqueues: [{ name: a, maxConcurrency: 0 }]\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let refused = try FairwayProcess.run(["reload", "--pid", pid, "--config", config])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("maxConcurrency"), "\(refused.stderr)")
        #expect(!run.log.contains("reload"), "the running process should not have been signalled: \(run.log)")

        try (Self.base + "workers: 1\nqueues: [{ name: a, weight: 7 }]\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let sent = try FairwayProcess.run(["reload", "--pid", pid, "--config", config])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(eventually(timeout: 10) { weight(port, "a") == 7 }, "\(run.log)")
    }
}

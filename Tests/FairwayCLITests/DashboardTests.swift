import FairwayAMQP
import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// The dashboard in a real headless Chromium against a running `fairway run`: the page loads, a click on
/// pause changes the queue's state, and (SQLite) a click on requeue puts a dead job back
/// (`Tests/Dashboard/dashboard_check.py` drives the browser over the DevTools protocol).
@Suite("Dashboard in headless Chromium", .serialized, .timeLimit(.minutes(10)))
struct DashboardTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let script = repository.appendingPathComponent("Tests/Dashboard/dashboard_check.py").path

    /// Runs the browser check; its output goes to the test log.
    static func check(port: Int, queue: String, deadLetter: Bool, screenshot: String? = nil) -> Int32 {
        var arguments = [script, "--url", "http://127.0.0.1:\(port)", "--token", "s3cret", "--queue", queue]
        if deadLetter { arguments.append("--dead-letter") }
        if let screenshot { arguments += ["--screenshot", screenshot] }
        return spawnAndWait("/usr/bin/python3", arguments)
    }

    @Test("SQLite: pause from the page changes the queue's state; requeue from the page revives a dead job")
    func sqlite() throws {
        let folder = TestFolder()
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(NewJob(queue: "mail", type: "resize", payload: Array(#"{"id":42}"#.utf8)))
        try file.enqueue(
            contentsOf: (0..<200).map { _ in NewJob(queue: "billing", type: "sleep", payload: Array(#"{"ms":5}"#.utf8))
            })
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: billing, weight: 4 }, { name: mail }]
            """)
        let run = try RunningFairway(
            config: config, folder: folder.url, environment: ["FAIRWAY_ADMIN_TOKEN": "s3cret"])
        defer { run.stop() }
        #expect(run.waitUntilRunning(), "\(run.log)")
        let port = try #require(run.httpPort)
        #expect(try eventually(timeout: 10) { try file.stats()["mail"]?.dead == 1 })
        let original = try #require(try file.deadLetters(queue: "mail").first?.id)
        #expect(Self.check(port: port, queue: "billing", deadLetter: true) == 0)
        // What the clicks did, seen from outside the browser.
        // The requeued job ran again: its type is still unknown, so it is back as a new dead letter.
        #expect(
            try eventually(timeout: 10) {
                try file.deadLetters(queue: "mail").map(\.id).allSatisfy { $0 != original }
            })
        let audit = HTTP.call("GET", port: port, "/audit").body
        #expect(audit.contains(#""action":"pause""#) && audit.contains(#""action":"resume""#))
        #expect(audit.contains(#""action":"requeue""#) && audit.contains("chromium (dashboard)"), "\(audit)")
    }

    @Test("RabbitMQ: the page pauses a queue and requeues a dead job from its <queue>.dead queue", .usesBroker)
    func rabbitMQ() throws {
        try #require(BrokerControl.ready, "the RabbitMQ broker could not be started")
        let folder = TestFolder()
        let prefix = "d\(UUID().uuidString.prefix(6).lowercased())"
        defer { BrokerControl.delete(["\(prefix)-a", "\(prefix)-b", "\(prefix)-a.dead", "\(prefix)-b.dead"]) }
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: amqp, url: "\(AMQPProcessTests.address)", prefetch: 8 }]
            queues: [{ name: "\(prefix)-a", weight: 2 }, { name: "\(prefix)-b" }]
            """)
        let run = try RunningFairway(
            config: config, folder: folder.url, environment: ["FAIRWAY_ADMIN_TOKEN": "s3cret"])
        defer { run.stop() }
        #expect(run.waitUntilRunning(), "\(run.log)")
        let port = try #require(run.httpPort)
        let publisher = try AMQPPublisher(url: try AMQPURL(AMQPProcessTests.address))
        try publisher.publish([NewJob(queue: "\(prefix)-b", type: "resize", payload: Array(#"{"order":"A-17"}"#.utf8))])
        publisher.close()
        let listed = {
            HTTP.call("GET", port: port, "/dead-letters?queue=\(prefix)-b&text=A-17").body
        }
        #expect(eventually(timeout: 10) { listed().contains("unknown job type 'resize'") }, "\(listed())")
        let groups = HTTP.call("GET", port: port, "/dead-letters/groups?queue=\(prefix)-b").body
        #expect(groups.contains(#""count":1"#) && groups.contains("unknown job type"), "\(groups)")
        // Reading did not take it: it is still there for the page.
        #expect(listed().contains("A-17"))
        #expect(Self.check(port: port, queue: "\(prefix)-a", deadLetter: true) == 0)
        let audit = HTTP.call("GET", port: port, "/audit").body
        #expect(audit.contains(#""action":"pause""#) && audit.contains("1 dead letter requeued"), "\(audit)")
        // The requeued job ran again and died again (its type is still unknown): one dead letter, not two.
        #expect(eventually(timeout: 10) { listed().contains("A-17") })
        let deleted = HTTP.call(
            "POST", port: port, "/dead-letters/delete", token: "s3cret",
            body: Data(#"{"queue":"\#(prefix)-b","text":"A-17"}"#.utf8))
        #expect(deleted.json?["deleted"] as? Int == 1, "\(deleted.body)")
        #expect(!listed().contains("A-17"))
    }
}

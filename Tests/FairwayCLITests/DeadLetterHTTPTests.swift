import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// Dead letters over HTTP against a running process and a real queue file: grouped by cause, searched,
/// requeued and deleted by filter, with the guards an operator relies on.
@Suite("Dead letters over HTTP", .serialized, .timeLimit(.minutes(3)))
struct DeadLetterHTTPTests {
    @Test(
        "group by cause, search by payload text, requeue a group, delete all only when told, refuse without the token")
    func filters() throws {
        let folder = TestFolder()
        let file = try SQLiteQueue(path: folder.path("q.db"))
        try file.enqueue(
            contentsOf: (0..<12).map { index in
                NewJob(
                    queue: index < 8 ? "orders" : "mail", type: "fail",
                    payload: Array(#"{"message":"upstream 50\#(index % 2) for order-\#(index)"}"#.utf8))
            } + [NewJob(queue: "mail", type: "resize", payload: Array(#"{"to":"ann@example.com"}"#.utf8))])
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: sqlite, path: "q.db" }]
            queues: [{ name: orders, attempts: 1 }, { name: mail, attempts: 1 }]
            """)
        let run = try RunningFairway(
            config: config, folder: folder.url, environment: ["FAIRWAY_ADMIN_TOKEN": "s3cret"])
        defer { run.stop() }
        #expect(run.waitUntilRunning(), "\(run.log)")
        let port = try #require(run.httpPort)
        #expect(try eventually(timeout: 10) { try file.deadLetters().count == 13 })

        let groups = try Self.array(HTTP.call("GET", port: port, "/dead-letters/groups"))
        #expect(groups.count == 3, "orders and mail by one shape, and mail's unknown type: \(groups)")
        let orders = try #require(groups.first { $0["queue"] as? String == "orders" })
        #expect(orders["count"] as? Int == 8)
        #expect(orders["shape"] as? String == "upstream # for order-# (gave up after # attempt)")

        let found = try Self.array(HTTP.call("GET", port: port, "/dead-letters?text=ann@example.com"))
        #expect(found.count == 1 && found.first?["type"] as? String == "resize")
        let page = try Self.array(HTTP.call("GET", port: port, "/dead-letters?queue=orders&limit=3&offset=6"))
        #expect(page.count == 2, "8 dead letters, from the 7th: 2")

        let body = { (json: String) in Data(json.utf8) }
        #expect(HTTP.call("POST", port: port, "/dead-letters/requeue", body: body(#"{"all":true}"#)).status == 401)
        let empty = HTTP.call("POST", port: port, "/dead-letters/delete", token: "s3cret", body: body("{}"))
        #expect(empty.status == 400 && empty.body.contains(#"\"all\": true"#), "\(empty.body)")
        let garbage = HTTP.call("POST", port: port, "/dead-letters/delete", token: "s3cret", body: body("[1]"))
        #expect(garbage.status == 400)
        let wrongIDs = HTTP.call(
            "POST", port: port, "/dead-letters/delete", token: "s3cret", body: body(#"{"ids":["x","999"]}"#))
        #expect(wrongIDs.json?["deleted"] as? Int == 0)

        let shape = try #require(orders["shape"] as? String)
        let requeue = HTTP.call(
            "POST", port: port, "/dead-letters/requeue", token: "s3cret",
            body: try JSONSerialization.data(withJSONObject: ["queue": "orders", "shape": shape]))
        #expect(requeue.json?["requeued"] as? Int == 8, "\(requeue.body)")
        // They fail again (attempts 1) and come back; meanwhile mail's were untouched.
        #expect(try eventually(timeout: 10) { try file.deadLetters(queue: "orders").count == 8 })
        #expect(try file.deadLetters(queue: "mail").count == 5)

        let all = HTTP.call("POST", port: port, "/dead-letters/delete", token: "s3cret", body: body(#"{"all":true}"#))
        #expect(all.json?["deleted"] as? Int == 13)
        #expect(try file.deadLetters().isEmpty)
        let audit = HTTP.call("GET", port: port, "/audit").body
        #expect(audit.contains("8 dead letters requeued") && audit.contains("13 dead letters deleted"), "\(audit)")
    }

    static func array(_ answer: HTTP.Answer) throws -> [[String: Any]] {
        try #require(
            try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [[String: Any]], "\(answer.body)")
    }
}

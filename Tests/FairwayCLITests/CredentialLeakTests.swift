import FairwayAMQP
import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// The broker password must never appear in anything a run writes: its log, its HTTP answers, the
/// messages it publishes (retries, dead letters), the files it keeps, or the errors of `fairway enqueue`.
@Suite("Credentials stay secret", .serialized, .usesBroker, .timeLimit(.minutes(10)))
struct CredentialLeakTests {
    static let user = "fairway-leak-check"
    static let password = "pw-\(UUID().uuidString.prefix(12))-never-shown"
    static let wrongPassword = "pw-\(UUID().uuidString.prefix(12))-also-never-shown"

    init() throws {
        try #require(BrokerControl.ready, "the RabbitMQ broker could not be started")
        BrokerControl.control(["delete_user", Self.user])
        try #require(BrokerControl.control(["add_user", Self.user, Self.password]) == 0)
        try #require(BrokerControl.control(["set_permissions", "-p", "/", Self.user, ".*", ".*", ".*"]) == 0)
    }

    static func url(_ password: String) -> String { "amqp://\(user):\(password)@127.0.0.1:5672/%2f" }

    /// Every place the password could have gone, with what was found there.
    static func leaks(in texts: [String: String]) -> [String] {
        texts.filter { $0.value.contains(password) || $0.value.contains(wrongPassword) }.map(\.key)
    }

    @Test("a run with the right password, then the wrong one: the password is in no log, answer, message or file")
    func passwordNeverWritten() throws {
        let folder = TestFolder()
        let queue = "s\(UUID().uuidString.prefix(6).lowercased())"
        defer { BrokerControl.delete([queue]) }
        // The URL comes from the environment, as docs/amqp.md advises: no file holds the password.
        let config = try folder.config(
            """
            workers: 2
            sources: [{ kind: amqp, stateDirectory: "\(folder.url.path)" }]
            queues: [{ name: "\(queue)", attempts: 2, backoff: 10ms }]
            """)
        var written: [String: String] = [:]

        let run = try RunningFairway(
            config: config, folder: folder.url, environment: ["FAIRWAY_AMQP_URL": Self.url(Self.password)])
        #expect(run.waitUntilRunning(), "\(run.log)")
        let port = try #require(run.httpPort)
        let publisher = try AMQPPublisher(url: try AMQPURL(Self.url(Self.password)))
        try publisher.publish([
            NewJob(queue: queue, type: "noop"), NewJob(queue: queue, type: "fail", payload: Array("{}".utf8)),
            NewJob(queue: queue, type: "unknown"),
        ])
        publisher.close()
        #expect(eventually(timeout: 20) { (try? BrokerControl.count(queue + ".dead")) == 2 })
        for path in ["/metrics", "/scale", "/healthz", "/readyz", "/queues", "/nowhere"] {
            written["GET \(path)"] = HTTP.call("GET", port: port, path).body
        }
        let letters = try BrokerControl.drain(queue + ".dead")
        written["dead letters"] = letters.map { "\($0.reason ?? "") \($0.type ?? "")" }.joined(separator: "\n")
        #expect(run.stop().status == 0)
        written["log, right password"] = run.log

        let wrong = try RunningFairway(
            config: config, folder: folder.url, environment: ["FAIRWAY_AMQP_URL": Self.url(Self.wrongPassword)])
        #expect(eventually(timeout: 20) { wrong.log.contains("login refused") }, "\(wrong.log)")
        wrong.stop()
        written["log, wrong password"] = wrong.log
        #expect(wrong.log.contains("user '\(Self.user)'"), "the error names the user")

        let enqueue = try FairwayProcess.run([
            "enqueue", "--amqp", Self.url(Self.wrongPassword), "--queue", queue, "--type", "noop",
        ])
        written["enqueue with the wrong password"] = enqueue.stdout + enqueue.stderr
        #expect(enqueue.status != 0)

        for name in try FileManager.default.contentsOfDirectory(atPath: folder.url.path) {
            let data = FileManager.default.contents(atPath: folder.path(name)) ?? Data()
            written["file \(name)"] = String(decoding: data, as: UTF8.self)
        }
        #expect(written.keys.contains { $0.hasPrefix("file fairway-amqp-deliveries") }, "the state files were checked")
        #expect(Self.leaks(in: written).isEmpty, "the password appears in: \(Self.leaks(in: written))")
    }
}

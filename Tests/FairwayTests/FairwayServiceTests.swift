import FairwayAMQP
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

@testable import Fairway

/// An application written as in docs/getting-started.md (the registry of GettingStartedSnippets.swift)
/// runs its own handlers under `FairwayService` in its own `ServiceGroup`, on SQLite and on RabbitMQ, and
/// enqueues through the service's typed producer: the same code for both backends.
@Suite("Fairway service", .timeLimit(.minutes(10)))
struct FairwayServiceTests {
    static let logger: Logger = {
        var logger = Logger(label: "fairway.test")
        logger.logLevel = .critical
        return logger
    }()

    /// Records every mail; fails the first attempt of any address that starts with "flaky".
    final class RecordingMailer: Mailer {
        let sent = Shared<[String]>([])
        let attempts = Shared<[String: Int]>([:])

        func send(to: String, body: String) async throws {
            let attempt = attempts.update {
                $0[to, default: 0] += 1
                return $0[to]!
            }
            if to.hasPrefix("flaky") && attempt == 1 { throw URLError(.timedOut) }
            sent.update { $0.append("\(to): \(body)") }
        }
    }

    /// What every backend must show: typed jobs run by the application's handlers with the ids the producer
    /// returned, a retryable error retried, a permanent one dead-lettered, an unknown queue refused.
    func exercise(
        _ fairway: FairwayService, mailer: RecordingMailer, folder: URL, email: String, images: String,
        deadLetters: @escaping () throws -> [String]
    ) async throws {
        // The producer works before the service runs (its source has not declared anything on a broker yet).
        let jobs = fairway.producer()
        try await jobs.enqueue(AppJobs.welcomeEmail, WelcomeEmail(to: "ada@example.com", name: "Ada"), queue: email)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [.init(service: fairway)], logger: Self.logger))
        let running = Task(executorPreference: DedicatedThreadExecutor.shared) { try await group.run() }
        #expect(await fairway.waitUntilListening() ?? 0 > 0, "HTTP listens on the port it picked")

        let sources = (0..<3).map { folder.appendingPathComponent("image-\($0).png") }
        for (index, url) in sources.enumerated() {
            try Data(repeating: UInt8(index), count: 200).write(to: url)
        }
        try await jobs.enqueue(AppJobs.welcomeEmail, WelcomeEmail(to: "flaky@example.com", name: "Flo"), queue: email)
        try await jobs.enqueue(AppJobs.welcomeEmail, WelcomeEmail(to: "nobody", name: "No"), queue: email)
        let ids = try await jobs.enqueue(
            AppJobs.thumbnail, batch: sources.map { Thumbnail(source: $0.path, width: 64) }, queue: images)
        await #expect(throws: ProducerRefusal.self) {
            try await jobs.enqueue(AppJobs.thumbnail, Thumbnail(source: "x", width: 1), queue: images + "-typo")
        }

        let thumbnails = {
            Set((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter {
                $0.hasSuffix(".bin")
            }
        }
        let done = await eventuallyAsync(timeout: 120) {
            mailer.sent.read().count == 2 && thumbnails().count == 3 && ((try? deadLetters()) ?? []).count == 1
        }
        #expect(done, "sent \(mailer.sent.read()), thumbnails \(thumbnails()), dead \((try? deadLetters()) ?? [])")
        #expect(Set(mailer.sent.read()) == ["ada@example.com: Welcome, Ada!", "flaky@example.com: Welcome, Flo!"])
        #expect(mailer.attempts.read()["flaky@example.com"] == 2, "the failed send was retried once")
        #expect(mailer.attempts.read()["nobody"] == nil, "the permanent error came before any send")
        #expect(try deadLetters().first?.contains("not an address: nobody") == true)
        #expect(thumbnails() == Set(ids.map { "64-\($0).bin" }), "handlers see the ids the producer returned")

        await group.triggerGracefulShutdown()
        try await running.value
    }

    @Test("on SQLite: the application's handlers run, retry and dead-letter; the producer checks its queues")
    func sqlite() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fairway-service-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("fairway.yaml")
        try """
        workers: 2
        http: { listen: "127.0.0.1:0" }
        sources: [{ kind: sqlite, path: "app.db" }]
        queues:
          - { name: email, weight: 2, attempts: 3, backoff: 50ms }
          - { name: images, weight: 1 }
        """.write(to: config, atomically: true, encoding: .utf8)
        let mailer = RecordingMailer()
        let fairway = try FairwayService(
            configurationPath: config.path, registry: GettingStarted.registry(mailer: mailer, thumbnails: folder),
            logger: Self.logger)
        let file = try SQLiteQueue(path: folder.appendingPathComponent("app.db").path, create: false)
        try await exercise(fairway, mailer: mailer, folder: folder, email: "email", images: "images") {
            try file.deadLetters().map(\.reason)
        }
        #expect(try file.stats().values.map { $0.ready + $0.leased + $0.delayed }.reduce(0, +) == 0)
    }

    @Test("on RabbitMQ: the same application and the same producer calls, with the broker's queues", .usesBroker)
    func rabbitMQ() async throws {
        #expect(TestBroker.ready, "the broker at 127.0.0.1:5672 did not start")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fairway-service-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let prefix = "svc\(UUID().uuidString.prefix(6).lowercased())"
        let url = try AMQPURL("amqp://guest:guest@127.0.0.1:5672/%2f")
        let inspector = try AMQPInspector(url: url)
        defer {
            for name in ["email", "images"] {
                for suffix in ["", ".dead", ".delay"] { inspector.delete("\(prefix)-\(name)\(suffix)") }
                for tier in [100, 250] { inspector.delete("fairway.delay.\(prefix)-\(name).\(tier)ms") }
            }
        }
        let config = folder.appendingPathComponent("fairway.yaml")
        try """
        workers: 2
        http: { listen: "127.0.0.1:0" }
        sources: [{ kind: amqp, url: "amqp://guest:guest@127.0.0.1:5672/%2f", stateDirectory: "\(folder.path)" }]
        queues:
          - { name: \(prefix)-email, weight: 2, attempts: 3, backoff: 50ms }
          - { name: \(prefix)-images, weight: 1 }
        """.write(to: config, atomically: true, encoding: .utf8)
        let mailer = RecordingMailer()
        let fairway = try FairwayService(
            configurationPath: config.path, registry: GettingStarted.registry(mailer: mailer, thumbnails: folder),
            logger: Self.logger)
        let dead = Shared<[String]>([])
        try await exercise(
            fairway, mailer: mailer, folder: folder, email: "\(prefix)-email", images: "\(prefix)-images"
        ) {
            let messages = try inspector.drain("\(prefix)-email.dead")
            dead.update { $0 += messages.compactMap(\.reason) }
            return dead.read()
        }
    }

    static func weights(_ engine: Engine) -> [String: Double] {
        var weights: [String: Double] = [:]
        for queue in engine.snapshot().queues { weights[queue.name] = Double(queue.settings.weight) }
        return weights
    }

    @Test("built from a configuration value: apply changes weights live; reload without a file changes nothing")
    func configurationValue() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fairway-service-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let yaml = """
            http: { listen: "127.0.0.1:0" }
            sources: [{ kind: sqlite, path: "\(folder.path)/app.db" }]
            queues: [{ name: email, weight: 2 }, { name: images, weight: 1 }]
            """
        let configuration = try ConfigurationLoader.parse(yaml: yaml)
        let fairway = try FairwayService(configuration: configuration, registry: JobRegistry(), logger: Self.logger)
        #expect(Self.weights(fairway.engine) == ["email": 2, "images": 1])
        fairway.apply(
            try ConfigurationLoader.parse(yaml: yaml.replacingOccurrences(of: "weight: 2", with: "weight: 5")))
        #expect(Self.weights(fairway.engine) == ["email": 5, "images": 1])
        fairway.reload()
        #expect(Self.weights(fairway.engine) == ["email": 5, "images": 1], "no file to read: nothing changed")
        let declared = try SQLiteQueue(path: "\(folder.path)/app.db", create: false).declaredQueues()
        #expect(declared?.keys.sorted() == ["email", "images"], "the service declared its queues in the file")
        fairway.engine.shutdown(drainTimeout: .zero)
    }

    @Test("a program re-executed as a worker that builds a service instead of serving is told what to call")
    func workerNotServed() throws {
        #expect(throws: FairwayServiceError.workerNotServed) {
            try FairwayService.refuseInWorkerProcess(["FAIRWAY_PROCESS_WORKER": "1"])
        }
        #expect("\(FairwayServiceError.workerNotServed)".contains("ProcessWorkerMain.serveIfRequested(registry:)"))
        try FairwayService.refuseInWorkerProcess([:])
    }
}

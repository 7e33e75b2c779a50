// The Swift code of README.md and docs/: each `// snippet: NAME` … `// end snippet` region here is shown
// verbatim (dedented) in a document, and DocumentationSnippetTests fails if the two differ. So the docs'
// code is compiled with the test suite, and the service tests run it.

// snippet: import
import Fairway
// end snippet
import Foundation

// snippet: job-types
struct WelcomeEmail: Codable, Sendable {
    var to: String
    var name: String
}

struct Thumbnail: Codable, Sendable {
    var source: String
    var width: Int
}

enum AppJobs {
    static let welcomeEmail = JobName<WelcomeEmail>("welcome-email")
    static let thumbnail = JobName<Thumbnail>("thumbnail")
}
// end snippet

/// What sends mail in the application; the tests give one that records.
protocol Mailer: Sendable {
    func send(to: String, body: String) async throws
}

enum GettingStarted {
    // snippet: registry
    static func registry(mailer: some Mailer, thumbnails: URL) -> JobRegistry {
        var registry = JobRegistry()
        registry.register(
            AppJobs.welcomeEmail,
            executeAsync: { email, context in
                guard email.to.contains("@") else {
                    throw JobError.permanent("not an address: \(email.to)")  // dead-lettered at once
                }
                try await mailer.send(to: email.to, body: "Welcome, \(email.name)!")  // an error here is retried
            })
        registry.register(AppJobs.thumbnail) { thumbnail, context in
            // Blocking I/O is fine: each job has a worker thread of its own.
            let image = try Data(contentsOf: URL(fileURLWithPath: thumbnail.source))
            let target = thumbnails.appendingPathComponent("\(thumbnail.width)-\(context.jobID).bin")
            try image.prefix(thumbnail.width).write(to: target)
        }
        return registry
    }
    // end snippet

    static func run(registry: JobRegistry, logger: Logger) async throws {
        // snippet: service
        let fairway = try FairwayService(configurationPath: "fairway.yaml", registry: registry, logger: logger)
        let group = ServiceGroup(services: [fairway], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        // end snippet
    }

    static func enqueue(fairway: FairwayService) async throws {
        // snippet: producer
        let jobs = fairway.producer()
        try await jobs.enqueue(AppJobs.welcomeEmail, WelcomeEmail(to: "ada@example.com", name: "Ada"), queue: "email")
        try await jobs.enqueue(
            AppJobs.thumbnail,
            batch: [Thumbnail(source: "/srv/a.png", width: 64), Thumbnail(source: "/srv/b.png", width: 64)],
            queue: "images", options: EnqueueOptions(delay: .seconds(5)))
        // end snippet
    }

    static func otherProcess() throws {
        // snippet: producer-elsewhere
        // In another process: the same calls, through the file or the broker the consumers use.
        let file = try SQLiteJobProducer(path: "/var/lib/app/fairway.db")
        try file.enqueue(AppJobs.welcomeEmail, WelcomeEmail(to: "bob@example.com", name: "Bob"), queue: "email")

        let broker = AMQPJobProducer(url: try AMQPURL("amqp://app:secret@rabbitmq:5672/%2f"))
        try broker.enqueue(AppJobs.welcomeEmail, WelcomeEmail(to: "eve@example.com", name: "Eve"), queue: "email")
        // end snippet
    }

    static func fileAdministration() throws {
        // snippet: sqlite-file
        let file = try SQLiteQueue(path: "fairway.db", create: false)
        let stats = try file.stats()  // by queue: ready, delayed, leased, dead, completed, failed
        let dead = try file.deadLetters(queue: "email")  // each with its reason and attempts
        try file.requeueDeadLetters(queue: "email")  // back to ready, attempts reset
        // end snippet
        _ = (stats, dead)
    }

    static func main(registry: JobRegistry) {
        // snippet: worker-main
        ProcessWorkerMain.serveIfRequested(registry: registry)  // serves jobs and exits when started as a worker
        // end snippet
    }
}

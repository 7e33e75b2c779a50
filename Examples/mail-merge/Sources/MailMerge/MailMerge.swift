import Fairway
import Foundation
import Hummingbird

/// `mail-merge serve --config fairway.yaml --outbox DIR --port N`: Fairway and a Hummingbird server in one
/// `ServiceGroup`.
/// `mail-merge enqueue --db FILE --outbox DIR --campaign NAME --template TEXT --queue Q NAME=EMAIL…`: a
/// producer in another process, through the queue file.
@main
enum MailMerge {
    static func main() async throws {
        let handlers = Handlers()
        let registry = handlers.registry()
        // Worker processes of `isolation: process` queues re-execute this program: serve them first.
        ProcessWorkerMain.serveIfRequested(registry: registry)

        let arguments = Arguments(CommandLine.arguments.dropFirst())
        switch arguments.command {
        case "serve":
            try await serve(arguments, handlers: handlers, registry: registry)
        case "enqueue":
            try enqueue(arguments)
        default:
            FileHandle.standardError.write(Data("usage: mail-merge serve|enqueue …\n".utf8))
            exit(2)
        }
    }

    static func serve(_ arguments: Arguments, handlers: Handlers, registry: JobRegistry) async throws {
        let logger = Logger(label: "mail-merge")
        let outbox = arguments["outbox"] ?? "outbox"
        let fairway = try FairwayService(
            configurationPath: arguments["config"] ?? "fairway.yaml", registry: registry, logger: logger)
        let producer = fairway.producer()
        handlers.producer.withLock { $0 = producer }
        let app = Application(
            router: router(producer: producer, outbox: outbox),
            configuration: .init(address: .hostname("127.0.0.1", port: Int(arguments["port"] ?? "8080") ?? 8080)),
            logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: fairway), .init(service: app)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }

    static func enqueue(_ arguments: Arguments) throws {
        let campaign = arguments["campaign"] ?? "campaign"
        let jobs = arguments.rest.map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            return RenderLetter(
                campaign: campaign, template: arguments["template"] ?? "Dear {{name}},",
                recipient: Recipient(name: parts[0], email: parts.count > 1 ? parts[1] : ""),
                outbox: arguments["outbox"] ?? "outbox")
        }
        do {
            let producer = try SQLiteJobProducer(path: arguments["db"] ?? "mail-merge.db")
            let ids = try producer.enqueue(
                Letters.render, batch: jobs, queue: arguments["queue"] ?? Letters.renderQueue)
            print("enqueued \(ids.count) letters: \(ids.joined(separator: " "))")
        } catch {
            FileHandle.standardError.write(Data("mail-merge: nothing enqueued: \(error)\n".utf8))
            exit(2)
        }
    }
}

/// `command --name value … rest…`, parsed by hand: the example keeps to two dependencies.
struct Arguments {
    var command: String
    var options: [String: String] = [:]
    var rest: [String] = []

    init(_ words: ArraySlice<String>) {
        command = words.first ?? ""
        var remaining = words.dropFirst()
        while let word = remaining.popFirst() {
            if word.hasPrefix("--"), let value = remaining.popFirst() {
                options[String(word.dropFirst(2))] = value
            } else {
                rest.append(word)
            }
        }
    }

    subscript(name: String) -> String? { options[name] }
}

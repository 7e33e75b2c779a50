import ArgumentParser
import Foundation

/// Where a running `fairway run` answers, and the admin token.
struct AdminConnection: ParsableArguments {
    @Option(help: "The HTTP address of a running fairway (http://HOST:PORT).")
    var url: String = "http://127.0.0.1:9464"

    @Option(help: "The admin token (default: FAIRWAY_ADMIN_TOKEN).")
    var token: String?

    @Option(help: "Who makes the change, for the audit trail (default: USER@HOST).")
    var actor: String?

    /// `USER@HOST` of whoever runs the command.
    static func defaultActor() -> String {
        let environment = ProcessInfo.processInfo.environment
        let user = environment["USER"] ?? environment["LOGNAME"] ?? "uid \(getuid())"
        return "\(user)@\(ProcessInfo.processInfo.hostName)"
    }

    /// Sends a request and prints the answer; a refusal ends the command with exit code 1.
    func call(
        _ method: String, _ path: String, body: [String: Any]? = nil, timeout: Duration = .seconds(10)
    ) async throws {
        guard let address = URL(string: url), let host = address.host, !host.isEmpty else {
            throw ValidationError("--url is not a URL: \(url)")
        }
        guard address.scheme == "http" else {
            throw ValidationError("--url must be http://HOST:PORT (fairway serves plain HTTP), got \(url)")
        }
        var headers: [(String, String)] = []
        if let token = token ?? ProcessInfo.processInfo.environment["FAIRWAY_ADMIN_TOKEN"] {
            headers.append(("Authorization", "Bearer \(token)"))
        }
        if method != "GET" { headers.append(("X-Fairway-Actor", actor ?? Self.defaultActor())) }
        var bytes: [UInt8]?
        if let body {
            bytes = Array(try JSONSerialization.data(withJSONObject: body))
            headers.append(("Content-Type", "application/json"))
        }
        let prefix = address.path.hasSuffix("/") ? String(address.path.dropLast()) : address.path
        let answer: AdminHTTPClient.Answer
        do {
            answer = try await AdminHTTPClient.exchange(
                host: host, port: address.port ?? 80, method: method, path: prefix + path, headers: headers,
                body: bytes, timeout: timeout)
        } catch {
            printError("fairway: cannot reach \(url): \(error)")
            throw ExitCode(1)
        }
        let text = String(decoding: answer.body, as: UTF8.self)
        guard (200..<300).contains(answer.status) else {
            printError("fairway: \(method) \(path) answered \(answer.status): \(text)")
            throw ExitCode(1)
        }
        print(text)
        // A change lasts as long as this process: say so where the operator reads.
        if let answer = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any],
            let lasts = answer["lasts"] as? String
        {
            printError("note: the change applies to \(lasts)")
        }
    }
}

/// `fairway queues`: every queue's weight, limits, depth and counts, as JSON.
struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queues", abstract: "List the queues of a running fairway.")
    @OptionGroup var connection: AdminConnection
    func run() async throws { try await connection.call("GET", "/queues") }
}

/// `fairway drain`: the preStop hook of a pod being scaled in.
struct DrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Make a running fairway give its work back: it takes no more jobs, its running ones finish "
            + "within its drain timeout or are released, and this returns when that is done.",
        discussion: "For a Kubernetes preStop hook; the process keeps serving HTTP until it is stopped.")
    @OptionGroup var connection: AdminConnection
    @Option(help: "Give up waiting for the answer after this many seconds.") var waitSeconds: Int = 600
    func run() async throws {
        try await connection.call("POST", "/drain", timeout: .seconds(max(1, waitSeconds)))
    }
}

/// `fairway pause QUEUE`.
struct PauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Stop starting jobs of a queue.")
    @OptionGroup var connection: AdminConnection
    @Argument(help: "The queue.") var queue: String
    func run() async throws { try await connection.call("POST", "/queues/\(Self.escape(queue))/pause") }

    static func escape(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/")))
            ?? name
    }
}

/// `fairway resume QUEUE`.
struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Start jobs of a paused queue again.")
    @OptionGroup var connection: AdminConnection
    @Argument(help: "The queue.") var queue: String
    func run() async throws { try await connection.call("POST", "/queues/\(PauseCommand.escape(queue))/resume") }
}

/// `fairway set QUEUE --weight W --max-concurrency N --rate R --burst B`.
struct SetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "Change a queue's weight, concurrency or rate limit while it runs."
    )
    @OptionGroup var connection: AdminConnection
    @Argument(help: "The queue.") var queue: String
    @Option(help: "The new weight (> 0).") var weight: Double?
    @Option(help: "The most jobs at once; 0 for no limit.") var maxConcurrency: Int?
    @Option(help: "Jobs per second; 0 for no limit.") var rate: Double?
    @Option(help: "The rate limit's burst.") var burst: Double?

    func run() async throws {
        var body: [String: Any] = [:]
        if let weight { body["weight"] = weight }
        if let maxConcurrency { body["maxConcurrency"] = maxConcurrency == 0 ? NSNull() : maxConcurrency }
        if let rate { body["rate"] = rate == 0 ? NSNull() : rate }
        if let burst { body["burst"] = burst }
        guard !body.isEmpty else {
            throw ValidationError("give at least one of --weight, --max-concurrency, --rate, --burst")
        }
        try await connection.call("PUT", "/queues/\(PauseCommand.escape(queue))", body: body)
    }
}

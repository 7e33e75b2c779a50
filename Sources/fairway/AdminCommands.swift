import ArgumentParser
import Foundation
import NIOConcurrencyHelpers

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Where a running `fairway run` answers, and the admin token.
struct AdminConnection: ParsableArguments {
    @Option(help: "The HTTP address of a running fairway.")
    var url: String = "http://127.0.0.1:9464"

    @Option(help: "The admin token (default: FAIRWAY_ADMIN_TOKEN).")
    var token: String?

    /// Sends a request and prints the answer; a refusal ends the command with exit code 1.
    func call(_ method: String, _ path: String, body: [String: Any]? = nil) throws {
        guard let address = URL(string: url + path) else { throw ValidationError("--url is not a URL: \(url)") }
        var request = URLRequest(url: address)
        request.httpMethod = method
        request.timeoutInterval = 10
        if let token = token ?? ProcessInfo.processInfo.environment["FAIRWAY_ADMIN_TOKEN"] {
            request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        }
        if let body {
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let result = Exchange()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, response, error in
            result.set(data, (response as? HTTPURLResponse)?.statusCode, error)
            done.signal()
        }.resume()
        done.wait()
        let (data, status, error) = result.get()
        if let error {
            printError("fairway: cannot reach \(url): \(error.localizedDescription)")
            throw ExitCode(1)
        }
        let text = String(decoding: data ?? Data(), as: UTF8.self)
        guard let status, (200..<300).contains(status) else {
            printError("fairway: \(method) \(path) answered \(status ?? 0): \(text)")
            throw ExitCode(1)
        }
        print(text)
    }

    /// Carries a URLSession answer back to the waiting thread.
    final class Exchange: @unchecked Sendable {
        // Unchecked Sendable: `value` is guarded by `lock`.
        private let lock = NIOLock()
        private var value: (Data?, Int?, (any Error)?) = (nil, nil, nil)
        func set(_ data: Data?, _ status: Int?, _ error: (any Error)?) {
            lock.withLock { value = (data, status, error) }
        }
        func get() -> (Data?, Int?, (any Error)?) { lock.withLock { value } }
    }
}

/// `fairway queues`: every queue's weight, limits, depth and counts, as JSON.
struct QueuesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queues", abstract: "List the queues of a running fairway.")
    @OptionGroup var connection: AdminConnection
    func run() throws { try connection.call("GET", "/queues") }
}

/// `fairway pause QUEUE`.
struct PauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Stop starting jobs of a queue.")
    @OptionGroup var connection: AdminConnection
    @Argument(help: "The queue.") var queue: String
    func run() throws { try connection.call("POST", "/queues/\(Self.escape(queue))/pause") }

    static func escape(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/")))
            ?? name
    }
}

/// `fairway resume QUEUE`.
struct ResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume", abstract: "Start jobs of a paused queue again.")
    @OptionGroup var connection: AdminConnection
    @Argument(help: "The queue.") var queue: String
    func run() throws { try connection.call("POST", "/queues/\(PauseCommand.escape(queue))/resume") }
}

/// `fairway set QUEUE --weight W --max-concurrency N --rate R --burst B`.
struct SetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "Change a queue's weight, concurrency or rate limit while it runs."
    )
    @OptionGroup var connection: AdminConnection
    @Argument(help: "The queue.") var queue: String
    @Option(help: "The new weight (> 0).") var weight: Double?
    @Option(help: "The most jobs at once; 0 for no limit.") var maxConcurrency: Int?
    @Option(help: "Jobs per second; 0 for no limit.") var rate: Double?
    @Option(help: "The rate limit's burst.") var burst: Double?

    func run() throws {
        var body: [String: Any] = [:]
        if let weight { body["weight"] = weight }
        if let maxConcurrency { body["maxConcurrency"] = maxConcurrency == 0 ? NSNull() : maxConcurrency }
        if let rate { body["rate"] = rate == 0 ? NSNull() : rate }
        if let burst { body["burst"] = burst }
        guard !body.isEmpty else {
            throw ValidationError("give at least one of --weight, --max-concurrency, --rate, --burst")
        }
        try connection.call("PUT", "/queues/\(PauseCommand.escape(queue))", body: body)
    }
}

import ArgumentParser
import FairwayAMQP
import FairwayRuntime
import FairwaySQLite
import Foundation

/// `fairway enqueue`: put jobs on a queue, through the library's producers and their checks.
struct EnqueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Put jobs on a queue.",
        discussion: """
            With --jsonl -, reads one job a line from standard input, each a JSON object with "queue", "type" \
            and optionally "payload" (any JSON value), "delay" (seconds) and "priority"; all are written in \
            one transaction, or none if any line is invalid.

            A queue no consumer has declared, a job type its consumers do not handle (SQLite) and a queue file \
            that does not exist are refused, with the known queues named, unless --any-queue, --any-type or \
            --create says otherwise.
            """
    )

    @Option(help: "The queue file (SQLite).")
    var db: String?

    @Option(help: "A RabbitMQ broker, amqp://user:password@host:5672/vhost (or FAIRWAY_AMQP_URL with --amqp env).")
    var amqp: String?

    @Option(help: "A PEM file of certificate authorities for an amqps:// broker, beyond the system's.")
    var caCertificate: String?

    @Option(help: "The queue.")
    var queue: String?

    @Option(help: "The job type.")
    var type: String?

    @Option(help: "The job's parameters, as JSON.")
    var payload: String = "{}"

    @Option(help: "Seconds to wait before the job may run.")
    var delay: Double = 0

    @Option(help: "Higher runs first within the queue.")
    var priority: Int = 0

    @Option(help: "The job's fairness key (a tenant id): a queue with keys shares its service fairly by key.")
    var key: String?

    @Option(help: "How many copies of the job to enqueue.")
    var count: Int = 1

    @Option(help: "Read jobs as JSON lines from this file, or - for standard input.")
    var jsonl: String?

    @Flag(help: "Create the queue file if it does not exist (SQLite), or declare the queue (RabbitMQ).")
    var create = false

    @Flag(help: "Accept a queue that no consumer has declared; its jobs wait until one does.")
    var anyQueue = false

    @Flag(help: "Accept a job type that the queue's consumers have no handler for (SQLite).")
    var anyType = false

    func validate() throws {
        guard (db == nil) != (amqp == nil) else { throw ValidationError("give exactly one of --db or --amqp") }
        if jsonl == nil {
            guard queue != nil else { throw ValidationError("--queue is required (or --jsonl)") }
            guard type != nil else { throw ValidationError("--type is required (or --jsonl)") }
        }
        guard count >= 1 && count <= 10_000_000 else { throw ValidationError("--count must be between 1 and 10000000") }
        guard delay >= 0 && delay.isFinite else { throw ValidationError("--delay must be a non-negative number") }
    }

    func run() throws {
        let jobs: [NewJob]
        do {
            if let jsonl {
                jobs = try JSONLines.jobs(
                    from: jsonl == "-"
                        ? FileHandle.standardInput.readDataToEndOfFile() : Data(contentsOf: URL(fileURLWithPath: jsonl))
                )
            } else {
                let job = NewJob(
                    queue: queue!, type: type!, payload: Array(payload.utf8), delay: .milliseconds(Int64(delay * 1000)),
                    priority: priority, fairnessKey: key
                )
                jobs = Array(repeating: job, count: count)
            }
        } catch let error as EnqueueError {
            printError("fairway: nothing enqueued: \(error)")
            throw ExitCode(2)
        }
        if let amqp {
            try publish(jobs, to: amqp)
            return
        }
        do {
            let producer = try SQLiteJobProducer(path: db!, create: create, checks: checks)
            let ids = try producer.enqueue(contentsOf: jobs)
            print(ids.count == 1 ? "enqueued job \(ids[0])" : "enqueued \(ids.count) jobs")
        } catch let error as QueueFullError {
            printError("fairway: nothing enqueued: \(error)")
            throw ExitCode(75)
        } catch let error as EnqueueError {
            printError("fairway: nothing enqueued: \(error)")
            throw ExitCode(2)
        } catch let error as ProducerRefusal {
            printError("fairway: nothing enqueued: \(error)")
            throw ExitCode(2)
        } catch let error as QueueFileError {
            printError("fairway: \(error)")
            throw ExitCode(2)
        } catch {
            printError("fairway: nothing enqueued: \(error)")
            throw ExitCode(1)
        }
    }

    var checks: ProducerChecks {
        ProducerChecks(allowUndeclaredQueues: anyQueue, allowUnknownJobTypes: anyType)
    }
}

extension EnqueueCommand {
    /// Publishes to a broker with confirms.
    func publish(_ jobs: [NewJob], to address: String) throws {
        let text = address == "env" ? (ProcessInfo.processInfo.environment["FAIRWAY_AMQP_URL"] ?? "") : address
        for (index, job) in jobs.enumerated() {
            if let problem = job.problem {
                printError("fairway: nothing enqueued: \(jobs.count > 1 ? "job \(index + 1): " : "")\(problem)")
                throw ExitCode(2)
            }
        }
        let url: AMQPURL
        do {
            url = try AMQPURL(text)
        } catch {
            printError("fairway: --amqp: \(error)")
            throw ExitCode(2)
        }
        var options = AMQPJobProducer.Options(url: url)
        options.caCertificate = caCertificate
        options.declareQueues = create || anyQueue
        let producer = AMQPJobProducer(options: options)
        defer { producer.close() }
        do {
            _ = try producer.enqueue(contentsOf: jobs)
            print(jobs.count == 1 ? "published 1 job" : "published \(jobs.count) jobs")
        } catch let error as AMQPPublishRefused {
            printError("fairway: \(error)")
            throw ExitCode(75)
        } catch let error as ProducerRefusal {
            printError("fairway: nothing enqueued: \(error)")
            throw ExitCode(2)
        } catch {
            printError("fairway: \(error)")
            throw ExitCode(1)
        }
    }
}

/// Parses JSON lines into jobs.
enum JSONLines {
    static func jobs(from data: Data) throws -> [NewJob] {
        var jobs: [NewJob] = []
        var lineNumber = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let trimmed = line.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }
            if trimmed.isEmpty || trimmed.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) {
                continue
            }
            func fail(_ message: String) -> EnqueueError {
                EnqueueError(index: nil, message: "line \(lineNumber): \(message)")
            }
            guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed)) as? [String: Any] else {
                throw fail("not a JSON object")
            }
            guard let queue = object["queue"] as? String else { throw fail("missing \"queue\" (a string)") }
            guard let type = object["type"] as? String else { throw fail("missing \"type\" (a string)") }
            var payload: [UInt8] = Array("{}".utf8)
            if let value = object["payload"] {
                guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed]) else {
                    throw fail("\"payload\" cannot be written as JSON")
                }
                payload = Array(data)
            }
            var delay = Duration.zero
            if let value = object["delay"] {
                guard let seconds = value as? Double, seconds >= 0 else {
                    throw fail("\"delay\" must be a non-negative number of seconds")
                }
                delay = .milliseconds(Int64(seconds * 1000))
            }
            var priority = 0
            if let value = object["priority"] {
                guard let number = value as? Int else { throw fail("\"priority\" must be a whole number") }
                priority = number
            }
            var key: String?
            if let value = object["key"] {
                guard let text = value as? String else { throw fail("\"key\" must be a string") }
                key = text
            }
            jobs.append(
                NewJob(queue: queue, type: type, payload: payload, delay: delay, priority: priority, fairnessKey: key))
        }
        return jobs
    }
}

import FairwayAMQP
import FairwayConfig
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Testing

@Suite("Configuration file")
struct ConfigurationLoaderTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func parse(_ yaml: String, environment: [String: String] = [:]) throws -> FairwayConfiguration {
        try ConfigurationLoader.parse(yaml: yaml, file: "test.yaml", environment: environment)
    }

    /// Parses `yaml`, which must fail, and returns the error.
    func failure(_ yaml: String, environment: [String: String] = [:]) -> ConfigError? {
        do {
            _ = try parse(yaml, environment: environment)
            Issue.record("expected an error for:\n\(yaml)")
            return nil
        } catch let error as ConfigError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test("the documented example in config/ parses, with the pattern expanded and the override applied")
    func exampleFile() throws {
        let path = Self.packageRoot.appendingPathComponent("config/fairway.yaml").path
        let config = try ConfigurationLoader.load(path: path, environment: [:])
        #expect(config.workers == 8)
        #expect(config.cost == .count)
        #expect(config.http.host == "127.0.0.1" && config.http.port == 9464)
        #expect(config.http.adminToken == nil)
        #expect(config.http.perQueueMetricsUpTo == 250)
        #expect(config.sources == [.sqlite(path: "fairway.db")])
        #expect(config.queues.count == 103)
        let byName = Dictionary(uniqueKeysWithValues: config.queues.map { ($0.name, $0) })
        #expect(byName["billing"]?.settings.weight == 8)
        #expect(byName["billing"]?.settings.maxConcurrency == 4)
        #expect(byName["billing"]?.timeout == .seconds(30))
        #expect(byName["email"]?.settings.rateLimit == RateLimit(perSecond: 50, burst: 10))
        #expect(config.backlogLimits == ["email": BacklogLimit(maxBacklog: 10000)])
        #expect(byName["reports"]?.isolation == .process(ProcessWorkerSettings(killGrace: .seconds(5))))
        #expect(byName["billing"]?.isolation == .thread)
        #expect(byName["tenant-1"]?.settings.weight == 1)
        #expect(byName["tenant-7"]?.settings.weight == 2)
        #expect(byName["tenant-100"]?.timeout == .seconds(1800))
        #expect(byName["tenant-100"]?.retry.maxAttempts == 5)
        #expect(config.queues.map(\.name).prefix(4) == ["billing", "email", "reports", "tenant-1"])
    }

    @Test("logLevel is one of swift-log's levels; anything else names the field and the choices")
    func logLevel() throws {
        #expect(try parse("queues: [{ name: q }]").logLevel == nil)
        #expect(try parse("logLevel: debug\nqueues: [{ name: q }]").logLevel == .debug)
        let error = failure("logLevel: loud\nqueues: [{ name: q }]")
        #expect(
            error?.field == "logLevel" && "\(error!)".contains("expected one of trace, debug, info"),
            "\(String(describing: error))")
    }

    @Test("defaults apply under each queue's own fields")
    func defaultsAndOverrides() throws {
        let config = try parse(
            """
            defaults: { weight: 3, timeout: 10s, attempts: 2, prefetch: 4, rate: 600/m }
            queues:
              - { name: "a" }
              - { name: "b", weight: 0.5, timeout: 250ms, paused: true }
            """
        )
        #expect(config.queues[0].settings.weight == 3)
        #expect(config.queues[0].timeout == .seconds(10))
        #expect(config.queues[0].credit == 4)
        #expect(config.queues[0].settings.rateLimit?.perSecond == 10)
        #expect(config.queues[1].settings.weight == 0.5)
        #expect(config.queues[1].timeout == .milliseconds(250))
        #expect(config.queues[1].settings.paused)
        #expect(config.queues[1].retry.maxAttempts == 2)
    }

    @Test("patterns: ranges, zero padding, lists and combinations")
    func patterns() throws {
        #expect(try QueueNamePattern.expand("t-{1..3}") == ["t-1", "t-2", "t-3"])
        #expect(try QueueNamePattern.expand("t-{08..10}") == ["t-08", "t-09", "t-10"])
        #expect(try QueueNamePattern.expand("{eu,us}-{1..2}") == ["eu-1", "eu-2", "us-1", "us-2"])
        #expect(try QueueNamePattern.expand("plain") == ["plain"])
        #expect(throws: QueueNamePattern.Problem.self) { try QueueNamePattern.expand("t-{3..1}") }
        #expect(throws: QueueNamePattern.Problem.self) { try QueueNamePattern.expand("t-{1..3") }
        #expect(throws: QueueNamePattern.Problem.self) { try QueueNamePattern.expand("t-{x}") }
    }

    @Test("environment variables are substituted, with fallbacks")
    func environment() throws {
        let config = try parse(
            """
            http: { listen: "0.0.0.0:${PORT}", adminToken: "${TOKEN:-none}" }
            sources: [{ kind: amqp, url: "amqp://${USER}:${PASS}@localhost/%2f" }]
            queues: [{ name: q }]
            """,
            environment: ["PORT": "9000", "USER": "app", "PASS": "s3cret"]
        )
        #expect(config.http.port == 9000)
        #expect(config.http.adminToken == "none")
        #expect(config.sources == [.amqp(AMQPSourceSettings(url: try AMQPURL("amqp://app:s3cret@localhost/%2f")))])
    }

    /// Each kind of bad input, the field it must name, and words its message must contain.
    static let badInputs: [(yaml: String, field: String, message: String, line: Int?)] = [
        ("queues: [ { name: a ", "", "not valid YAML", nil),
        ("", "", "empty", nil),
        ("- a\n- b", "", "must be a mapping", 1),
        ("wokers: 4\nqueues: [{name: a}]", "wokers", "did you mean 'workers'", 1),
        ("workers: many\nqueues: [{name: a}]", "workers", "whole number", 1),
        ("workers: 0\nqueues: [{name: a}]", "workers", "between 1 and 4096", 1),
        ("cost: fast\nqueues: [{name: a}]", "cost", "one of count, time", 1),
        ("http: { listen: nowhere }\nqueues: [{name: a}]", "http.listen", "HOST:PORT", 1),
        ("sources: [{ kind: redis }]\nqueues: [{name: a}]", "sources[0].kind", "unknown source kind 'redis'", 1),
        ("sources: [{ kind: sqlite }]\nqueues: [{name: a}]", "sources[0].path", "missing", 1),
        ("sources: [{ kind: amqp, url: \"http://x\" }]\nqueues: [{name: a}]", "sources[0].url", "amqp://", 1),
        (
            "sources: [{ kind: amqp, url: \"amqp://h\", queueType: stream }]\nqueues: [{name: a}]",
            "sources[0].queueType", "classic, quorum", 1
        ),
        (
            "sources: [{ kind: amqp, url: \"amqp://h\", heartbeat: -1 }]\nqueues: [{name: a}]", "sources[0].heartbeat",
            "between 0", 1
        ),
        ("workers: 2", "queues", "missing", 1),
        ("queues: []", "queues", "at least one queue", 1),
        ("queues: [{ weight: 2 }]", "queues[0].name", "needs a name", 1),
        ("queues:\n  - { name: a }\n  - { name: \"t-{5..1}\" }", "queues[1].name", "counts down", 3),
        ("queues: [{ name: a, weight: 0 }]", "queues[0].weight", "greater than 0", 1),
        // Found by the fuzzer: nanoseconds past Int64 used to trap the loader.
        ("queues: [{ name: a, timeout: \"1e12s\" }]", "queues[0].timeout", "at most 1000000000 seconds", 1),
        ("defaults: { backoff: 1e300h }\nqueues: [{ name: a }]", "defaults.backoff", "at most", 1),
        (
            "sources: [{ kind: amqp, url: \"amqp://h\", attemptKey: short }]\nqueues: [{name: a}]",
            "sources[0].attemptKey", "at least 16 bytes", 1
        ),
        ("queues: [{ name: a, weight: -2 }]", "queues[0].weight", "greater than 0", 1),
        ("queues: [{ name: a, weight: heavy }]", "queues[0].weight", "expected a number", 1),
        ("queues: [{ name: a, maxConcurrency: 0 }]", "queues[0].maxConcurrency", "between 1", 1),
        ("queues: [{ name: a, rate: fast }]", "queues[0].rate", "expected a rate", 1),
        ("queues: [{ name: a, rate: 10/week }]", "queues[0].rate", "expected a rate", 1),
        ("queues: [{ name: a, timeout: soon }]", "queues[0].timeout", "expected a duration", 1),
        ("queues: [{ name: a, timeout: 0s }]", "queues[0].timeout", "greater than zero", 1),
        ("queues: [{ name: a, attempts: 0 }]", "queues[0].attempts", "between 1 and 1000", 1),
        ("queues: [{ name: a, jitter: 2 }]", "queues[0].jitter", "at most 1", 1),
        ("queues: [{ name: a, paused: maybe }]", "queues[0].paused", "true or false", 1),
        ("queues: [{ name: a, weigth: 2 }]", "queues[0].weigth", "did you mean 'weight'", 1),
        ("queues: [{ name: a, weight: [1, 2] }]", "queues[0].weight", "single value", 1),
        ("queues: [{ name: a, backoff: 10s, maxBackoff: 1s }]", "queues[0].maxBackoff", "less than backoff", nil),
        ("queues: [{ name: a, name: b }]", "", "'name' given twice", 1),
        ("queues: { a: 1 }", "queues", "expected a list of queues", 1),
        (
            "http: { adminToken: \"${MISSING_TOKEN}\" }\nqueues: [{name: a}]", "http.adminToken",
            "MISSING_TOKEN is not set", 1
        ),
        ("defaults: { name: x }\nqueues: [{name: a}]", "defaults.name", "unknown field 'name'", 1),
        ("logFormat: xml\nqueues: [{name: a}]", "logFormat", "expected one of text, json", 1),
        ("http: { perQueueMetricsUpTo: -1 }\nqueues: [{name: a}]", "http.perQueueMetricsUpTo", "between 0", 1),
        ("queues: [{ name: a, isolation: container }]", "queues[0].isolation", "one of thread, process", 1),
        ("queues: [{ name: a, command: [\"w\"] }]", "queues[0].command", "add isolation: process", nil),
        ("queues: [{ name: a, isolation: process, command: [] }]", "queues[0].command", "program and its arguments", 1),
        ("queues: [{ name: a, isolation: process, killGrace: soon }]", "queues[0].killGrace", "expected a duration", 1),
        ("queues: [{ name: a, isolation: process, memoryLimitMB: 8 }]", "queues[0].memoryLimitMB", "between 32", 1),
        ("queues: [{ name: a, memoryLimitMB: 64 }]", "queues[0].memoryLimitMB", "add isolation: process", nil),
        ("queues: [{ name: a, isolation: process, pipeline: 0 }]", "queues[0].pipeline", "between 1", 1),
        ("queues: [{ name: a, isolation: process, pipeline: 65 }]", "queues[0].pipeline", "between 1", 1),
        ("queues: [{ name: a, pipeline: 4 }]", "queues[0].pipeline", "add isolation: process", nil),
        ("queues: [{ name: a, latencyTarget: 0s }]", "queues[0].latencyTarget", "greater than zero", 1),
        ("queues: [{ name: a, maxBacklog: 0 }]", "queues[0].maxBacklog", "between 1", 1),
        ("scale: { maxWorkers: 0 }\nqueues: [{name: a}]", "scale.maxWorkers", "between 1", 1),
        ("groups: [{ name: free, weight: 0 }]\nqueues: [{name: a}]", "groups[0].weight", "greater than 0", 1),
        ("groups: [{ weight: 2 }]\nqueues: [{name: a}]", "groups[0].name", "every group needs a name", 1),
        ("groups: [{ name: f }, { name: f }]\nqueues: [{name: a}]", "groups[1].name", "defined twice", 1),
        ("groups: [{ name: f, share: 2 }]\nqueues: [{name: a}]", "groups[0].share", "unknown field", 1),
        ("groups: { free: 1 }\nqueues: [{name: a}]", "groups", "expected a list of groups", 1),
        (
            "groups: [{ name: f }]\nqueues: [{ name: a, group: g }]", "queues[0].group",
            "no group named 'g'; the groups are f", nil
        ),
        ("queues: [{ name: a, group: g }]", "queues[0].group", "define it under groups:", nil),
        ("queues: [{ name: a, globalConcurrency: 0 }]", "queues[0].globalConcurrency", "between 1", 1),
        ("queues: [{ name: a, globalConcurrency: 5.5 }]", "queues[0].globalConcurrency", "whole number", 1),
        ("queues: [{ name: a, backlogRetryAfter: 5s }]", "queues[0].backlogRetryAfter", "needs maxBacklog", nil),
        ("queues: [{ name: a, keys: false }]", "queues[0].keys", "write keys: true", 1),
        ("queues: [{ name: a, keys: maybe }]", "queues[0].keys", "true or false", 1),
        ("queues: [{ name: a, keys: { concurrency: 0 } }]", "queues[0].keys.concurrency", "between 1", 1),
        ("queues: [{ name: a, keys: { cap: 2 } }]", "queues[0].keys.cap", "unknown field", 1),
        ("queues: [{ name: a, keys: { weights: [a] } }]", "queues[0].keys.weights", "mapping of keys", 1),
        ("queues: [{ name: a, keys: { weights: { acme: -1 } } }]", "queues[0].keys.weights.acme", "greater than 0", 1),
        (
            "queues: [{ name: \"t-*\", globalConcurrency: 2 }]", "queues[0].globalConcurrency",
            "cannot apply to a pattern", nil
        ),
        ("queues: [{ name: \"t-*\", maxBacklog: 2 }]", "queues[0].maxBacklog", "cannot apply to a pattern", nil),
    ]

    @Test("isolation, worker commands, recycling and backlog limits are read per queue, defaults first")
    func isolationAndLimits() throws {
        let config = try parse(
            """
            defaults: { isolation: process, recycleAfterJobs: 50 }
            queues:
              - { name: images, command: "python3 worker.py --fast", recycleAboveMemoryMB: 256, killGrace: 500ms, memoryLimitMB: 512 }
              - { name: emails, isolation: thread, maxBacklog: 1000, latencyTarget: 5s }
              - { name: reports, maxBacklog: 10, backlogRetryAfter: 30s, pipeline: 1 }
            """)
        let byName = Dictionary(uniqueKeysWithValues: config.queues.map { ($0.name, $0.isolation) })
        #expect(
            byName["images"]
                == .process(
                    ProcessWorkerSettings(
                        command: ["python3", "worker.py", "--fast"], recycleAfterJobs: 50,
                        recycleAboveMemoryBytes: 256 << 20, killGrace: .milliseconds(500), memoryLimitBytes: 512 << 20))
        )
        #expect(byName["emails"] == .thread)
        #expect(byName["reports"] == .process(ProcessWorkerSettings(recycleAfterJobs: 50, pipelineDepth: 1)))
        #expect(config.backlogLimits["emails"] == BacklogLimit(maxBacklog: 1000, retryAfter: .seconds(5)))
        #expect(config.backlogLimits["reports"] == BacklogLimit(maxBacklog: 10, retryAfter: .seconds(30)))
        #expect(config.backlogLimits["images"] == nil)
        #expect(config.http.scale.latencyTargets == ["emails": .seconds(5)])
    }

    @Test("groups: weights read, 1 when absent; queues join by name, patterns and defaults included")
    func groups() throws {
        let config = try parse(
            """
            groups:
              - { name: free, weight: 1 }
              - { name: paid, weight: 4 }
              - { name: internal }
            defaults: { group: free }
            queues:
              - { name: system, weight: 8, group: internal }
              - { name: "tenant-{1..3}" }
              - { name: "vip-{1..2}", group: paid }
            """)
        #expect(
            config.groups == [
                QueueGroup(name: "free", weight: 1), QueueGroup(name: "paid", weight: 4),
                QueueGroup(name: "internal", weight: 1),
            ])
        #expect(config.engineConfiguration.groups == config.groups)
        let byName = Dictionary(uniqueKeysWithValues: config.queues.map { ($0.name, $0.group) })
        #expect(byName["system"] == "internal")
        #expect(byName["tenant-2"] == "free")
        #expect(byName["vip-1"] == "paid")
    }

    @Test("keys: true or a mapping of a cap and weights; a pattern name is kept as it is, with its group")
    func keysAndPatterns() throws {
        let config = try parse(
            """
            groups: [{ name: free, weight: 1 }, { name: paid, weight: 4 }]
            queues:
              - { name: system, weight: 8 }
              - { name: "tenant-*", group: free }
              - { name: "vip-{1..2}", group: paid }
              - { name: mail, keys: true }
              - { name: reports, keys: { concurrency: 2, weights: { acme: 4, globex: 0.5 } } }
            """)
        let byName = Dictionary(uniqueKeysWithValues: config.queues.map { ($0.name, $0) })
        #expect(config.queues.map(\.name) == ["system", "tenant-*", "vip-1", "vip-2", "mail", "reports"])
        #expect(byName["tenant-*"]?.isPattern == true && byName["tenant-*"]?.group == "free")
        #expect(byName["mail"]?.keys == KeyFairness())
        #expect(byName["reports"]?.keys == KeyFairness(weights: ["acme": 4, "globex": 0.5], concurrency: 2))
        #expect(byName["system"]?.keys == nil)
    }

    @Test("globalConcurrency bounds the queue's prefetch and local cap; other queues keep theirs")
    func globalConcurrency() throws {
        let config = try parse(
            """
            defaults: { prefetch: 64 }
            queues:
              - { name: db, globalConcurrency: 5, maxConcurrency: 20 }
              - { name: tight, globalConcurrency: 10, maxConcurrency: 3, prefetch: 2 }
              - { name: free }
            """)
        let byName = Dictionary(uniqueKeysWithValues: config.queues.map { ($0.name, $0) })
        #expect(byName["db"]?.globalConcurrency == 5)
        #expect(byName["db"]?.credit == 5)
        #expect(byName["db"]?.settings.maxConcurrency == 5)
        #expect(byName["tight"]?.credit == 2)
        #expect(byName["tight"]?.settings.maxConcurrency == 3)
        #expect(byName["free"]?.globalConcurrency == nil)
        #expect(byName["free"]?.credit == 64)
    }

    @Test("each kind of bad input names the file, the field and what is wrong", arguments: badInputs.indices)
    func badInput(_ index: Int) {
        let bad = Self.badInputs[index]
        guard let error = failure(bad.yaml) else { return }
        #expect(error.file == "test.yaml")
        #expect(error.field == bad.field, "\(error)")
        #expect(error.message.contains(bad.message), "\(error)")
        if let line = bad.line {
            #expect(error.line == line, "\(error)")
        }
        #expect(error.description.hasPrefix("test.yaml"))
    }

    @Test("a missing file is named")
    func missingFile() {
        #expect(throws: ConfigError(file: "/no/such/fairway.yaml", field: "", message: "no such file")) {
            _ = try ConfigurationLoader.load(path: "/no/such/fairway.yaml")
        }
    }

    @Test("a worker command starts in the configuration file's folder; a program found nowhere is named")
    func workerCommandFolder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fairway-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = folder.appendingPathComponent("worker.sh").path
        try "#!/bin/sh\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let path = folder.appendingPathComponent("fairway.yaml").path
        try """
        queues:
          - { name: local, isolation: process, command: ["./worker.sh", "--fast"] }
          - { name: onPath, isolation: process, command: "sh worker.py" }
          - { name: itself, isolation: process }
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let config = try ConfigurationLoader.load(path: path)
        let byName = Dictionary(uniqueKeysWithValues: config.queues.map { ($0.name, $0.isolation) })
        let expected = folder.standardizedFileURL.path
        #expect(
            byName["local"]
                == .process(ProcessWorkerSettings(command: ["./worker.sh", "--fast"], workingDirectory: expected)))
        #expect(
            byName["onPath"]
                == .process(ProcessWorkerSettings(command: ["sh", "worker.py"], workingDirectory: expected)))
        #expect(byName["itself"] == .process(ProcessWorkerSettings()), "the program itself keeps the current directory")

        for (command, detail) in [
            ("[\"./missing.sh\"]", "\(expected)/missing.sh does not exist"),
            ("[\"no-such-program-here\"]", "not found on PATH"),
            ("[\"./fairway.yaml\"]", "\(expected)/fairway.yaml is not executable"),
        ] {
            try "queues: [{ name: a, isolation: process, command: \(command) }]"
                .write(toFile: path, atomically: true, encoding: .utf8)
            do {
                _ = try ConfigurationLoader.load(path: path)
                Issue.record("\(command) was accepted")
            } catch let error as ConfigError {
                #expect(error.field == "queues[0].command", "\(error)")
                #expect(error.message.contains(detail), "\(error)")
                #expect(error.message.contains("relative to the configuration file's folder"), "\(error)")
            }
        }
    }
}

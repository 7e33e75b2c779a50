import FairwayConfig
import FairwayTestSupport
import Foundation
import NIOConcurrencyHelpers
import PropertyBased
import Testing

/// A configuration file is outside input too: random YAML built from the real field names with
/// adversarial values, and random mutations of the documented example, must each load or fail with a
/// ``ConfigError`` that names what is wrong; nothing traps, nothing hangs.
@Suite("Configuration fuzzing (property-based)")
struct ConfigurationFuzzTests {
    @Test("random documents of real fields with adversarial values: each loads or names its error")
    func randomDocuments() async {
        let outcomes = NIOLockedValueBox([0, 0])
        await propertyCheck(count: 2000, input: Gen.uint64()) { seed in
            var fuzzer = ConfigFuzzer(seed: seed)
            let yaml = fuzzer.document()
            Self.check(yaml, seed: seed, outcomes: outcomes)
        }
        let (loaded, refused) = outcomes.withLockedValue { ($0[0], $0[1]) }
        print("configuration fuzzing, random documents: \(loaded) loaded, \(refused) refused with a named error")
        #expect(loaded + refused == 2000)
        #expect(refused > 0 && loaded > 20, "the generator should make both kinds: \(loaded) loaded")
    }

    @Test("random mutations of the documented example: each loads or names its error")
    func mutatedExample() async throws {
        let path = ConfigurationLoaderTests.packageRoot.appendingPathComponent("config/fairway.yaml").path
        let example = Array(try String(contentsOfFile: path, encoding: .utf8).utf8)
        let outcomes = NIOLockedValueBox([0, 0])
        await propertyCheck(count: 1000, input: Gen.uint64()) { seed in
            var random = SplitMix64(seed: seed)
            var bytes = example
            for _ in 0..<(1 + random.below(6)) {
                let at = random.below(bytes.count)
                switch random.below(4) {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(random.pick(Array(":{}[]-,'\"&*!|>#\n 9.".utf8)), at: at)
                case 2: bytes[at] = UInt8(truncatingIfNeeded: random.next())
                default: bytes.insert(contentsOf: random.pick(ConfigFuzzer.values).utf8, at: at)
                }
            }
            Self.check(String(decoding: bytes, as: UTF8.self), seed: seed, outcomes: outcomes)
        }
        let (loaded, refused) = outcomes.withLockedValue { ($0[0], $0[1]) }
        print("configuration fuzzing, mutated example: \(loaded) loaded, \(refused) refused with a named error")
        #expect(loaded + refused == 1000)
    }

    static func check(_ yaml: String, seed: UInt64, outcomes: NIOLockedValueBox<[Int]>) {
        let began = Date()
        do {
            _ = try ConfigurationLoader.parse(yaml: yaml, file: "fuzz.yaml", environment: ["TOKEN": "x"])
            outcomes.withLockedValue { $0[0] += 1 }
        } catch let error as ConfigError {
            #expect(error.file == "fuzz.yaml" && !error.message.isEmpty, "seed \(seed): \(error)")
            outcomes.withLockedValue { $0[1] += 1 }
        } catch {
            Issue.record("seed \(seed): not a ConfigError: \(error)\n\(yaml)")
        }
        #expect(Date().timeIntervalSince(began) < 5, "seed \(seed): took too long\n\(yaml.prefix(500))")
    }
}

/// YAML documents made of Fairway's real fields (so they reach the validation of each one) holding values
/// of the wrong type, out of range, extreme or odd.
struct ConfigFuzzer {
    private var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    static let values = [
        "1", "0", "-1", "8", "2.5", "1e308", "-1e308", "1e400", ".nan", ".inf", "-.inf", "9223372036854775807",
        "9223372036854775808", "18446744073709551616", "\"\"", "\"30s\"", "\"1e12s\"", "\"-5ms\"", "\"1e300h\"",
        "\"500ms\"", "\"100/s\"", "\"1e400/m\"", "\"0/s\"", "\"x/y\"", "true", "null", "~", "[]", "{}", "[1, 2]",
        "\"${TOKEN}\"", "\"${MISSING}\"", "\"${UNCLOSED\"", "\"q.{1..3}\"", "\"q.{0..99999999}\"", "\"q.{5..1}\"",
        "\"{a,b}\"", "\"{\"", "\"amqp://u:p@127.0.0.1:5672/%2f\"", "\"amqp://\"", "\"http://x\"", "time", "count",
        "thread", "process", "\"\(String(repeating: "n", count: 300))\"", "&a 1", "*a", "!!binary aGk=",
    ]

    static let queueFields = [
        "name", "weight", "maxConcurrency", "rateLimit", "burst", "paused", "attempts", "backoff", "maxBackoff",
        "jitter", "timeout", "prefetch", "isolation", "command", "recycleAfterJobs", "recycleAboveMemoryMB",
        "killGrace", "maxBacklog", "backlogRetryAfter", "extra",
    ]

    /// Values each field accepts, so that most documents get past their first field to the next.
    static let valid: [String: [String]] = [
        "weight": ["1", "8", "0.5"], "maxConcurrency": ["4"], "rateLimit": ["\"100/s\"", "5"], "burst": ["10"],
        "paused": ["false"], "attempts": ["3"], "backoff": ["\"1s\""], "maxBackoff": ["\"1m\""], "jitter": ["0.2"],
        "timeout": ["\"30s\""], "prefetch": ["16"], "isolation": ["thread", "process"], "command": ["[\"true\"]"],
        "recycleAfterJobs": ["100"], "recycleAboveMemoryMB": ["256"], "killGrace": ["\"2s\""],
        "maxBacklog": ["1000"], "backlogRetryAfter": ["\"5s\""], "workers": ["2"], "cost": ["time", "count"],
        "listen": ["\"127.0.0.1:0\""], "adminToken": ["\"${TOKEN}\""], "heartbeat": ["30"], "declare": ["true"],
        "queueType": ["quorum"], "attemptKey": ["\"0123456789abcdef0123\""], "stateDirectory": ["\"/tmp\""],
    ]

    mutating func value(for field: String = "") -> String {
        if let valid = Self.valid[field], random.below(3) != 0 { return random.pick(valid) }
        return random.pick(Self.values)
    }

    mutating func mapping(_ fields: [String], count: Int) -> String {
        var entries: [String] = []
        for _ in 0..<count {
            let field = random.pick(fields)
            entries.append("\(field): \(value(for: field))")
        }
        return "{ " + entries.joined(separator: ", ") + " }"
    }

    mutating func document() -> String {
        var lines: [String] = []
        if random.below(2) == 0 { lines.append("workers: \(value(for: "workers"))") }
        if random.below(3) == 0 { lines.append("cost: \(value(for: "cost"))") }
        if random.below(2) == 0 {
            let kind = random.pick(["sqlite", "sqlite", "amqp", "kafka"])
            let extra = mapping(
                ["path", "url", "prefetch", "heartbeat", "declare", "queueType", "attemptKey", "stateDirectory"],
                count: random.below(3))
            let url = "url: \"amqp://u:p@127.0.0.1:5672/%2f\""
            lines.append(
                kind == "amqp"
                    ? "sources: [{ kind: amqp, \(url), \(extra.dropFirst(2))]"
                    : "sources: [{ kind: \(kind), path: \"q.db\" }]")
        }
        if random.below(3) == 0 {
            lines.append("http: \(mapping(["listen", "adminToken", "extra"], count: random.below(3)))")
        }
        if random.below(2) == 0 { lines.append("defaults: \(mapping(Self.queueFields, count: random.below(4)))") }
        if random.below(8) != 0 {
            lines.append("queues:")
            for _ in 0..<random.below(4) {
                let name = random.below(4) == 0 ? value() : random.pick(["\"a\"", "\"b\"", "\"t-{1..3}\""])
                let fields = mapping(Self.queueFields, count: random.below(4)).dropFirst(2)
                lines.append("  - { name: \(name), " + fields)
            }
        }
        return lines.joined(separator: "\n")
    }
}

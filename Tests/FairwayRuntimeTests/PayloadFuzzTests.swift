import FairwayJobs
import FairwayRuntime
import FairwayTestSupport
import Foundation
import PropertyBased
import Testing

/// Payloads are untrusted: random and adversarial ones go through every built-in job (but `crash`, whose
/// purpose is to end the process) and the payload decoder on a thread queue. Each ends its own job, as a
/// success or a dead letter with a reason; the process survives all of them and loses none.
@Suite("Payload fuzzing (property-based)")
struct PayloadFuzzTests {
    static let types = ["noop", "sleep", "fail", "append", "no-such-type", ""]
    static let payloadsPerSeed = 60

    @Test("random and adversarial payloads through every built-in: nothing crashes, nothing is lost")
    func builtinsSurviveEveryPayload() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fairway-fuzz-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let counted = Shared(0)
        await propertyCheck(count: 25, input: Gen.uint64()) { seed in
            var fuzzer = PayloadFuzzer(seed: seed, folder: folder)
            let payloads = (0..<Self.payloadsPerSeed).map { _ in fuzzer.payload() }
            let harness = try! EngineHarness(
                queues: [QueueDefinition(name: "fuzz", timeout: .seconds(5), retry: quickRetry(2), credit: 16)])
            try! harness.start()
            for type in Self.types {
                harness.source.enqueue(queue: "fuzz", jobType: type, payloads: payloads)
            }
            let total = payloads.count * Self.types.count
            #expect(eventually(timeout: 60) { harness.source.liveJobCount == 0 }, "seed \(seed)")
            harness.stop()
            let letters = harness.source.deadLettered
            #expect(harness.source.ackedCount + letters.count == total, "seed \(seed): a job was lost")
            #expect(letters.allSatisfy { !$0.reason.isEmpty }, "seed \(seed): a dead letter without a reason")
            counted.update { $0 += total }
        }
        print("payload fuzzing: \(counted.read()) jobs through \(Self.types.count) job types")
        #expect(counted.read() >= 25 * Self.payloadsPerSeed * Self.types.count)
    }

    @Test(
        "nesting that traps Foundation's JSONDecoder (513 '[' and nothing else) is refused, not decoded",
        arguments: [512, 513, 514, 2000])
    func deepNesting(depth: Int) throws {
        let harness = try EngineHarness(queues: [QueueDefinition(name: "q", retry: quickRetry(3))])
        try harness.start()
        defer { harness.stop() }
        let payload = Array(String(repeating: "[", count: depth).utf8)
        harness.source.enqueue(queue: "q", jobType: "sleep", payload: payload)
        #expect(eventually { harness.source.deadLettered.count == 1 })
        let letter = try #require(harness.source.deadLettered.first)
        #expect(letter.reason.contains("nested deeper than 500 levels"), "\(letter.reason)")
        #expect(letter.job.attempts == 1, "refused, not retried")
    }

    @Test(
        "sleep and append refuse durations they cannot honour, naming the field",
        arguments: ["1e308", "-1e308", "1.7976931348623157e308", "18446744073709551616", "-1", "86400001", "1e400"])
    func durationsOutOfRange(ms: String) throws {
        let harness = try EngineHarness(queues: [QueueDefinition(name: "q", retry: quickRetry(3))])
        try harness.start()
        defer { harness.stop() }
        harness.source.enqueue(queue: "q", jobType: "sleep", payload: Array(#"{"ms":\#(ms)}"#.utf8))
        harness.source.enqueue(
            queue: "q", jobType: "append", payload: Array(#"{"path":"/dev/null","line":"x","ms":\#(ms)}"#.utf8))
        #expect(eventually { harness.source.deadLettered.count == 2 })
        for letter in harness.source.deadLettered {
            // 1e400 does not decode as a Double at all; every other value decodes and is refused by range.
            let named = letter.reason.contains("ms must be a number from 0 to 86400000") || ms == "1e400"
            #expect(named, "\(letter.reason)")
            #expect(letter.job.attempts == 1, "a payload that can never run is not retried")
        }
    }
}

/// Payloads for fuzzing: random bytes, truncated and malformed JSON, and JSON objects whose fields hold
/// adversarial values (extreme numbers, wrong types, huge and odd strings, deep nesting).
struct PayloadFuzzer {
    private var random: SplitMix64
    let folder: String

    init(seed: UInt64, folder: String) {
        random = SplitMix64(seed: seed)
        self.folder = folder
    }

    mutating func next() -> UInt64 { random.next() }

    mutating func below(_ bound: Int) -> Int { random.below(bound) }

    mutating func pick<T>(_ choices: [T]) -> T { random.pick(choices) }

    mutating func payload() -> [UInt8] {
        switch below(6) {
        case 0: return (0..<below(64)).map { _ in UInt8(truncatingIfNeeded: next()) }
        case 1:
            let text = Array(object().utf8)
            return Array(text.prefix(below(max(1, text.count))))
        case 2: return Array(String(repeating: pick(["[", "{\"a\":"]), count: 400 + below(400)).utf8)
        default: return Array(object().utf8)
        }
    }

    mutating func object() -> String {
        let keys = ["ms", "path", "line", "message", "how", "extra"]
        var fields: [String] = []
        for _ in 0..<below(5) {
            let key = pick(keys)
            // The append job writes to `path`: only ever a path inside this test's folder, or one that
            // cannot be written, never a relative one (it would land in the working directory).
            fields.append("\"\(key)\":\(key == "path" ? path() : value(depth: 0))")
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    mutating func path() -> String {
        pick([
            "\"\(folder)/runs.log\"", "\"/nonexistent-fairway/x/y\"", "\"/dev/full\"", "\"/dev/null\"", "\"\"",
            "\"\(folder)/\(String(repeating: "a", count: 300))\"", "\"\(folder)/with\\u0000nul\"", "null", "1e308",
            "[]",
        ])
    }

    mutating func value(depth: Int) -> String {
        switch below(depth > 3 ? 4 : 7) {
        case 0:
            return pick([
                "1e308", "-1e308", "1.7976931348623157e308", "5e-324", "-0.0", "0", "1", "3.5", "18446744073709551615",
                "18446744073709551616", "9223372036854775807", "-9223372036854775808", "86400001", "1e400", "-1",
                "1.0e+1000",
            ])
        case 1:
            return pick([
                "\"\"", "\"\\u0000\"", "\"\\ud800\"", "\"\(String(repeating: "x", count: 5000))\"",
                "\"with\\u0000nul\"", "\"segfault\"", "\"kill\"", "\"exit\"",
            ])
        case 2: return pick(["null", "true", "false"])
        case 3: return "[" + (0..<below(3)).map { _ in value(depth: depth + 1) }.joined(separator: ",") + "]"
        default: return "{\"ms\":\(value(depth: depth + 1))}"
        }
    }
}

import FairwayProcessWorkers
import FairwayRuntime
import FairwayTestSupport
import Foundation
import NIOConcurrencyHelpers
import PropertyBased
import Testing

/// Frames from a worker process are untrusted: a real child process (a shell script) says hello and answers
/// its job with fuzzed bytes, and the supervisor must turn each into a result or a named protocol error, never
/// a crash of its own and never a hang.
@Suite("Worker frame fuzzing (property-based)")
struct WorkerFrameFuzzTests {
    @Test("fuzzed results and hellos: each ends as a result or a named error, and the supervisor survives")
    func fuzzedFrames() async throws {
        let folder = TestFolder()
        let counts = NIOLockedValueBox<[String: Int]>([:])
        await propertyCheck(count: 30, input: Gen.uint64()) { seed in
            var fuzzer = FrameFuzzer(seed: seed)
            for index in 0..<6 {
                let hello = fuzzer.below(5) == 0 ? fuzzer.mutate(FrameFuzzer.hello) : FrameFuzzer.hello
                let answer = fuzzer.answer(id: "job-\(index)")
                let helloPath = folder.path("hello-\(seed)-\(index)")
                let answerPath = folder.path("answer-\(seed)-\(index)")
                #expect(FileManager.default.createFile(atPath: helloPath, contents: Data(hello)))
                #expect(FileManager.default.createFile(atPath: answerPath, contents: Data(answer)))
                // Says hello, waits for the job's first bytes, answers with the fuzzed bytes, exits.
                let script = #"cat "$0"; head -c 4 >/dev/null; cat "$1""#
                let pool = WorkerProcessPool(
                    settings: ProcessWorkerSettings(command: ["/bin/sh", "-c", script, helloPath, answerPath]),
                    startTimeout: .milliseconds(500))
                let began = Date()
                let result = pool.run(WorkerProcessTests.job("noop", id: "job-\(index)"), payload: [1, 2, 3]) { _ in }
                pool.shutdown()
                #expect(Date().timeIntervalSince(began) < 10, "seed \(seed): the supervisor hung on a frame")
                let kind: String
                switch result {
                case .finished(let outcome, _):
                    kind = "result \(outcome.rawValue)"
                case .crashed(let reason):
                    kind = "crash"
                    #expect(reason.contains("worker process"), "seed \(seed): \(reason)")
                case .notStarted(let reason):
                    kind = "refused at start"
                    #expect(reason.contains("/bin/sh"), "seed \(seed): the reason names the command: \(reason)")
                }
                counts.withLockedValue { $0[kind, default: 0] += 1 }
            }
        }
        let seen = counts.withLockedValue { $0 }
        print("worker frame fuzzing: \(seen.values.reduce(0, +)) frames, \(seen.sorted { $0.key < $1.key })")
        #expect(seen.values.reduce(0, +) == 180)
        #expect(seen["crash", default: 0] > 0 && seen.keys.contains { $0.hasPrefix("result") })
    }
}

/// Worker → supervisor bytes: well-formed frames with adversarial fields, wrong lengths, truncations,
/// mutations and noise.
struct FrameFuzzer {
    private var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { random.next() }

    mutating func below(_ bound: Int) -> Int { random.below(bound) }

    mutating func pick<T>(_ choices: [T]) -> T { random.pick(choices) }

    static func frame(header: [UInt8], body: [UInt8] = [], headerLength: UInt32? = nil, bodyLength: UInt32? = nil)
        -> [UInt8]
    {
        func length(_ value: UInt32) -> [UInt8] {
            [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
        }
        return length(headerLength ?? UInt32(header.count)) + header + length(bodyLength ?? UInt32(body.count)) + body
    }

    static let hello = frame(header: Array(#"{"kind":"hello","protocol":1,"pid":1}"#.utf8))

    mutating func answer(id: String) -> [UInt8] {
        let outcome = pick(["\"success\"", "\"failure\"", "\"rejected\"", "\"crash\"", "\"\"", "1", "null", "[]"])
        let ids = ["\"\(id)\"", "\"other\"", "7", "null", "\"\(id)\\u0000\""]
        let reasons = [
            "\"boom\"", "\"\(String(repeating: "r", count: 70_000))\"", "\"\\ud800\"", "1e999", "{\"a\":[1,2]}", "null",
        ]
        let kind = pick(["\"result\"", "\"hello\"", "\"job\"", "\"RESULT\"", "3"])
        let fields = [
            "\"kind\":\(kind)", "\"id\":\(pick(ids))", "\"outcome\":\(outcome)", "\"reason\":\(pick(reasons))",
            "\"attempt\":\(pick(["1", "-1", "1e308", "18446744073709551616", "\"x\""]))",
        ]
        let header = Array(("{" + fields.shuffled(using: &self).joined(separator: ",") + "}").utf8)
        let good = Self.frame(header: Array(#"{"kind":"result","id":"\#(id)","outcome":"success"}"#.utf8))
        switch below(9) {
        case 0: return good
        case 1: return Self.frame(header: header)
        case 2: return Self.frame(header: header, headerLength: pick([0, 1, 0xFFFF_FFFF, 1 << 20 + 1, 70]))
        case 3: return Self.frame(header: header, bodyLength: pick([0xFFFF_FFFF, 200 << 20, 5]))
        case 4: return Array(good.prefix(below(good.count)))
        case 5: return mutate(good)
        case 6: return (0..<below(100)).map { _ in UInt8(truncatingIfNeeded: next()) }
        case 7: return Self.frame(header: Array(String(repeating: "[", count: 2000).utf8))
        default: return Self.hello + good
        }
    }

    /// Flips, drops or inserts a few bytes.
    mutating func mutate(_ bytes: [UInt8]) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<(1 + below(4)) where !bytes.isEmpty {
            let at = below(bytes.count)
            switch below(3) {
            case 0: bytes[at] ^= UInt8(truncatingIfNeeded: 1 << below(8))
            case 1: bytes.remove(at: at)
            default: bytes.insert(UInt8(truncatingIfNeeded: next()), at: at)
            }
        }
        return bytes
    }
}

extension FrameFuzzer: RandomNumberGenerator {}

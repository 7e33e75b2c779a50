import FairwayTestSupport
import Foundation
import PropertyBased
import Testing

@testable import FairwayProcessWorkers

/// Headers in the layout Fairway writes are read by matching their text, all others field by field; both
/// readers must give the same message for the same bytes, whatever a worker or a fuzzer sends.
@Suite("worker header layouts")
struct WorkerHeaderLayoutTests {
    /// A random job or result, its strings sometimes needing escapes, its numbers sometimes too long or
    /// fractional for the matched layout.
    static func message(seed: UInt64, kind: WorkerMessage.Kind? = nil) -> WorkerMessage {
        var random = SplitMix64(seed: seed)
        func text() -> String {
            let pieces = [
                "7", "q", "job-\(random.next() % 1000)", "ünï", "✓", "\"", "\\", "\n", "\u{1}", " ", "}", ",",
            ]
            return (0..<Int.random(in: 0...4, using: &random)).map { _ in pieces.randomElement(using: &random)! }
                .joined()
        }
        func number() -> Int {
            [0, 1, -1, 42, 999_999_999_999_999, -999_999_999_999_999, 1_234_567_890_123_456].randomElement(
                using: &random)!
        }
        if kind.map({ $0 == .job }) ?? Bool.random(using: &random) {
            let timeout: Double = [30, 0, 1800, 0.25, -3, 1e15, 12.5].randomElement(using: &random)!
            return .job(
                id: text(), queue: text(), jobType: text(), attempt: number(), maxAttempts: number(),
                timeoutSeconds: timeout, key: Bool.random(using: &random) ? text() : nil)
        }
        let outcome = WorkerMessage.Outcome.allCases.randomElement(using: &random)!
        return .result(id: text(), outcome: outcome, reason: Bool.random(using: &random) ? text() : nil)
    }

    static func decodeBoth(_ bytes: [UInt8]) -> (
        canonical: WorkerMessage?, fields: Result<WorkerMessage, WorkerProtocolError>
    ) {
        bytes.withUnsafeBufferPointer { pointer in
            (
                WorkerHeaderCodec.decodeCanonical(pointer),
                Result { () throws(WorkerProtocolError) in try WorkerHeaderCodec.decodeFields(pointer) }
            )
        }
    }

    @Test("a written header reads back the same by either reader; plain ones are matched")
    func roundTrip() async {
        await propertyCheck(count: 2_000, input: Gen.uint64()) { seed in
            let message = Self.message(seed: seed)
            let (canonical, fields) = Self.decodeBoth(WorkerHeaderCodec.encode(message))
            #expect((try? fields.get()) == message)
            if let canonical { #expect(canonical == message) }
            let plain = [message.id, message.queue, message.jobType, message.key, message.reason].allSatisfy {
                !($0 ?? "").contains { $0 == "\"" || $0 == "\\" || ($0.asciiValue ?? 32) < 32 }
            }
            let whole =
                [message.attempt, message.maxAttempts].allSatisfy { abs($0 ?? 0) < 1_000_000_000_000_000 }
                && (message.timeoutSeconds.map { $0 == $0.rounded() && abs($0) < 1e15 } ?? true)
            #expect((canonical != nil) == (plain && whole), "\(message)")
        }
    }

    @Test("a worker's result is written as the message would be, byte for byte")
    func resultsWrittenDirectly() async {
        await propertyCheck(count: 1_000, input: Gen.uint64()) { seed in
            let message = Self.message(seed: seed, kind: .result)
            var direct: [UInt8] = []
            WorkerHeaderCodec.encodeResult(
                id: message.id ?? "", outcome: message.outcome ?? .success, reason: message.reason, to: &direct)
            #expect(direct == WorkerHeaderCodec.encode(message), "\(message)")
        }
    }

    @Test("a damaged header matched by its text reads as it does field by field")
    func damagedHeaders() async {
        await propertyCheck(count: 3_000, input: Gen.uint64()) { seed in
            var random = SplitMix64(seed: seed)
            var bytes = WorkerHeaderCodec.encode(Self.message(seed: random.next()))
            for _ in 0...Int.random(in: 0...2, using: &random) {
                let at = Int.random(in: 0...bytes.count, using: &random)
                let byte = Array(#"" \{}:,-0123456789.eE"#.utf8).randomElement(using: &random)!
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes.insert(byte, at: at)
                case 1 where at < bytes.count: bytes[at] = byte
                case 2 where at < bytes.count: bytes.removeSubrange(at...)
                default: break
                }
            }
            let (canonical, fields) = Self.decodeBoth(bytes)
            if let canonical {
                #expect((try? fields.get()) == canonical, "\(String(decoding: bytes, as: UTF8.self))")
            }
        }
    }

    @Test("results as the bundled libraries write them are matched by their text")
    func librariesResults() {
        for header in [
            #"{"kind":"result","id":"7","outcome":"success"}"#,
            #"{"kind":"result","id":"b","outcome":"rejected","reason":"no customer"}"#,
        ] {
            let (canonical, fields) = Self.decodeBoth(Array(header.utf8))
            #expect(canonical != nil, "\(header)")
            #expect(canonical == (try? fields.get()))
        }
    }
}

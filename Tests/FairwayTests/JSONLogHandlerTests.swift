import Fairway
import Foundation
import NIOConcurrencyHelpers
import PropertyBased
import Testing

/// Log text comes from outside (job reasons, payload errors, queue names): every line must stay one
/// valid JSON object whatever the text holds.
@Suite("JSON log lines")
struct JSONLogHandlerTests {
    /// A logger whose lines land in memory.
    static func capture() -> (Logger, NIOLockedValueBox<[String]>) {
        let lines = NIOLockedValueBox<[String]>([])
        var logger = Logger(label: "test") { label in
            JSONLogHandler(label: label) { line in lines.withLockedValue { $0.append(line) } }
        }
        logger.logLevel = .debug
        return (logger, lines)
    }

    @Test("one object a line: time, level, label, message, then each metadata field; clashes are renamed")
    func fields() throws {
        let (logger, lines) = Self.capture()
        logger.warning(
            "job will be retried",
            metadata: ["queue": "mail", "attempt": "2", "message": "clash", "tags": ["a", "b"], "more": ["k": "v"]])
        let line = try #require(lines.withLockedValue { $0 }.first)
        #expect(line.hasSuffix("}\n") && line.filter { $0 == "\n" }.count == 1)
        #expect(line.hasPrefix(#"{"time":""#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "warning" && object["label"] as? String == "test")
        #expect(object["message"] as? String == "job will be retried")
        #expect(object["metadata.message"] as? String == "clash")
        #expect(object["queue"] as? String == "mail" && object["attempt"] as? String == "2")
        #expect(object["tags"] as? [String] == ["a", "b"])
        #expect(object["more"] as? [String: String] == ["k": "v"])
        let time = try #require(object["time"] as? String)
        #expect(try Date(time, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) <= Date())
    }

    @Test("any text, control characters and quotes included, round-trips through one JSON line")
    func anyText() async {
        await propertyCheck(count: 500, input: Gen.uint64()) { seed in
            var random = SeededRandom(seed)
            let message = random.text()
            let value = random.text()
            let key = random.text()
            let (logger, lines) = Self.capture()
            logger.error("\(message)", metadata: [key.isEmpty ? "k" : key: .string(value)])
            let line = lines.withLockedValue { $0 }.first ?? ""
            #expect(line.dropLast().contains("\n") == false, "seed \(seed): a raw newline inside the line")
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["message"] as? String == message, "seed \(seed): \(line)")
            let field =
                ["time", "level", "label", "message"].contains(key) ? "metadata.\(key)" : (key.isEmpty ? "k" : key)
            #expect(object?[field] as? String == value, "seed \(seed): \(line)")
        }
    }
}

/// SplitMix64: reproducible text from a seed, weighted towards what breaks JSON.
struct SeededRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func text() -> String {
        let tricky: [Unicode.Scalar] = [
            "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1F}", "\u{7F}", "\u{2028}", "/", "é", "🙂",
        ]
        var scalars = String.UnicodeScalarView()
        for _ in 0..<Int(next() % 40) {
            switch next() % 3 {
            case 0: scalars.append(tricky[Int(next() % UInt64(tricky.count))])
            case 1: scalars.append(Unicode.Scalar(UInt8(next() % 128)))
            default: scalars.append(Unicode.Scalar(UInt32(next() % 0xD000)) ?? "?")
            }
        }
        return String(scalars)
    }
}

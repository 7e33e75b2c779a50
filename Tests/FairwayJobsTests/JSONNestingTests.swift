import FairwayJobs
import FairwayTestSupport
import Foundation
import PropertyBased
import Testing

@Suite("JSON nesting check")
struct JSONNestingTests {
    @Test("nesting up to the limit passes, one level more is refused, for arrays and objects alike")
    func boundary() {
        let limit = JSONNesting.limit
        #expect(!JSONNesting.isTooDeep(Array(String(repeating: "[", count: limit).utf8)))
        #expect(JSONNesting.isTooDeep(Array(String(repeating: "[", count: limit + 1).utf8)))
        let objects = String(repeating: "{\"a\":", count: limit + 1) + "1" + String(repeating: "}", count: limit + 1)
        #expect(JSONNesting.isTooDeep(Array(objects.utf8)))
    }

    @Test("brackets inside strings, escaped quotes included, do not count")
    func stringsAreSkipped() {
        let inString =
            "{\"text\": \"" + String(repeating: "[", count: 600) + "\\\"" + String(repeating: "{", count: 600)
            + "\"}"
        #expect(!JSONNesting.isTooDeep(Array(inString.utf8)))
        // A quote escaped by a backslash does not end the string; an escaped backslash does not escape the quote.
        let escapedBackslash = "[\"\\\\\"" + String(repeating: "[", count: 10) + "]"
        #expect(JSONNesting.isTooDeep(Array(escapedBackslash.utf8), limit: 5))
    }

    @Test("for any depth, the verdict is depth > limit; the decoder accepts whatever the check lets through")
    func propertyDepth() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...1_200), Gen.bool) { depth, objects in
            let open = objects ? "{\"k\":" : "["
            let close = objects ? "}" : "]"
            let text = String(repeating: open, count: depth) + "0" + String(repeating: close, count: depth)
            let bytes = Array(text.utf8)
            #expect(JSONNesting.isTooDeep(bytes) == (depth > JSONNesting.limit), "depth \(depth)")
            if !JSONNesting.isTooDeep(bytes) {
                // Depth 0 is the bare fragment `0`, which the registry's JSONDecoder accepts too.
                #expect(throws: Never.self) {
                    _ = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
                }
            }
        }
    }

    @Test("random bytes never trap the check or the decoder behind it")
    func fuzz() async {
        await propertyCheck(count: 2_000, input: Gen.uint64()) { seed in
            var random = SplitMix64(seed: seed)
            let alphabet = Array("[]{}\"\\:,0a ".utf8)
            let bytes: [UInt8] = (0..<random.below(1_500)).map { _ in
                random.below(4) == 0 ? UInt8(truncatingIfNeeded: random.next()) : random.pick(alphabet)
            }
            if !JSONNesting.isTooDeep(bytes) {
                _ = try? JSONDecoder().decode([String: Int].self, from: Data(bytes))
            }
        }
    }
}

import Foundation

extension WorkerHeaderCodec {
    /// Reads a header written in the one layout most headers come in, by matching its text; nil for any other
    /// layout, which the general reader then reads. The layout is the one ``encode(_:to:)`` writes, and the
    /// bundled libraries' results: a job's or a result's fields in that order, no spaces, strings without
    /// escapes, whole numbers. Every job a Swift worker reads and nearly every result the supervisor reads
    /// is in it, and matching it costs a third of reading a header field by field (callgrind, no-op jobs).
    /// What it returns is what the general reader returns for the same bytes.
    static func decodeCanonical(_ bytes: UnsafeBufferPointer<UInt8>) -> WorkerMessage? {
        var text = CanonicalText(bytes: bytes)
        if text.literal(#"{"kind":"job","id":""#) {
            return text.job()
        }
        if text.literal(#"{"kind":"result","id":""#) {
            return text.result()
        }
        return nil
    }

    /// A cursor that accepts only the expected text.
    private struct CanonicalText {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        /// The rest of a job's header, after its id's opening quote.
        mutating func job() -> WorkerMessage? {
            guard let id = string(), literal(#","queue":""#), let queue = string() else { return nil }
            var key: String?
            if literal(#","key":""#) {
                guard let text = string() else { return nil }
                key = text
            }
            guard literal(#","jobType":""#), let jobType = string(),
                literal(#","attempt":"#), let attempt = wholeNumber(),
                literal(#","maxAttempts":"#), let maxAttempts = wholeNumber(),
                literal(#","timeoutSeconds":"#), let timeoutSeconds = wholeNumber(),
                literal("}"), index == bytes.count
            else { return nil }
            return .job(
                id: id, queue: queue, jobType: jobType, attempt: attempt, maxAttempts: maxAttempts,
                timeoutSeconds: Double(timeoutSeconds), key: key)
        }

        /// The rest of a result's header, after its id's opening quote.
        mutating func result() -> WorkerMessage? {
            guard let id = string(), literal(#","outcome":""#), let name = plainText(),
                let outcome = WorkerMessage.Outcome.named(name)
            else { return nil }
            var reason: String?
            if literal(#","reason":""#) {
                guard let text = string() else { return nil }
                reason = text
            }
            guard literal("}"), index == bytes.count else { return nil }
            return .result(id: id, outcome: outcome, reason: reason)
        }

        /// True, and past it, when the text at the cursor is `expected`.
        mutating func literal(_ expected: StaticString) -> Bool {
            let count = expected.utf8CodeUnitCount
            guard bytes.count - index >= count,
                memcmp(bytes.baseAddress! + index, expected.utf8Start, count) == 0
            else { return false }
            index += count
            return true
        }

        /// A string's bytes up to its closing quote, which it moves past; nil at an escape, which only the
        /// general reader reads.
        mutating func plainText() -> UnsafeBufferPointer<UInt8>? {
            var end = index
            while end < bytes.count {
                switch bytes[end] {
                case UInt8(ascii: "\""):
                    let text = UnsafeBufferPointer(rebasing: bytes[index..<end])
                    index = end + 1
                    return text
                case UInt8(ascii: "\\"):
                    return nil
                default:
                    end += 1
                }
            }
            return nil
        }

        mutating func string() -> String? {
            plainText().map { String(decoding: $0, as: UTF8.self) }
        }

        /// Up to 15 digits, a sign allowed: what the general reader takes as a whole number without a
        /// detour through text. The text after it is the next literal's to check.
        mutating func wholeNumber() -> Int? {
            var cursor = index
            let negative = cursor < bytes.count && bytes[cursor] == UInt8(ascii: "-")
            if negative { cursor += 1 }
            var value = 0
            let first = cursor
            while cursor < bytes.count, cursor - first < 16,
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[cursor])
            {
                value = value * 10 + Int(bytes[cursor] &- UInt8(ascii: "0"))
                cursor += 1
            }
            guard cursor > first, cursor - first <= 15 else { return nil }
            index = cursor
            return negative ? -value : value
        }
    }
}

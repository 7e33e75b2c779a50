import Foundation

extension WorkerHeaderCodec {
    /// Reads a header written in the one layout most headers come in, by matching its text; nil for any other
    /// layout, which the general reader then reads. The layout is the one ``encode(_:to:)`` writes, and the
    /// bundled libraries' results: a job's or a result's fields in that order, no spaces, strings without
    /// escapes, whole numbers. Every job a Swift worker reads and nearly every result the supervisor reads
    /// is in it, and matching it costs a third of reading a header field by field (callgrind, no-op jobs).
    /// What it returns is what the general reader returns for the same bytes.
    static func decodeCanonical(_ bytes: UnsafeBufferPointer<UInt8>) -> WorkerMessage? {
        var reader = Reader(bytes: bytes)
        if reader.matches(#"{"kind":"job","id":"#) {
            return reader.canonicalJob()
        }
        if reader.matches(#"{"kind":"result","id":"#) {
            return reader.canonicalResult()
        }
        return nil
    }
}

extension WorkerHeaderCodec.Reader {
    /// The rest of a job's header in the canonical layout, from its id on; nil where the text differs.
    fileprivate mutating func canonicalJob() -> WorkerMessage? {
        guard let id = plainString(), matches(#","queue":"#), let queue = plainString() else { return nil }
        var key: String?
        if matches(#","key":"#) {
            guard let text = plainString() else { return nil }
            key = text
        }
        guard matches(#","jobType":"#), let jobType = plainString(),
            matches(#","attempt":"#), let attempt = wholeNumber(),
            matches(#","maxAttempts":"#), let maxAttempts = wholeNumber(),
            matches(#","timeoutSeconds":"#), let timeoutSeconds = wholeNumber(),
            matches("}"), index == bytes.count
        else { return nil }
        return .job(
            id: id, queue: queue, jobType: jobType, attempt: attempt, maxAttempts: maxAttempts,
            timeoutSeconds: Double(timeoutSeconds), key: key)
    }

    /// The rest of a result's header in the canonical layout, from its id on; nil where the text differs.
    fileprivate mutating func canonicalResult() -> WorkerMessage? {
        guard let id = plainString(), matches(#","outcome":"#), let name = plainText(),
            let outcome = WorkerMessage.Outcome.named(name)
        else { return nil }
        var reason: String?
        if matches(#","reason":"#) {
            guard let text = plainString() else { return nil }
            reason = text
        }
        guard matches("}"), index == bytes.count else { return nil }
        return .result(id: id, outcome: outcome, reason: reason)
    }

    /// A string with no escapes, made from its bytes in place; nil for anything else.
    private mutating func plainString() -> String? {
        plainText().map { String(decoding: $0, as: UTF8.self) }
    }
}

import Foundation

/// Writes and reads the JSON header of a worker message.
///
/// Headers are flat JSON objects of strings and numbers, four per job. `JSONEncoder` and `JSONDecoder`
/// spent more than half of all machine time on a no-op job in a worker process (perf), so this codec
/// handles exactly that shape: it writes the fields it knows, reads them in any order, skips fields it
/// does not know (nested values included, so later protocol versions can add them), and names the field
/// when a value has the wrong type.
enum WorkerHeaderCodec {
    // MARK: - Writing

    static func encode(_ message: WorkerMessage) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(192)
        encode(message, to: &out)
        return out
    }

    /// Appends the header of `message` to `out`.
    static func encode(_ message: WorkerMessage, to out: inout [UInt8]) {
        let stringBytes =
            (message.id?.utf8.count ?? 0) + (message.queue?.utf8.count ?? 0) + (message.key?.utf8.count ?? 0)
            + (message.jobType?.utf8.count ?? 0) + (message.reason?.utf8.count ?? 0)
        withUnsafeTemporaryAllocation(
            of: UInt8.self, capacity: WorkerHeaderWriter.bound(stringBytes: stringBytes)
        ) { buffer in
            var writer = WorkerHeaderWriter(buffer)
            write(message, to: &writer)
            out.append(contentsOf: writer.written)
        }
    }

    /// Appends a result's header, as ``encode(_:to:)`` writes `.result(id:outcome:reason:)`, without a
    /// message made for it: a worker writes one after every job.
    static func encodeResult(id: String, outcome: WorkerMessage.Outcome, reason: String?, to out: inout [UInt8]) {
        let stringBytes = id.utf8.count + (reason?.utf8.count ?? 0)
        withUnsafeTemporaryAllocation(
            of: UInt8.self, capacity: WorkerHeaderWriter.bound(stringBytes: stringBytes)
        ) { buffer in
            var writer = WorkerHeaderWriter(buffer)
            writer.write(Keys.kind)
            writer.write(quoted(WorkerMessage.Kind.result))
            writer.write(string: id, after: Keys.id)
            writer.write(Keys.outcome)
            writer.write(quoted(outcome))
            if let reason { writer.write(string: reason, after: Keys.reason) }
            writer.write(byte: UInt8(ascii: "}"))
            out.append(contentsOf: writer.written)
        }
    }

    private static func write(_ message: WorkerMessage, to writer: inout WorkerHeaderWriter) {
        writer.write(Keys.kind)
        writer.write(quoted(message.kind))
        if let value = message.protocol { writer.write(integer: value, after: Keys.protocol) }
        if let value = message.pid { writer.write(integer: Int(value), after: Keys.pid) }
        if let value = message.pipeline { writer.write(integer: value, after: Keys.pipeline) }
        if let value = message.id { writer.write(string: value, after: Keys.id) }
        if let value = message.queue { writer.write(string: value, after: Keys.queue) }
        if let value = message.key { writer.write(string: value, after: Keys.key) }
        if let value = message.jobType { writer.write(string: value, after: Keys.jobType) }
        if let value = message.attempt { writer.write(integer: value, after: Keys.attempt) }
        if let value = message.maxAttempts { writer.write(integer: value, after: Keys.maxAttempts) }
        if let value = message.timeoutSeconds, value.isFinite {
            // A whole number of seconds as an integer: shorter, and read without a detour through text.
            if abs(value) < 1e15 && value == value.rounded() {
                writer.write(integer: Int(value), after: Keys.timeoutSeconds)
            } else {
                writer.write(Keys.timeoutSeconds)
                writer.write(raw: String(value).utf8)
            }
        }
        if let value = message.outcome {
            writer.write(Keys.outcome)
            writer.write(quoted(value))
        }
        if let value = message.reason { writer.write(string: value, after: Keys.reason) }
        writer.write(byte: UInt8(ascii: "}"))
    }

    /// Each key as it is written, its quotes, colon and the comma before it included: static text copied
    /// whole, with no string or array made or retained for it (the header of every job and result is
    /// written with these).
    private enum Keys {
        static var kind: StaticString { #"{"kind":"# }
        static var `protocol`: StaticString { #","protocol":"# }
        static var pid: StaticString { #","pid":"# }
        static var pipeline: StaticString { #","pipeline":"# }
        static var id: StaticString { #","id":"# }
        static var queue: StaticString { #","queue":"# }
        static var key: StaticString { #","key":"# }
        static var jobType: StaticString { #","jobType":"# }
        static var attempt: StaticString { #","attempt":"# }
        static var maxAttempts: StaticString { #","maxAttempts":"# }
        static var timeoutSeconds: StaticString { #","timeoutSeconds":"# }
        static var outcome: StaticString { #","outcome":"# }
        static var reason: StaticString { #","reason":"# }
    }

    /// A kind as it is written, quotes included: static text, like the keys.
    private static func quoted(_ kind: WorkerMessage.Kind) -> StaticString {
        switch kind {
        case .hello: #""hello""#
        case .job: #""job""#
        case .result: #""result""#
        }
    }

    private static func quoted(_ outcome: WorkerMessage.Outcome) -> StaticString {
        switch outcome {
        case .success: #""success""#
        case .failure: #""failure""#
        case .rejected: #""rejected""#
        }
    }

}

extension WorkerHeaderCodec {
    // MARK: - Reading

    fileprivate enum Value {
        /// A string with no escapes, still in the header's bytes: made a `String` only when stored as one.
        case text(UnsafeBufferPointer<UInt8>)
        case string(String)
        case number(Double, isInteger: Bool)
        case null
        /// A boolean, object or array: no known field holds one.
        case other
    }

    /// The header fields this version knows; any other key is skipped.
    fileprivate enum Field: CaseIterable {
        case kind, `protocol`, pid, pipeline, id, queue, key, jobType, attempt, maxAttempts, timeoutSeconds
        case outcome, reason

        var name: String { spelling.description }

        /// The key as it is spelled in a header, as static text: compared with no string made.
        var spelling: StaticString {
            switch self {
            case .kind: "kind"
            case .protocol: "protocol"
            case .pid: "pid"
            case .pipeline: "pipeline"
            case .id: "id"
            case .queue: "queue"
            case .key: "key"
            case .jobType: "jobType"
            case .attempt: "attempt"
            case .maxAttempts: "maxAttempts"
            case .timeoutSeconds: "timeoutSeconds"
            case .outcome: "outcome"
            case .reason: "reason"
            }
        }

        /// The field a key names, or nil. Told apart by length and a byte or two, then checked whole: one
        /// comparison a key, since every header is read with this (seven keys a job).
        init?(_ bytes: UnsafeBufferPointer<UInt8>) {
            let candidate: Field
            switch bytes.count {
            case 2: candidate = .id
            case 3: candidate = bytes[0] == UInt8(ascii: "p") ? .pid : .key
            case 4: candidate = .kind
            case 5: candidate = .queue
            case 6: candidate = .reason
            case 7:
                switch bytes[0] {
                case UInt8(ascii: "j"): candidate = .jobType
                case UInt8(ascii: "a"): candidate = .attempt
                default: candidate = .outcome
                }
            case 8: candidate = bytes[1] == UInt8(ascii: "r") ? .protocol : .pipeline
            case 11: candidate = .maxAttempts
            case 14: candidate = .timeoutSeconds
            default: return nil
            }
            let spelling = candidate.spelling
            guard memcmp(spelling.utf8Start, bytes.baseAddress!, bytes.count) == 0 else { return nil }
            self = candidate
        }
    }

    static func decode(_ bytes: [UInt8]) throws(WorkerProtocolError) -> WorkerMessage {
        try bytes.withUnsafeBufferPointer { (pointer) throws(WorkerProtocolError) in try decode(pointer) }
    }

    /// Reads a header in place, from the bytes the channel read.
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) throws(WorkerProtocolError) -> WorkerMessage {
        if let message = decodeCanonical(bytes) { return message }
        return try decodeFields(bytes)
    }

    /// Reads a header field by field: any order, spacing, escapes and unknown fields.
    static func decodeFields(_ bytes: UnsafeBufferPointer<UInt8>) throws(WorkerProtocolError) -> WorkerMessage {
        var reader = Reader(bytes: bytes)
        var kind: WorkerMessage.Kind?
        var message = WorkerMessage(kind: .hello)
        reader.skipSpace()
        try reader.expect(UInt8(ascii: "{"))
        reader.skipSpace()
        if reader.peek() == UInt8(ascii: "}") {
            reader.index += 1
        } else {
            while true {
                reader.skipSpace()
                let field = try reader.field()
                reader.skipSpace()
                try reader.expect(UInt8(ascii: ":"))
                reader.skipSpace()
                let value = try reader.value()
                if let field {
                    try store(value, as: field, in: &message, kind: &kind)
                }
                reader.skipSpace()
                if reader.peek() == UInt8(ascii: ",") {
                    reader.index += 1
                    continue
                }
                try reader.expect(UInt8(ascii: "}"))
                break
            }
        }
        reader.skipSpace()
        guard reader.index == bytes.count else { throw .malformed("text after the header object") }
        guard let kind else { throw .malformed("header without a kind") }
        message.kind = kind
        return message
    }

    /// Sets the field a known key names, checking the value's type.
    private static func store(
        _ value: Value, as field: Field, in message: inout WorkerMessage, kind: inout WorkerMessage.Kind?
    ) throws(WorkerProtocolError) {
        switch field {
        case .kind:
            // Matched as bytes: every message has a kind, and most have an outcome.
            if case .text(let bytes) = value, let known = WorkerMessage.Kind.named(bytes) {
                kind = known
                break
            }
            let text = try string(value, field)
            guard let known = text.flatMap(WorkerMessage.Kind.init(rawValue:)) else {
                throw .malformed("unknown kind '\(text ?? "null")'")
            }
            kind = known
        case .protocol: message.protocol = try integer(value, field)
        case .pid: message.pid = try integer(value, field).map { Int32(truncatingIfNeeded: $0) }
        case .pipeline: message.pipeline = try integer(value, field)
        case .id: message.id = try string(value, field)
        case .queue: message.queue = try string(value, field)
        case .key: message.key = try string(value, field)
        case .jobType: message.jobType = try string(value, field)
        case .attempt: message.attempt = try integer(value, field)
        case .maxAttempts: message.maxAttempts = try integer(value, field)
        case .timeoutSeconds: message.timeoutSeconds = try number(value, field)
        case .outcome:
            if case .text(let bytes) = value, let known = WorkerMessage.Outcome.named(bytes) {
                message.outcome = known
                break
            }
            let text = try string(value, field)
            guard let text else { break }
            guard let outcome = WorkerMessage.Outcome(rawValue: text) else {
                throw .malformed("unknown outcome '\(text)'")
            }
            message.outcome = outcome
        case .reason: message.reason = try string(value, field)
        }
    }

    private static func string(_ value: Value, _ key: Field) throws(WorkerProtocolError) -> String? {
        switch value {
        case .text(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .string(let text): return text
        case .null: return nil
        default: throw .malformed("'\(key.name)' must be a string")
        }
    }

    private static func number(_ value: Value, _ key: Field) throws(WorkerProtocolError) -> Double? {
        switch value {
        case .number(let number, _): return number
        case .null: return nil
        default: throw .malformed("'\(key.name)' must be a number")
        }
    }

    private static func integer(_ value: Value, _ key: Field) throws(WorkerProtocolError) -> Int? {
        switch value {
        case .number(let number, true) where abs(number) < 9e15: return Int(number)
        case .null: return nil
        default: throw .malformed("'\(key.name)' must be a whole number")
        }
    }

    /// A cursor over the header's bytes, for the general reader and the matching one alike.
    struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        @inline(__always)
        func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

        @inline(__always)
        mutating func skipSpace() {
            while let byte = peek(), byte == 0x20 || byte == 0x0a || byte == 0x0d || byte == 0x09 {
                index += 1
            }
        }

        @inline(__always)
        mutating func expect(_ byte: UInt8) throws(WorkerProtocolError) {
            guard peek() == byte else {
                throw .malformed("expected '\(Character(Unicode.Scalar(byte)))' at byte \(index) of the header")
            }
            index += 1
        }

        fileprivate mutating func value() throws(WorkerProtocolError) -> Value {
            guard let first = peek() else { throw .malformed("the header ends before a value") }
            switch first {
            case UInt8(ascii: "\""):
                if let text = plainText() { return .text(text) }
                return .string(try string())
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                if let whole = wholeNumber() { return .number(Double(whole), isInteger: true) }
                let start = index
                var integral = true
                while let byte = peek(),
                    byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+")
                        || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E")
                        || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                {
                    if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                        integral = false
                    }
                    index += 1
                }
                let text = String(decoding: bytes[start..<index], as: UTF8.self)
                guard let number = Double(text) else { throw .malformed("'\(text)' is not a number") }
                return .number(number, isInteger: integral || number == number.rounded())
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            case UInt8(ascii: "t"):
                try literal("true")
                return .other
            case UInt8(ascii: "f"):
                try literal("false")
                return .other
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                try skipNested()
                return .other
            default:
                throw .malformed("unexpected byte at \(index) of the header")
            }
        }

        /// A number of up to 15 digits with no fraction or exponent, read without a detour through text;
        /// nil (and nothing consumed) for anything else, which the general path reads.
        @inline(__always)
        mutating func wholeNumber() -> Int? {
            guard index < bytes.count else { return nil }
            var cursor = index
            let negative = bytes[cursor] == UInt8(ascii: "-")
            if negative { cursor += 1 }
            var value = 0
            var digits = 0
            while cursor < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[cursor]) {
                value = value * 10 + Int(bytes[cursor] - UInt8(ascii: "0"))
                digits += 1
                cursor += 1
                if digits > 15 { return nil }
            }
            guard digits > 0 else { return nil }
            if cursor < bytes.count {
                let next = bytes[cursor]
                if next == UInt8(ascii: ".") || next == UInt8(ascii: "e") || next == UInt8(ascii: "E")
                    || next == UInt8(ascii: "+") || next == UInt8(ascii: "-")
                {
                    return nil
                }
            }
            index = cursor
            return negative ? -value : value
        }

        /// True, and past it, when the text at the cursor is `expected`; false, and nothing consumed, if not.
        @inline(__always)
        mutating func matches(_ expected: StaticString) -> Bool {
            let count = expected.utf8CodeUnitCount
            guard bytes.count - index >= count, memcmp(bytes.baseAddress! + index, expected.utf8Start, count) == 0
            else { return false }
            index += count
            return true
        }

        mutating func literal(_ word: StaticString) throws(WorkerProtocolError) {
            guard matches(word) else { throw .malformed("expected '\(word)' at byte \(index) of the header") }
        }

        /// Skips an object or array, strings inside included.
        mutating func skipNested() throws(WorkerProtocolError) {
            var depth = 0
            repeat {
                guard let byte = peek() else { throw .malformed("the header ends inside a nested value") }
                switch byte {
                case UInt8(ascii: "\""): _ = try string()
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                    index += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    index += 1
                default: index += 1
                }
            } while depth > 0
        }

        /// A key: the field it names, or nil for a key this version does not know.
        @inline(__always)
        fileprivate mutating func field() throws(WorkerProtocolError) -> Field? {
            if let name = plainText() { return Field(name) }
            // Escapes in a key: unusual, read the long way.
            let text = try string()
            return Field.allCases.first { $0.name == text }
        }

        /// The bytes of a string with no escapes, in place: most strings (keys, ids, queue names, job types)
        /// are read with no copy. Nil, and nothing consumed, for anything else, which ``string()`` reads.
        @inline(__always)
        mutating func plainText() -> UnsafeBufferPointer<UInt8>? {
            guard peek() == UInt8(ascii: "\"") else { return nil }
            let start = index + 1
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\") {
                end += 1
            }
            guard end < bytes.count, bytes[end] == UInt8(ascii: "\"") else { return nil }
            index = end + 1
            return UnsafeBufferPointer(rebasing: bytes[start..<end])
        }

        mutating func string() throws(WorkerProtocolError) -> String {
            if let text = plainText() { return String(decoding: text, as: UTF8.self) }
            try expect(UInt8(ascii: "\""))
            var text: [UInt8] = []
            while true {
                guard let byte = peek() else { throw .malformed("the header ends inside a string") }
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(decoding: text, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let escaped = peek() else { throw .malformed("the header ends inside a string") }
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(escaped)
                    case UInt8(ascii: "b"): text.append(0x08)
                    case UInt8(ascii: "f"): text.append(0x0c)
                    case UInt8(ascii: "n"): text.append(0x0a)
                    case UInt8(ascii: "r"): text.append(0x0d)
                    case UInt8(ascii: "t"): text.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            try literal("\\u")
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else {
                                throw .malformed("unpaired surrogate in a header string")
                            }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let unicode = Unicode.Scalar(scalar) else {
                            throw .malformed("invalid \\u escape in a header string")
                        }
                        text.append(contentsOf: String(Character(unicode)).utf8)
                    default:
                        throw .malformed("invalid escape in a header string")
                    }
                default:
                    text.append(byte)
                }
            }
        }

        mutating func hex4() throws(WorkerProtocolError) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let byte = peek() else { throw .malformed("the header ends inside a \\u escape") }
                index += 1
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw .malformed("invalid \\u escape in a header string")
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }
    }
}

extension CaseIterable where Self: RawRepresentable, RawValue == String {
    /// The case whose raw value is exactly these UTF-8 bytes, found with no string made for them.
    static func named(_ bytes: UnsafeBufferPointer<UInt8>) -> Self? {
        allCases.first { value in
            var name = value.rawValue
            return name.withUTF8 {
                $0.count == bytes.count && memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0
            }
        }
    }
}

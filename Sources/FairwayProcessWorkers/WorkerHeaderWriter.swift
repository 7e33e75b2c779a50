/// Writes a header's bytes into memory sized for it up front: one copy into the frame at the end, where
/// appending each key and value to the frame's array checked its capacity and uniqueness every time, some
/// fifteen times a job header (callgrind).
struct WorkerHeaderWriter {
    private let base: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    private(set) var count = 0

    /// The most bytes a header with `stringBytes` bytes of strings can take: the keys, quotes and numbers
    /// fit in 512, and an escaped string byte takes at most six (`\u001f`).
    static func bound(stringBytes: Int) -> Int { 512 + 6 * stringBytes }

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        base = buffer.baseAddress!
        capacity = buffer.count
    }

    var written: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    mutating func write(_ text: StaticString) {
        let length = text.utf8CodeUnitCount
        precondition(count + length <= capacity, "header bound exceeded")
        (base + count).update(from: text.utf8Start, count: length)
        count += length
    }

    mutating func write(byte: UInt8) {
        precondition(count < capacity, "header bound exceeded")
        base[count] = byte
        count += 1
    }

    /// Bytes as they are, such as a number's text.
    mutating func write<Bytes: Collection<UInt8>>(raw bytes: Bytes) {
        for byte in bytes { write(byte: byte) }
    }

    /// A JSON string: quoted, with quotes, backslashes and control bytes escaped.
    mutating func write(string value: String) {
        write(byte: UInt8(ascii: "\""))
        // Most strings (ids, queue names, job types) need no escape: copied whole, from their own storage.
        let copied = value.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            guard !bytes.contains(where: Self.needsEscape) else { return false }
            precondition(count + bytes.count <= capacity, "header bound exceeded")
            (base + count).update(from: bytes.baseAddress!, count: bytes.count)
            count += bytes.count
            return true
        }
        if copied != true {
            for byte in value.utf8 { write(escaped: byte) }
        }
        write(byte: UInt8(ascii: "\""))
    }

    private mutating func write(escaped byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): write(#"\""#)
        case UInt8(ascii: "\\"): write(#"\\"#)
        case UInt8(ascii: "\n"): write(#"\n"#)
        case UInt8(ascii: "\r"): write(#"\r"#)
        case UInt8(ascii: "\t"): write(#"\t"#)
        case 0..<0x20:
            let hex: StaticString = "0123456789abcdef"
            write(#"\u00"#)
            write(byte: hex.utf8Start[Int(byte >> 4)])
            write(byte: hex.utf8Start[Int(byte & 0xf)])
        default: write(byte: byte)
        }
    }

    /// A whole number's digits, written straight in.
    mutating func write(integer value: Int) {
        if value < 0 { write(byte: UInt8(ascii: "-")) }
        var rest = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for the 20 digits of any Int
        withUnsafeMutableBytes(of: &digits) { buffer in
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            write(raw: buffer[start...])
        }
    }

    /// A key (static text, its comma and colon included) and its string value.
    mutating func write(string value: String, after key: StaticString) {
        write(key)
        write(string: value)
    }

    mutating func write(integer value: Int, after key: StaticString) {
        write(key)
        write(integer: value)
    }

    static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }
}

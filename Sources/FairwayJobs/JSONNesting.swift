/// A check of how deeply a JSON text nests, made before it reaches `JSONDecoder`.
///
/// Foundation's decoder refuses nesting past 512 levels, but on Swift 6.3.1 it traps (taking the process
/// down) when the level that crosses the limit is the last byte of the input: 513 `[` and nothing else.
/// Payloads come from outside, so anything nested deeper than ``limit`` is refused here with an error
/// instead, and the decoder never sees it.
public enum JSONNesting {
    /// The deepest nesting of arrays and objects accepted.
    public static let limit = 500

    /// True when `bytes` nests arrays and objects deeper than `limit` (strings are skipped).
    public static func isTooDeep(_ bytes: some Sequence<UInt8>, limit: Int = limit) -> Bool {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > limit { return true }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return false
    }
}

/// Writes the Prometheus text exposition format (version 0.0.4) into a byte buffer: the per-queue families,
/// which are rendered straight from Fairway's own state at each scrape rather than registered one series at
/// a time (a registry that copies its label table on every registration makes 10,000 queues quadratic).
struct PrometheusText {
    private(set) var bytes: [UInt8] = []

    init(reservingCapacity capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    /// The `# HELP` and `# TYPE` lines that open a family.
    mutating func family(_ name: String, type: String, help: String) {
        append("# HELP ")
        append(name)
        append(" ")
        append(help)
        append("\n# TYPE ")
        append(name)
        append(" ")
        append(type)
        append("\n")
    }

    /// One sample: `name{labels} value`. `labels` is already escaped, without braces; empty for none.
    mutating func sample(_ name: String, labels: [UInt8], extra: String? = nil, value: Double) {
        append(name)
        if !labels.isEmpty || extra != nil {
            bytes.append(UInt8(ascii: "{"))
            bytes.append(contentsOf: labels)
            if let extra {
                if !labels.isEmpty { bytes.append(UInt8(ascii: ",")) }
                append(extra)
            }
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(UInt8(ascii: " "))
        append(Self.format(value))
        bytes.append(UInt8(ascii: "\n"))
    }

    /// `name="value"` with the value escaped as the format requires (backslash, double quote, newline).
    static func label(_ name: String, _ value: String) -> [UInt8] {
        var out = Array(name.utf8)
        out.append(contentsOf: "=\"".utf8)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: "\\n".utf8)
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
        return out
    }

    /// Integers without a fraction (most samples are counts), infinities as the format spells them.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    private mutating func append(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }
}

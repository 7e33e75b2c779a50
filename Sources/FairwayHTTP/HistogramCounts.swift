/// Cumulative bucket counts, sum and count of one histogram series, kept as plain numbers so that a
/// thousand of them cost a few kilobytes and are rendered without a registry.
struct HistogramCounts: Sendable {
    /// Upper bounds, ascending; `+Inf` is implied.
    let bounds: [Double]
    /// Observations at or below each bound (not cumulative; summed when rendered).
    private(set) var buckets: [UInt64]
    private(set) var sum: Double = 0
    private(set) var count: UInt64 = 0

    init(bounds: [Double]) {
        self.bounds = bounds
        buckets = Array(repeating: 0, count: bounds.count)
    }

    mutating func record(_ value: Double) {
        guard value.isFinite else { return }
        if let index = bounds.firstIndex(where: { value <= $0 }) { buckets[index] += 1 }
        sum += value
        count += 1
    }

    /// The `_bucket`, `_sum` and `_count` samples of this series.
    func render(_ name: String, labels: [UInt8], into text: inout PrometheusText) {
        var cumulative: UInt64 = 0
        for (bound, observed) in zip(bounds, buckets) {
            cumulative += observed
            text.sample(
                name + "_bucket", labels: labels, extra: "le=\"\(PrometheusText.format(bound))\"",
                value: Double(cumulative))
        }
        text.sample(name + "_bucket", labels: labels, extra: "le=\"+Inf\"", value: Double(count))
        text.sample(name + "_sum", labels: labels, value: sum)
        text.sample(name + "_count", labels: labels, value: Double(count))
    }
}

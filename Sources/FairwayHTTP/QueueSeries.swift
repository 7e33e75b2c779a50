import NIOConcurrencyHelpers

/// What one queue has recorded since the process started: runs by outcome and, in full detail, its own
/// run and wait histograms. Levels (ready, held, in flight) are not stored: they are read at each scrape.
final class QueueSeries: Sendable {
    struct Recorded: Sendable {
        /// Indexed by `FairwayMetrics.Outcome.index`.
        var outcomes: [UInt64]
        var run: HistogramCounts?
        var wait: HistogramCounts?
    }

    let name: String
    /// `queue="<name>"`, escaped once.
    let label: [UInt8]
    let recorded: NIOLockedValueBox<Recorded>

    init(name: String, histograms: Bool) {
        self.name = name
        label = PrometheusText.label("queue", name)
        recorded = NIOLockedValueBox(
            Recorded(
                outcomes: Array(repeating: 0, count: FairwayMetrics.Outcome.allCases.count),
                run: histograms ? HistogramCounts(bounds: FairwayMetrics.runBuckets) : nil,
                wait: histograms ? HistogramCounts(bounds: FairwayMetrics.waitBuckets) : nil
            )
        )
    }
}

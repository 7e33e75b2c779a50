import FairwayRuntime
import Foundation
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Asks every source for its queue depths once a second (less often when asking is slow) and keeps the
/// latest answer, so that a scrape never waits on a source (at 10,000 RabbitMQ queues one sample is
/// 10,000 round trips to the broker).
///
/// A ServiceLifecycle `Service`: sampling runs from `run()` until graceful shutdown. The sampling itself
/// is on a thread of its own, not a task: asking a broker blocks, and the cooperative pool that serves
/// HTTP has one thread per core.
public final class DepthSampler: Service, @unchecked Sendable {
    // Unchecked Sendable: `stopped` is guarded by `wake`; the latest sample is a locked box.
    private let engine: Engine
    private let sources: [any JobSource]
    /// Told of every sample (the scale advisor keeps its drain-rate history from them).
    private let observe: @Sendable (EngineSnapshot, [String: QueueDepth]) -> Void
    private let wake = MonotonicCondition()
    // Guarded by `wake`.
    private var stopped = false
    private let latest = NIOLockedValueBox<[String: QueueDepth]>([:])

    init(
        engine: Engine, sources: [any JobSource],
        observe: @escaping @Sendable (EngineSnapshot, [String: QueueDepth]) -> Void
    ) {
        self.engine = engine
        self.sources = sources
        self.observe = observe
    }

    /// The depths of the last sample; empty until the first.
    var depths: [String: QueueDepth] { latest.withLockedValue { $0 } }

    public func run() async throws {
        let thread = Thread { [self] in
            while !wake.withLock({ stopped }) {
                let clock = ContinuousClock()
                let started = clock.now
                observe(engine.snapshot(), sample())
                let pause = Self.pause(after: clock.now - started)
                wake.withLock {
                    if !stopped { wake.wait(for: pause) }
                }
            }
        }
        thread.name = "fairway-depth-sampler"
        thread.start()
        try? await gracefulShutdown()
        wake.withLock {
            stopped = true
            wake.broadcast()
        }
    }

    /// The wait before the next sample: a second, or nine times as long as the last sample took, so
    /// that sampling never takes more than a tenth of a core. Counting a deep backlog is not free (a
    /// SQLite file of 10 million ready jobs takes most of a second), and the core it would take is the
    /// drain's.
    static func pause(after sampling: Duration) -> Duration {
        max(.seconds(1), sampling * 9)
    }

    /// Asks every source for its depths now, and keeps the answer for ``depths``.
    private func sample() -> [String: QueueDepth] {
        var merged: [String: QueueDepth] = [:]
        for case let source as any QueueDepthReporting in sources {
            for (queue, depth) in source.queueDepths() {
                let previous = merged[queue]
                merged[queue] = QueueDepth(
                    ready: (previous?.ready ?? 0) + depth.ready,
                    oldestAgeSeconds: [previous?.oldestAgeSeconds, depth.oldestAgeSeconds].compactMap { $0 }.max()
                )
            }
        }
        latest.withLockedValue { $0 = merged }
        return merged
    }
}

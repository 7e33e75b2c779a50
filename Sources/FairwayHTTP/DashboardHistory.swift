import FairwayRuntime
import Foundation
import NIOConcurrencyHelpers

/// What the dashboard charts and its queue table's rates come from: the depth sampler's once-a-second
/// snapshots, kept for ten seconds per queue (rates, shares) and as one point every ten seconds for an hour
/// (360 points). In memory only; a restart starts an empty chart.
public final class DashboardHistory: Sendable {
    /// One chart point: the ten seconds before `time`.
    public struct Point: Codable, Sendable, Equatable {
        /// Seconds since 1970.
        public var time: Double
        public var completedPerSecond: Double
        public var failedPerSecond: Double
        /// The oldest ready job's age over every queue, in seconds.
        public var oldestAgeSeconds: Double
        public var busyWorkers: Int
        /// Share of worker time by queue weight (`"8"`, `"1"`, …): fractions, 0…1.
        public var shareByWeight: [String: Double]
        /// What each weight's backlogged queues were entitled to over the same ten seconds.
        public var idealByWeight: [String: Double]
    }

    /// A queue's last ten seconds.
    public struct QueueRates: Sendable, Equatable {
        public var completedPerSecond = 0.0
        public var failedPerSecond = 0.0
        /// Its share of the worker time spent in the window, and the share its weight entitles it to among
        /// the queues that had work.
        public var share = 0.0
        public var ideal = 0.0
    }

    private struct Sample {
        var time: UInt64
        var wall: Double
        /// Per queue, in snapshot order: jobs completed, of which failed (failed, timed out, crashed,
        /// rejected), worker-seconds.
        var completed: [Int]
        var failed: [Int]
        var busy: [Double]
        var weights: [Double]
        /// Has work and may be served (not paused).
        var backlogged: [Bool]
        var names: [String]
        var oldestAge: Double
        var busyWorkers: Int
    }

    private struct State {
        var recent: [Sample] = []
        var points: [Point] = []
        var rates: [String: QueueRates] = [:]
        var lastPointWall = 0.0
    }

    static let window = 10
    static let capacity = 360
    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Takes one sample (the sampler calls this once a second).
    public func observe(_ snapshot: EngineSnapshot, depths: [String: QueueDepth]) {
        let queues = snapshot.queues
        let sample = Sample(
            time: MonotonicClock.now, wall: Date().timeIntervalSince1970,
            completed: queues.map(\.completed), failed: queues.map { $0.completed - $0.succeeded },
            busy: queues.map(\.busySeconds), weights: queues.map(\.settings.weight),
            backlogged: queues.map {
                !$0.settings.paused && ($0.held + $0.inFlight > 0 || (depths[$0.name]?.ready ?? 0) > 0)
            },
            names: queues.map(\.name), oldestAge: depths.values.compactMap(\.oldestAgeSeconds).max() ?? 0,
            busyWorkers: snapshot.busyWorkers)
        state.withLockedValue { state in
            state.recent.append(sample)
            if state.recent.count > Self.window + 1 { state.recent.removeFirst(state.recent.count - Self.window - 1) }
            guard let first = state.recent.first, first.time < sample.time, first.names == sample.names else {
                if state.recent.first?.names != sample.names { state.recent = [sample] }
                return
            }
            let seconds = Double(sample.time - first.time) / 1e9
            var rates: [String: QueueRates] = [:]
            rates.reserveCapacity(sample.names.count)
            let busyDelta = sample.busy.indices.map { max(0, sample.busy[$0] - first.busy[$0]) }
            let totalBusy = busyDelta.reduce(0, +)
            let entitled = sample.backlogged.indices.map { sample.backlogged[$0] || busyDelta[$0] > 0 }
            let totalWeight = sample.weights.indices.reduce(0.0) { $0 + (entitled[$1] ? sample.weights[$1] : 0) }
            var shareByWeight: [String: Double] = [:]
            var idealByWeight: [String: Double] = [:]
            var completed = 0
            var failed = 0
            for index in sample.names.indices {
                let done = sample.completed[index] - first.completed[index]
                let bad = sample.failed[index] - first.failed[index]
                completed += done
                failed += bad
                let share = totalBusy > 0 ? busyDelta[index] / totalBusy : 0
                let ideal = entitled[index] && totalWeight > 0 ? sample.weights[index] / totalWeight : 0
                rates[sample.names[index]] = QueueRates(
                    completedPerSecond: Double(done) / seconds, failedPerSecond: Double(bad) / seconds,
                    share: share, ideal: ideal)
                let weight = Self.label(sample.weights[index])
                shareByWeight[weight, default: 0] += share
                idealByWeight[weight, default: 0] += ideal
            }
            state.rates = rates
            if sample.wall - state.lastPointWall >= Double(Self.window) - 0.5 {
                state.lastPointWall = sample.wall
                state.points.append(
                    Point(
                        time: sample.wall, completedPerSecond: Double(completed) / seconds,
                        failedPerSecond: Double(failed) / seconds, oldestAgeSeconds: sample.oldestAge,
                        busyWorkers: sample.busyWorkers, shareByWeight: Self.top(shareByWeight),
                        idealByWeight: Self.top(idealByWeight)))
                if state.points.count > Self.capacity { state.points.removeFirst(state.points.count - Self.capacity) }
            }
        }
    }

    /// The last ten seconds of each queue; empty before two samples.
    public var rates: [String: QueueRates] { state.withLockedValue { $0.rates } }

    /// The last hour, oldest first.
    public var points: [Point] { state.withLockedValue { $0.points } }

    static func label(_ weight: Double) -> String {
        weight == weight.rounded() && abs(weight) < 1e15 ? String(Int(weight)) : String(weight)
    }

    /// At most eight weights per point (the heaviest), so that a point stays small whatever the weights.
    static func top(_ values: [String: Double]) -> [String: Double] {
        guard values.count > 8 else { return values }
        let kept = values.keys.sorted { (Double($0) ?? 0) > (Double($1) ?? 0) }.prefix(8)
        return Dictionary(uniqueKeysWithValues: kept.map { ($0, values[$0]!) })
    }
}

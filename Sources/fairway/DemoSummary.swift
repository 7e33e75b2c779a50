import Foundation

/// The result of a demo run: throughput, each tier's share of service against its ideal, and Jain's
/// fairness index over weight-normalised service.
struct DemoSummary: Codable, Equatable {
    struct Tier: Codable, Equatable {
        var weight: Double
        var queues: Int
        /// Jobs completed by the tier's queues.
        var completed: Int
        /// Service the tier received (worker-seconds in time mode, jobs in count mode).
        var service: Double
        /// The tier's fraction of all service, 0...1.
        var share: Double
        /// The fraction its weights entitle it to, 0...1.
        var ideal: Double
    }

    /// One queue of a tier: its own share beside the share its weight entitles it to.
    struct QueueShare: Codable, Equatable {
        var name: String
        var weight: Double
        /// The queue's typical job length, in milliseconds: in time mode a queue of longer jobs completes
        /// fewer at the same share.
        var typicalMilliseconds: Double
        var completed: Int
        var share: Double
        var ideal: Double
    }

    var seconds: Double
    var workers: Int
    var cost: String
    var completed: Int
    /// Jobs completed per second.
    var throughput: Double
    /// Jain's index over service/weight of every queue: 1 is perfectly weight-fair.
    var jain: Double
    /// The largest |share - ideal| over the tiers, in percentage points.
    var maxDeviationPoints: Double
    var tiers: [Tier]
    /// The first queue of each tier, for a look at single queues.
    var examples: [QueueShare]

    /// Service and weight of every queue, with the tier it belongs to.
    struct QueueService {
        var name: String
        var typicalMilliseconds: Double = 1
        var tier: Int
        var weight: Double
        var completed: Int
        var service: Double
    }

    init(seconds: Double, workers: Int, cost: String, tierWeights: [Double], queues: [QueueService]) {
        self.seconds = seconds
        self.workers = workers
        self.cost = cost
        completed = queues.reduce(0) { $0 + $1.completed }
        throughput = seconds > 0 ? Double(completed) / seconds : 0
        jain = Self.jainIndex(queues.map { $0.service / $0.weight })
        let totalService = queues.reduce(0) { $0 + $1.service }
        let totalWeight = queues.reduce(0) { $0 + $1.weight }
        tiers = tierWeights.indices.map { tier in
            let members = queues.filter { $0.tier == tier }
            let service = members.reduce(0) { $0 + $1.service }
            return Tier(
                weight: tierWeights[tier],
                queues: members.count,
                completed: members.reduce(0) { $0 + $1.completed },
                service: service,
                share: totalService > 0 ? service / totalService : 0,
                ideal: totalWeight > 0 ? members.reduce(0) { $0 + $1.weight } / totalWeight : 0
            )
        }
        maxDeviationPoints = tiers.map { abs($0.share - $0.ideal) * 100 }.max() ?? 0
        examples = tierWeights.indices.compactMap { tier in
            queues.first { $0.tier == tier }.map { queue in
                QueueShare(
                    name: queue.name, weight: queue.weight, typicalMilliseconds: queue.typicalMilliseconds,
                    completed: queue.completed,
                    share: totalService > 0 ? queue.service / totalService : 0,
                    ideal: totalWeight > 0 ? queue.weight / totalWeight : 0)
            }
        }
    }

    /// What the shares are shares of, in one line.
    static func meaning(cost: String) -> String {
        cost == "time"
            ? "time mode: shares are of worker-seconds, not jobs (--cost count shares jobs)"
            : "count mode: shares are of jobs, whatever their length (--cost time shares worker-seconds)"
    }

    /// (Σx)² / (n·Σx²); 1 when every x is equal, 1/n when one takes everything.
    static func jainIndex(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 1 }
        let sum = values.reduce(0, +)
        let squares = values.reduce(0) { $0 + $1 * $1 }
        guard squares > 0 else { return 1 }
        return sum * sum / (Double(values.count) * squares)
    }

    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }

    func text() -> String {
        var lines: [String] = []
        lines.append(
            String(
                format: "fairway demo: %d jobs in %.1f s on %d workers (%@ mode): %.0f jobs/s",
                completed, seconds, workers, cost, throughput
            )
        )
        lines.append("  " + Self.meaning(cost: cost))
        lines.append("  tier  queues  completed   share   ideal   off by")
        for tier in tiers {
            lines.append(
                String(
                    format: "  w=%-3@ %6d %10d  %5.1f%%  %5.1f%%  %+5.2f pp",
                    DemoSummary.format(tier.weight), tier.queues, tier.completed, tier.share * 100, tier.ideal * 100,
                    (tier.share - tier.ideal) * 100
                )
            )
        }
        lines.append("  one queue of each tier:")
        lines.append("  queue   weight  job ms  completed   share   ideal")
        for queue in examples {
            lines.append(
                "  " + queue.name.padding(toLength: 8, withPad: " ", startingAt: 0)
                    + String(
                        format: "%6.0f  %6.2f %10d  %5.2f%%  %5.2f%%", queue.weight, queue.typicalMilliseconds,
                        queue.completed, queue.share * 100, queue.ideal * 100))
        }
        lines.append(String(format: "  Jain's fairness index over weight-normalised service: %.4f", jain))
        return lines.joined(separator: "\n")
    }

    static func format(_ weight: Double) -> String {
        weight == weight.rounded() ? "\(Int(weight))" : "\(weight)"
    }
}

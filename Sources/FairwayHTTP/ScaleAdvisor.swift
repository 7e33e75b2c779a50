import FairwayRuntime
import Foundation
import NIOConcurrencyHelpers

/// The autoscaler signal of `GET /scale`: what a KEDA metrics-api scaler or an HPA adapter reads.
public struct ScaleSignal: Codable, Sendable, Equatable {
    /// Jobs waiting: ready at the sources plus held here, not started.
    public var backlog: Int
    /// Jobs arriving per second (completions plus the backlog's growth), smoothed.
    public var arrivalRate: Double
    /// Jobs ending per second, smoothed.
    public var completionRate: Double
    public var busyWorkers: Int
    public var workers: Int
    /// Mean run time of recent jobs, in seconds.
    public var meanRunSeconds: Double
    /// Workers this process's queues call for; never fewer than are busy.
    public var desiredWorkers: Int
    /// Processes of this size the load calls for; at least 1 while any job runs here.
    public var desiredReplicas: Int
    public var draining: Bool
    /// How long the oldest job waiting to start (at a source or held here) has waited, in seconds: the
    /// queue time users feel, which depth does not tell (10 jobs of 1 s and 10,000 of 1 ms both take 10 s).
    public var oldestAgeSeconds: Double
    /// The largest queue time over its queue's target (`latencyTarget`, else `targetLatency`): above 1,
    /// jobs of that queue wait longer than wanted.
    public var queueTimeRatio: Double
    /// The queue with that largest ratio; nil when nothing waits.
    public var slowestQueue: String?
    /// How long the backlog takes to work off at the current pace, in seconds (0 without a backlog).
    public var drainSeconds: Double

    enum CodingKeys: String, CodingKey {
        case backlog
        case arrivalRate = "arrival_rate"
        case completionRate = "completion_rate"
        case busyWorkers = "busy_workers"
        case workers
        case meanRunSeconds = "mean_run_seconds"
        case desiredWorkers = "desired_workers"
        case desiredReplicas = "desired_replicas"
        case draining
        case oldestAgeSeconds = "oldest_age_seconds"
        case queueTimeRatio = "queue_time_ratio"
        case slowestQueue = "slowest_queue"
        case drainSeconds = "drain_seconds"
    }
}

/// Turns samples of the engine into the autoscaler signal.
///
/// desired_workers = max(busy, ⌈arrival_rate × mean_run / utilisation⌉ + ⌈backlog × mean_run / target_latency⌉,
/// ⌈busy × oldest_age / target_latency⌉ when that ratio is above 1): enough workers to keep up with arrivals
/// at the target utilisation (Little's law), plus enough to work the current backlog off within the target
/// latency, and more while the oldest waiting job has waited longer than the target; never more than
/// `maxWorkers` when set, never fewer than are busy.
public final class ScaleAdvisor: @unchecked Sendable {
    // Unchecked Sendable: every stored var is guarded by `lock`.
    public struct Settings: Sendable, Equatable {
        /// How soon a backlog should be worked off.
        public var targetLatency: Duration = .seconds(30)
        /// The share of worker time to aim for when keeping up with arrivals.
        public var targetUtilisation: Double = 0.8
        /// Queue-time targets of single queues (`latencyTarget:`), by name; the others use `targetLatency`.
        public var latencyTargets: [String: Duration] = [:]
        /// The most workers, across every replica, that can be of use, or nil: when jobs share a limited
        /// resource (a database that accepts 85 connections), workers beyond it only wait for it, so
        /// `desired_workers` (and with it `desired_replicas`) stops there, however long the backlog.
        public var maxWorkers: Int?

        public init() {}
    }

    private let settings: Settings
    private let lock = NIOLock()
    private var last: (time: Double, completed: Int, backlog: Int, busySeconds: Double)?
    private var arrivalRate = 0.0
    private var completionRate = 0.0
    private var meanRun = 0.0
    private var samples = 0

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// Takes a sample and returns the signal.
    public func observe(
        _ snapshot: EngineSnapshot, depths: [String: QueueDepth], now: Double = Double(MonotonicClock.now) / 1e9,
        wallNow: UInt64 = WallClock.now
    )
        -> ScaleSignal
    {
        // A queue held off because its worker process cannot start asks for no capacity: more processes of
        // the same deploy could not start it either, and scaling out on its backlog would only multiply the
        // failing starts. Nor does a paused one: its jobs wait on purpose, and a replica started for them from
        // the file would run what the operator paused through the admin API.
        let served = snapshot.queues.filter { $0.heldOffSeconds == nil && !$0.settings.paused }
        let ready = served.reduce(0) { $0 + (depths[$1.name]?.ready ?? 0) }
        // Queue time: the oldest waiting job's age, and the queue furthest over its own target.
        var oldestAge = 0.0
        var ratio = 0.0
        var slowest: String?
        for queue in served {
            let age = queue.oldestWaitingSeconds(sourceAge: depths[queue.name]?.oldestAgeSeconds, wallNow: wallNow)
            oldestAge = max(oldestAge, age)
            let target = max(0.001, (settings.latencyTargets[queue.name] ?? settings.targetLatency).seconds)
            if age > 0 && age / target > ratio {
                ratio = age / target
                slowest = queue.name
            }
        }
        let backlog = ready + served.reduce(0) { $0 + $1.held }
        let completed = snapshot.queues.reduce(0) { $0 + $1.completed }
        let busySeconds = snapshot.queues.reduce(0) { $0 + $1.busySeconds }
        return lock.withLock {
            if let last, now - last.time >= 0.2 {
                let elapsed = now - last.time
                let done = Double(completed - last.completed)
                let completions = done / elapsed
                let arrivals = max(0, completions + Double(backlog - last.backlog) / elapsed)
                samples += 1
                // The first measured interval sets the rates; later ones move them gradually.
                let alpha = samples == 1 ? 1 : min(1, elapsed / 5)
                if arrivals == 0 && completions == 0 && backlog == 0 {
                    // Nothing came, nothing ended, nothing waits: the load is gone, not fading.
                    completionRate = 0
                    arrivalRate = 0
                } else {
                    completionRate += alpha * (completions - completionRate)
                    arrivalRate += alpha * (arrivals - arrivalRate)
                }
                if done > 0 {
                    let recent = (busySeconds - last.busySeconds) / done
                    meanRun = meanRun == 0 ? recent : meanRun + alpha * (recent - meanRun)
                }
                self.last = (now, completed, backlog, busySeconds)
            } else if last == nil {
                self.last = (now, completed, backlog, busySeconds)
                if completed > 0 { meanRun = busySeconds / Double(completed) }
            }
            let run = meanRun > 0 ? meanRun : 0.01
            let needed = arrivalRate * run / settings.targetUtilisation
            // A trickle well under one worker's time does not keep a worker (or a replica) alive.
            let keepUp = needed < 0.1 ? 0 : needed.rounded(.up)
            let workOff = (Double(backlog) * run / max(0.001, settings.targetLatency.seconds)).rounded(.up)
            // Queue time above the target: as many more workers as it is over (the oldest job waited 3× the
            // target: three times the workers now busy), whatever the rates say.
            let overdue = ratio > 1 ? (Double(max(1, snapshot.busyWorkers)) * ratio).rounded(.up) : 0
            let wanted = Int(min(1e9, max(keepUp + workOff, overdue)))
            let desiredWorkers = max(snapshot.busyWorkers, min(settings.maxWorkers ?? .max, wanted))
            let drainSeconds =
                backlog == 0
                ? 0
                : completionRate > 0
                    ? Double(backlog) / completionRate : Double(backlog) * run / Double(max(1, snapshot.workers))
            var replicas = Int((Double(desiredWorkers) / Double(max(1, snapshot.workers))).rounded(.up))
            if snapshot.busyWorkers > 0 { replicas = max(1, replicas) }
            return ScaleSignal(
                backlog: backlog, arrivalRate: arrivalRate, completionRate: completionRate,
                busyWorkers: snapshot.busyWorkers, workers: snapshot.workers, meanRunSeconds: run,
                desiredWorkers: desiredWorkers, desiredReplicas: replicas, draining: snapshot.draining,
                oldestAgeSeconds: oldestAge, queueTimeRatio: ratio, slowestQueue: slowest, drainSeconds: drainSeconds
            )
        }
    }
}

import FairwayAMQP
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Yams

/// The fields a queue entry (or the defaults) may set; nil where the entry is silent.
struct QueueFields {
    var weight: Double?
    var maxConcurrency: Int?
    var rate: Double?
    var burst: Double?
    var timeout: Duration?
    var attempts: Int?
    var backoff: Duration?
    var maxBackoff: Duration?
    var jitter: Double?
    var paused: Bool?
    var prefetch: Int?
    var isolation: IsolationMode?
    var command: [String]?
    var recycleAfterJobs: Int?
    var recycleAboveMemoryMB: Int?
    var memoryLimitMB: Int?
    var pipeline: Int?
    var killGrace: Duration?
    var maxBacklog: Int?
    var backlogRetryAfter: Duration?
    var latencyTarget: Duration?
    var globalConcurrency: Int?
    var group: String?
    var keys: KeyFairness?

    static let keys = [
        "weight", "maxConcurrency", "rate", "burst", "timeout", "attempts", "backoff", "maxBackoff", "jitter",
        "paused", "prefetch", "isolation", "command", "recycleAfterJobs", "recycleAboveMemoryMB", "killGrace",
        "memoryLimitMB", "pipeline", "maxBacklog", "backlogRetryAfter", "latencyTarget",
        "globalConcurrency", "group", "keys",
    ]

    enum IsolationMode: String, CaseIterable {
        case thread, process
    }

    /// Fields set here replace those of `base`.
    func over(_ base: QueueFields) -> QueueFields {
        QueueFields(
            weight: weight ?? base.weight,
            maxConcurrency: maxConcurrency ?? base.maxConcurrency,
            rate: rate ?? base.rate,
            burst: burst ?? base.burst,
            timeout: timeout ?? base.timeout,
            attempts: attempts ?? base.attempts,
            backoff: backoff ?? base.backoff,
            maxBackoff: maxBackoff ?? base.maxBackoff,
            jitter: jitter ?? base.jitter,
            paused: paused ?? base.paused,
            prefetch: prefetch ?? base.prefetch,
            isolation: isolation ?? base.isolation,
            command: command ?? base.command,
            recycleAfterJobs: recycleAfterJobs ?? base.recycleAfterJobs,
            recycleAboveMemoryMB: recycleAboveMemoryMB ?? base.recycleAboveMemoryMB,
            memoryLimitMB: memoryLimitMB ?? base.memoryLimitMB,
            pipeline: pipeline ?? base.pipeline,
            killGrace: killGrace ?? base.killGrace,
            maxBacklog: maxBacklog ?? base.maxBacklog,
            backlogRetryAfter: backlogRetryAfter ?? base.backlogRetryAfter,
            latencyTarget: latencyTarget ?? base.latencyTarget,
            globalConcurrency: globalConcurrency ?? base.globalConcurrency,
            group: group ?? base.group,
            keys: keys ?? base.keys
        )
    }
}

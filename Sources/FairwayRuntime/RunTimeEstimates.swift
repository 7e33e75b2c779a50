/// How long one queue's jobs recently ran, by job type: what decides whether a job may be sent to a worker
/// process behind the ones it runs (`Engine+Pipelines.swift`). By job type, because one queue often mixes
/// millisecond jobs with a long one now and then: estimated by the queue's average, the long one looked
/// short and up to a pipeline's worth of short jobs were sent behind it, to wait for it while other threads
/// went idle.
struct RunTimeEstimates: Sendable {
    /// The most job types a queue keeps an estimate for. Job types come from producers, so they are not
    /// trusted to be few: past this many, a new type shares one estimate with every other such type.
    static let maxJobTypes = 64

    private var byJobType: [String: Double] = [:]
    /// The job types past ``maxJobTypes``, together.
    private var others = Double.infinity

    /// The estimate in seconds; infinite for a job type not seen to end yet, which is neither sent behind
    /// another job nor has one sent behind it until one has ended.
    subscript(jobType: String) -> Double {
        byJobType[jobType] ?? (byJobType.count < Self.maxJobTypes ? .infinity : others)
    }

    /// Counts a run of `seconds`: an estimate moves a fifth of the way to each run, so that a job type that
    /// slows down is seen to within a few runs.
    mutating func note(_ seconds: Double, jobType: String) {
        if byJobType.count >= Self.maxJobTypes && byJobType[jobType] == nil {
            Self.move(&others, toward: seconds)
            return
        }
        Self.move(&byJobType[jobType, default: .infinity], toward: seconds)
    }

    private static func move(_ estimate: inout Double, toward seconds: Double) {
        if estimate.isInfinite {
            estimate = seconds
        } else {
            estimate += 0.2 * (seconds - estimate)
        }
    }
}

/// How a queue treats failed jobs: how many attempts in all, and how long to wait between them.
///
/// The wait after attempt `n` is `initialBackoff * 2^(n-1)`, capped at `maxBackoff`, then spread by
/// ±`jitter` (a fraction) so that jobs that failed together do not all come back together.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first run included. 1 means never retry.
    public var maxAttempts: Int
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    /// Spread of each backoff, from 0 (none) to 1 (anywhere between zero and twice the nominal wait).
    public var jitter: Double

    public init(
        maxAttempts: Int = 5,
        initialBackoff: Duration = .seconds(1),
        maxBackoff: Duration = .seconds(600),
        jitter: Double = 0.25
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.jitter = min(1, max(0, jitter))
    }

    /// The wait before the attempt after `attempt`; `random` is uniform in 0..<1.
    public func backoff(afterAttempt attempt: Int, random: Double) -> Duration {
        let initial = initialBackoff.seconds
        let nominal = min(maxBackoff.seconds, initial * pow2(max(0, attempt - 1)))
        let spread = 1 + jitter * (2 * random - 1)
        return .nanoseconds(Int64((nominal * spread * 1e9).rounded()))
    }

    /// What becomes of a job that ended with `outcome` on attempt `attempt`.
    public func settlement(for outcome: JobOutcome, attempt: Int, random: Double) -> Settlement {
        switch outcome {
        case .succeeded:
            return .ack
        case .rejected(let reason):
            return .deadLetter(reason: reason)
        case .failed(let reason), .crashed(let reason):
            return retryOrDeadLetter(reason: reason, attempt: attempt, random: random)
        case .timedOut(let limit):
            return retryOrDeadLetter(
                reason: "timed out after \(limit.compactDescription)", attempt: attempt, random: random)
        }
    }

    private func retryOrDeadLetter(reason: String, attempt: Int, random: Double) -> Settlement {
        if attempt < maxAttempts {
            return .retry(after: backoff(afterAttempt: attempt, random: random), reason: reason)
        }
        return .deadLetter(reason: Self.gaveUp(reason, after: maxAttempts))
    }

    /// The reason of a job dead-lettered after `attempts` runs: one wording for every source and outcome.
    public static func gaveUp(_ reason: String, after attempts: Int) -> String {
        "\(reason) (gave up after \(attempts == 1 ? "1 attempt" : "\(attempts) attempts"))"
    }

    private func pow2(_ exponent: Int) -> Double {
        exponent >= 1023 ? .infinity : Double(sign: .plus, exponent: exponent, significand: 1)
    }
}

/// How one run of a job ended.
public enum JobOutcome: Sendable, Hashable {
    case succeeded
    /// The handler threw; retried while attempts remain.
    case failed(reason: String)
    /// The job ran past its queue's timeout; retried while attempts remain.
    case timedOut(after: Duration)
    /// The worker process running the job died (a trap, a signal, an OOM kill); retried while attempts remain.
    case crashed(reason: String)
    /// The job can never succeed (unknown type, undecodable payload, a permanent error): dead-lettered at once.
    case rejected(reason: String)

    /// A label for metrics and summaries.
    public var label: String {
        switch self {
        case .succeeded: return "success"
        case .failed: return "failure"
        case .timedOut: return "timeout"
        case .crashed: return "crash"
        case .rejected: return "rejected"
        }
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    public var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }

    /// A short form for messages: "250ms", "30s", "1.5s".
    public var compactDescription: String {
        let s = seconds
        if s < 1 {
            let ms = s * 1000
            return ms == ms.rounded() ? "\(Int(ms))ms" : "\(ms)ms"
        }
        return s == s.rounded() ? "\(Int(s))s" : "\(s)s"
    }
}

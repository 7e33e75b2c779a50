/// A token bucket over a caller-supplied monotonic clock in nanoseconds.
struct TokenBucket: Sendable {
    private(set) var limit: RateLimit
    private(set) var tokens: Double
    private var refilledAt: UInt64

    init(limit: RateLimit, now: UInt64) {
        self.limit = limit
        self.tokens = limit.burst
        self.refilledAt = now
    }

    mutating func change(to limit: RateLimit, now: UInt64) {
        refill(now: now)
        self.limit = limit
        tokens = min(tokens, limit.burst)
    }

    mutating func refill(now: UInt64) {
        guard now > refilledAt else { return }
        let elapsed = Double(now - refilledAt) / 1e9
        tokens = min(limit.burst, tokens + elapsed * limit.perSecond)
        refilledAt = now
    }

    /// Refills, then reports whether a whole token is available.
    mutating func hasToken(now: UInt64) -> Bool {
        refill(now: now)
        return tokens >= 1
    }

    mutating func take() {
        tokens -= 1
    }

    /// The earliest instant at which a whole token will be available.
    func nextTokenTime() -> UInt64 {
        if tokens >= 1 { return refilledAt }
        let missing = 1 - tokens
        let wait = (missing / limit.perSecond * 1e9).rounded(.up)
        return refilledAt &+ UInt64(max(1, wait))
    }
}

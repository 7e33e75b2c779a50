/// A lock and one condition variable whose timed waits run on the monotonic clock: the one primitive for
/// a thread that sleeps until something happens (a settlement, a wake-up, a deadline). A wall-clock
/// deadline (`NSCondition.wait(until: Date)`) fires early or late when the system clock is stepped; this
/// one does not. Built on the engine's ``Monitor`` (pthread), which ThreadSanitizer understands.
public final class MonotonicCondition: @unchecked Sendable {
    // Unchecked Sendable: its only state is the pthread mutex and condition it wraps, which are made to be shared.
    // Unchecked: all state is the pthread mutex and condition, which are thread-safe by definition.
    private let monitor = Monitor()
    private let condition: Monitor.Condition

    public init() {
        condition = Monitor.Condition(monitor)
    }

    public func lock() { monitor.lock() }
    public func unlock() { monitor.unlock() }

    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        try monitor.withLock(body)
    }

    /// Waits until signalled. The lock must be held.
    public func wait() { condition.wait() }

    /// Waits until signalled or until `deadline` (``MonotonicClock`` nanoseconds). The lock must be held.
    public func wait(untilMonotonic deadline: UInt64) { condition.wait(until: deadline) }

    /// Waits until signalled or until `duration` has passed. The lock must be held.
    public func wait(for duration: Duration) {
        condition.wait(until: MonotonicClock.after(seconds: duration.seconds))
    }

    public func signal() { condition.signal() }
    public func broadcast() { condition.broadcast() }
}

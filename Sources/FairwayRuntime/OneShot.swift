/// A value handed once from one thread to another that blocks until it arrives: the end of a thread, the
/// commit of an enqueue, the outcome of an async handler awaited by a worker thread. Waits on the
/// monotonic clock's condition (``MonotonicCondition``), like every other wait in Fairway.
public final class OneShot<Value: Sendable>: @unchecked Sendable {
    // Unchecked Sendable: `value` is only touched while `condition`'s mutex is held.
    private let condition = MonotonicCondition()
    private var value: Value?

    public init() {}

    /// Hands the value over and wakes the waiter. Only the first value counts.
    public func fulfil(_ value: Value) {
        condition.withLock {
            guard self.value == nil else { return }
            self.value = value
            condition.broadcast()
        }
    }

    /// Blocks until the value has been handed over, and returns it.
    public func wait() -> Value {
        condition.withLock {
            while value == nil {
                condition.wait()
            }
            return value!
        }
    }
}

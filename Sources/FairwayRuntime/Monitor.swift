#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A mutex with condition variables that wait against the monotonic clock: the only blocking primitive the
/// worker pool uses. Workers sleep here until there is work, never in a polling loop.
final class Monitor: @unchecked Sendable {
    // Unchecked Sendable: it wraps a pthread mutex, made to be shared between threads.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        #if os(Linux)
            // Adaptive: a thread that finds the lock taken spins briefly before it sleeps. The monitor is
            // held for microseconds at a time, and a sleeper costs a futex wait and a wake-up, which with
            // more threads than cores (worker threads and the worker processes they feed) was most of the
            // lock's cost (docs/benchmarks.md).
            pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        #endif
        precondition(pthread_mutex_init(mutex, &attributes) == 0)
        pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// A condition variable bound to this monitor's mutex.
    final class Condition: @unchecked Sendable {
        // Unchecked Sendable: it wraps a pthread mutex, made to be shared between threads.
        private let cond: UnsafeMutablePointer<pthread_cond_t>
        private let monitor: Monitor

        init(_ monitor: Monitor) {
            self.monitor = monitor
            cond = .allocate(capacity: 1)
            cond.initialize(to: pthread_cond_t())
            var attributes = pthread_condattr_t()
            pthread_condattr_init(&attributes)
            #if os(Linux)
                pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
            #endif
            precondition(pthread_cond_init(cond, &attributes) == 0)
            pthread_condattr_destroy(&attributes)
        }

        deinit {
            pthread_cond_destroy(cond)
            cond.deallocate()
        }

        /// Waits until signalled. The monitor must be locked.
        func wait() { pthread_cond_wait(cond, monitor.mutex) }

        /// Waits until signalled or until `deadline` (monotonic nanoseconds). The monitor must be locked.
        func wait(until deadline: UInt64) {
            #if os(Linux)
                var time = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
                pthread_cond_timedwait(cond, monitor.mutex, &time)
            #else
                let now = MonotonicClock.now
                guard deadline > now else { return }
                let delta = deadline - now
                var time = timespec(tv_sec: Int(delta / 1_000_000_000), tv_nsec: Int(delta % 1_000_000_000))
                pthread_cond_timedwait_relative_np(cond, monitor.mutex, &time)
            #endif
        }

        func signal() { pthread_cond_signal(cond) }
        func broadcast() { pthread_cond_broadcast(cond) }
    }
}

/// Monotonic time in nanoseconds, the clock of the scheduler, deadlines and run-time measurements.
public enum MonotonicClock {
    public static var now: UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// The instant `seconds` from now; a negative wait is now, and waits are capped at about 30 years.
    public static func after(seconds: Double) -> UInt64 {
        now &+ UInt64(min(max(0, seconds), 1e9) * 1e9)
    }
}

/// Wall-clock time in nanoseconds since 1970, for enqueue timestamps that other processes can read.
public enum WallClock {
    public static var now: UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// The instant `seconds` from now; a negative wait is now, and waits are capped at about 30 years.
    public static func after(seconds: Double) -> UInt64 {
        now &+ UInt64(min(max(0, seconds), 1e9) * 1e9)
    }
}

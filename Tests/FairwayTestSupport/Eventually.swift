import Foundation

/// Waits until `condition` holds or `timeout` seconds pass, looking every 2 ms; returns whether it held.
/// The timeout only bounds a failing test, so it is generous. Blocks the calling thread: for
/// synchronous tests (an async test uses ``eventuallyAsync(timeout:_:)``).
public func eventually(timeout: Double = 30, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.002)
    }
    return try condition()
}

/// ``eventually(timeout:_:)`` for async tests: suspends between looks instead of blocking a thread of
/// the cooperative pool.
public func eventuallyAsync(timeout: Double = 30, _ condition: () throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: .seconds(timeout))
    while clock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return try condition()
}

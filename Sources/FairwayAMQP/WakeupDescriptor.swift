import CRabbitMQ

#if canImport(Glibc)
    import Glibc
#endif

/// An eventfd that other threads write to wake the I/O thread, which polls it together with the socket.
final class WakeupDescriptor: @unchecked Sendable {
    // Unchecked Sendable: its only state is an eventfd, written and read through thread-safe system calls.
    private let descriptor: Int32

    init() {
        descriptor = fw_eventfd()
        precondition(descriptor >= 0, "eventfd failed")
    }

    deinit { close(descriptor) }

    /// Wakes the waiting thread; cheap, and coalesces while it is not waiting.
    func signal() {
        var one: UInt64 = 1
        _ = write(descriptor, &one, 8)
    }

    /// Waits until signalled, `socket` is readable, or `timeout` seconds pass; then clears the signal.
    func poll(with socket: Int32, timeout: Double) {
        var descriptors = [
            pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
        ]
        _ = Glibc.poll(&descriptors, socket >= 0 ? 2 : 1, Int32(timeout * 1000))
        drain()
    }

    /// Waits until signalled or `timeout` seconds pass.
    func wait(timeout: Double) {
        poll(with: -1, timeout: timeout)
    }

    private func drain() {
        var value: UInt64 = 0
        _ = read(descriptor, &value, 8)
    }
}

import Foundation
import NIOConcurrencyHelpers

/// A worker's standard error, read line by line on a thread of its own and handed on with the worker's
/// pid and the queue of the job it is running, so that a traceback in Fairway's log says whose it is.
///
/// Untrusted output: a line longer than ``maxLineBytes`` is cut there (the rest follows as further
/// lines), bytes that are not UTF-8 are replaced, and the relay ends at end of file (the worker and any
/// child holding the pipe are gone).
final class WorkerStderrRelay: Sendable {
    /// One line of a worker's stderr: its pid, the queue of the job it ran then (nil between jobs), the text.
    typealias Sink = @Sendable (_ pid: pid_t, _ queue: String?, _ line: String) -> Void

    static let maxLineBytes = 16 * 1024

    /// The queue of the job the worker is running; nil when idle.
    let runningQueue = NIOLockedValueBox<String?>(nil)

    /// Starts reading `descriptor` (which the relay then owns and closes) for the worker `pid`.
    init(descriptor: Int32, pid: pid_t, sink: @escaping Sink) {
        let runningQueue = runningQueue
        let thread = Thread {
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            func emit(_ bytes: ArraySlice<UInt8>) {
                var text = String(decoding: bytes, as: UTF8.self)
                if text.hasSuffix("\r") { text.removeLast() }
                sink(pid, runningQueue.withLockedValue { $0 }, text)
            }
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                pending.append(contentsOf: buffer[0..<count])
                var start = pending.startIndex
                while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    emit(pending[start..<newline])
                    start = newline + 1
                }
                pending.removeSubrange(..<start)
                while pending.count >= Self.maxLineBytes {
                    emit(pending[..<Self.maxLineBytes])
                    pending.removeSubrange(..<Self.maxLineBytes)
                }
            }
            if !pending.isEmpty { emit(pending[...]) }
            close(descriptor)
        }
        thread.name = "fairway-worker-stderr"
        thread.start()
    }
}

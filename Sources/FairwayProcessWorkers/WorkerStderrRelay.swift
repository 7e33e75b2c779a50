import Foundation
import NIOConcurrencyHelpers

/// A worker's standard error, read line by line and handed on with the worker's pid and the queue of the
/// job that wrote it, so that a traceback in Fairway's log says whose it is.
///
/// A thread of its own reads the pipe as lines come. When the worker has answered every job it was sent,
/// the supervisor first takes whatever is already in the pipe through ``running(queue:)``: a job writes
/// its lines before its result, so they are all there by the time its result is read, and none is named
/// by the next job's queue or none, however late the relay's thread would have woken. That is exact for a
/// worker given one job at a time. A worker sent jobs ahead (pipelining, only for jobs expected to end
/// within a few milliseconds) may already run the next one when a result is read, and the two pipes do
/// not say which line came before which result: there a line may be named by a neighbouring job's queue
/// when the jobs in the pipeline are of several queues (the pid is always exact).
///
/// Untrusted output: a line longer than ``maxLineBytes`` is cut there (the rest follows as further
/// lines), bytes that are not UTF-8 are replaced, blank lines are dropped, and the relay ends at end of
/// file (the worker and any child holding the pipe are gone).
final class WorkerStderrRelay: Sendable {
    /// One line of a worker's stderr: its pid, the queue of the job it ran then (nil between jobs), the text.
    typealias Sink = @Sendable (_ pid: pid_t, _ queue: String?, _ line: String) -> Void

    static let maxLineBytes = 16 * 1024

    private struct State {
        /// The queue of the job the worker is running; nil when idle.
        var queue: String?
        /// The start of a line not yet ended.
        var pending: [UInt8] = []
        /// The pipe reached its end; the relay's thread closes it, and nothing reads it again.
        var ended = false
    }
    private let state = NIOLockedValueBox(State())
    private let descriptor: Int32
    private let pid: pid_t
    private let sink: Sink

    /// Starts reading `descriptor` (which the relay then owns and closes) for the worker `pid`.
    init(descriptor: Int32, pid: pid_t, sink: @escaping Sink) {
        self.descriptor = descriptor
        self.pid = pid
        self.sink = sink
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        let thread = Thread { [self] in
            var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            while true {
                if poll(&ready, 1, -1) < 0 && errno == EINTR { continue }
                if state.withLockedValue({ drainLocked(&$0) }) { break }
            }
            close(descriptor)
        }
        thread.name = "fairway-worker-stderr"
        thread.start()
    }

    /// Attributes the lines that follow to `queue`; nil, when the worker has answered every job it was
    /// sent, first hands on every line it wrote until then (an unended last one too) under the queue of
    /// its last job. Between jobs sent ahead the pipe is left to the relay's thread: reading it there would
    /// cost a system call a job and could take the next job's first line for the last one's.
    func running(queue: String?) {
        state.withLockedValue { state in
            if queue == nil, !state.ended {
                _ = drainLocked(&state)
                if !state.pending.isEmpty {
                    emit(state.pending[...], queue: state.queue)
                    state.pending.removeAll()
                }
            }
            state.queue = queue
        }
    }

    /// Reads what the pipe holds and hands on its whole lines; true at the pipe's end (after handing on the
    /// rest).
    private func drainLocked(_ state: inout State) -> Bool {
        guard !state.ended else { return true }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
            guard count > 0 else {
                if !state.pending.isEmpty { emit(state.pending[...], queue: state.queue) }
                state.pending.removeAll()
                state.ended = true
                return true
            }
            state.pending.append(contentsOf: buffer[0..<count])
            var start = state.pending.startIndex
            while let newline = state.pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                emit(state.pending[start..<newline], queue: state.queue)
                start = newline + 1
            }
            state.pending.removeSubrange(..<start)
            while state.pending.count >= Self.maxLineBytes {
                emit(state.pending[..<Self.maxLineBytes], queue: state.queue)
                state.pending.removeSubrange(..<Self.maxLineBytes)
            }
        }
    }

    /// Hands on a line, unless it is blank: a record with no text (PHP writes one before and after each of
    /// its fatal errors) says nothing in a log read line by line.
    private func emit(_ bytes: ArraySlice<UInt8>, queue: String?) {
        guard bytes.contains(where: { !Self.blanks.contains($0) }) else { return }
        var text = String(decoding: bytes, as: UTF8.self)
        if text.hasSuffix("\r") { text.removeLast() }
        sink(pid, queue, text)
    }

    /// Space, tab, carriage return, vertical tab and form feed: what a blank line holds.
    private static let blanks: Set<UInt8> = [0x20, 0x09, 0x0D, 0x0B, 0x0C]
}

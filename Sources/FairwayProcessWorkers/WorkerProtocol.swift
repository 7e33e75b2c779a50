import Foundation

/// The header of one message between a supervisor and a worker process. See docs/worker-protocol.md.
///
/// On the wire a message is a 4-byte big-endian header length, the header as a UTF-8 JSON object, a 4-byte
/// big-endian body length, and the body: the job's payload for `job`, empty otherwise.
public struct WorkerMessage: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// Worker → supervisor, once at start: the worker is ready for jobs.
        case hello
        /// Supervisor → worker: run this job; the body is its payload.
        case job
        /// Worker → supervisor: how the job ended.
        case result
    }

    /// How a job ended, as a worker reports it.
    public enum Outcome: String, Codable, Sendable, CaseIterable {
        /// Done: the job is acknowledged.
        case success
        /// A transient failure: retried with backoff while attempts remain.
        case failure
        /// The job can never succeed (unknown type, bad payload): dead-lettered at once.
        case rejected
    }

    public var kind: Kind
    /// `hello`: the protocol version the worker speaks (1).
    public var `protocol`: Int?
    /// `hello`: the worker's process id.
    public var pid: Int32?
    /// `hello`: how many jobs the worker accepts before it answers the first (pipelining); absent means 1.
    /// It runs them one at a time, in the order sent, and answers each as it ends.
    public var pipeline: Int?
    /// `job` and `result`: the job's id at its source, echoed in the result.
    public var id: String?
    public var queue: String?
    /// `job`: the job's fairness key (its tenant), when it has one.
    public var key: String?
    public var jobType: String?
    public var attempt: Int?
    public var maxAttempts: Int?
    /// `job`: how long the job may run before the supervisor counts it as timed out.
    public var timeoutSeconds: Double?
    public var outcome: Outcome?
    /// `result` with failure or rejected: why, in words, kept with the job's retry or dead letter.
    public var reason: String?

    public init(kind: Kind) {
        self.kind = kind
    }

    /// A `job` message: what a worker needs to run one job (its payload travels as the body).
    public static func job(
        id: String, queue: String, jobType: String, attempt: Int, maxAttempts: Int, timeoutSeconds: Double,
        key: String? = nil
    ) -> WorkerMessage {
        var job = WorkerMessage(kind: .job)
        job.id = id
        job.queue = queue
        job.key = key
        job.jobType = jobType
        job.attempt = attempt
        job.maxAttempts = maxAttempts
        job.timeoutSeconds = timeoutSeconds
        return job
    }

    /// The protocol version this build speaks.
    public static let protocolVersion = 1

    public static func hello(pid: Int32, pipeline: Int? = nil) -> WorkerMessage {
        var message = WorkerMessage(kind: .hello)
        message.protocol = protocolVersion
        message.pid = pid
        message.pipeline = pipeline
        return message
    }

    public static func result(id: String, outcome: Outcome, reason: String? = nil) -> WorkerMessage {
        var message = WorkerMessage(kind: .result)
        message.id = id
        message.outcome = outcome
        message.reason = reason
        return message
    }
}

/// A protocol violation or a closed pipe, in words for the job's last error.
public enum WorkerProtocolError: Error, CustomStringConvertible, Equatable {
    /// The other side closed its end (it exited, or the supervisor asked it to stop).
    case closed
    case io(String)
    case malformed(String)

    public var description: String {
        switch self {
        case .closed: return "the pipe was closed"
        case .io(let detail): return "pipe error: \(detail)"
        case .malformed(let detail): return "protocol error: \(detail)"
        }
    }
}

/// Reads and writes framed worker messages on a pair of file descriptors. Not thread-safe: one reader and
/// one writer at a time, which is how supervisors and workers use it.
public final class WorkerChannel: @unchecked Sendable {
    // Unchecked Sendable: one reader and one writer at a time (above): the supervisor hands the channel from thread to thread with the job, never shares it.
    // For the same reason its state is marked `@exclusivity(unchecked)`: the runtime's check of each access
    // cost some 700 instructions a message (callgrind), with no overlapping access possible to find.
    /// The largest header accepted; anything bigger is a protocol error, not an allocation.
    public static let maxHeaderBytes = 1 << 20
    /// The ``yieldsBeforeSleeping`` of Fairway's own ends of the pipes, the supervisor's and the Swift
    /// worker's: with no-op jobs in 8 workers on 2 cores, 2 to 64 yields on both sides were 10 % faster
    /// than none, and yielding on one side only was slower.
    public static let standardYields = 4
    /// The largest body (payload) accepted.
    public static let maxBodyBytes = 256 << 20

    /// How many times a read looks at the pipe, yielding the processor in between, before it sleeps in the
    /// kernel until the other side writes. On a busy machine the other side usually writes within a few
    /// yields, and a thread that never slept needs no wake-up: waking a sleeping reader was the largest
    /// single cost of a short job in a worker process (docs/benchmarks.md). 0: sleep at once.
    @exclusivity(unchecked) public var yieldsBeforeSleeping = 0
    public let input: Int32
    public let output: Int32
    /// A descriptor that becomes readable once the other side has ended (its process's pidfd), or -1. With
    /// one, a wait for input ends when the other side does, even while another process still holds the
    /// other end of the pipe (a program a worker's handler started in the background inherits it, unless
    /// the worker kept it close-on-exec): the end of the pipe alone came only when that program ended.
    @exclusivity(unchecked) public var peerEnded: Int32 = -1
    @exclusivity(unchecked) private var buffer: [UInt8] = []
    @exclusivity(unchecked) private var start = 0
    @exclusivity(unchecked) private var chunk = [UInt8](repeating: 0, count: 64 << 10)
    /// When the message being read must be complete, if ever.
    @exclusivity(unchecked) private var deadline: ContinuousClock.Instant?
    /// Queued frames the pipe has not taken yet, from `pendingStart` on.
    @exclusivity(unchecked) private var pendingOutput: [UInt8] = []
    @exclusivity(unchecked) private var pendingStart = 0

    public init(input: Int32, output: Int32) {
        self.input = input
        self.output = output
        buffer.reserveCapacity(64 << 10)
    }

    /// Writes one message: header and body in a single write where they fit. Waits until the pipe took it.
    public func send(_ message: WorkerMessage, body: [UInt8] = []) throws(WorkerProtocolError) {
        // Behind what is queued, so that messages keep their order.
        Self.appendFrame(message, body: body, to: &pendingOutput)
        try writePending()
    }

    /// Writes one result, as ``send(_:body:)`` writes `.result(id:outcome:reason:)`, with no message made for
    /// it: what a worker sends after every job. Waits until the pipe took it.
    public func sendResult(
        id: String, outcome: WorkerMessage.Outcome, reason: String? = nil
    ) throws(WorkerProtocolError) {
        Self.appendFrame(body: [], to: &pendingOutput) {
            WorkerHeaderCodec.encodeResult(id: id, outcome: outcome, reason: reason, to: &$0)
        }
        try writePending()
    }

    /// Writes everything queued, waiting until the pipe took it.
    private func writePending() throws(WorkerProtocolError) {
        defer {
            pendingOutput.removeAll(keepingCapacity: true)
            pendingStart = 0
        }
        try writeAll(pendingOutput, from: pendingStart)
    }

    /// Queues one message and writes what the pipe takes now without waiting; the rest is written while
    /// the channel next waits to read. So a supervisor sending jobs ahead never blocks on a full pipe
    /// while its worker blocks on a full pipe of results: the deadlock of two pipes both full. Needs
    /// ``makeOutputNonBlocking()``.
    public func enqueue(_ message: WorkerMessage, body: [UInt8] = []) {
        Self.appendFrame(message, body: body, to: &pendingOutput)
        flushPending()
    }

    /// Writes what the pipe takes now of the messages queued with ``hold(_:body:)``, without waiting; the
    /// rest is written while the channel next waits to read. Needs ``makeOutputNonBlocking()``.
    public func flushWithoutWaiting() {
        flushPending()
    }

    /// Queues one message without writing it: it goes out with the next flush, or before the channel waits
    /// to read. A supervisor queues the jobs it sends ahead together, so that one write carries them all.
    public func hold(_ message: WorkerMessage, body: [UInt8] = []) {
        Self.appendFrame(message, body: body, to: &pendingOutput)
    }

    /// Makes reads of `input` return at once when the pipe is empty: a read that finds input then costs one
    /// system call, not a poll and a read, and the channel waits with `poll` only when there is none.
    public func makeInputNonBlocking() {
        _ = fcntl(input, F_SETFL, fcntl(input, F_GETFL) | O_NONBLOCK)
        inputNonBlocking = true
    }
    @exclusivity(unchecked) private var inputNonBlocking = false

    /// Makes writes to `output` return instead of waiting when the pipe is full, as ``enqueue(_:body:)``
    /// needs; ``send(_:body:)`` still waits.
    public func makeOutputNonBlocking() {
        _ = fcntl(output, F_SETFL, fcntl(output, F_GETFL) | O_NONBLOCK)
    }

    /// One message as it travels: lengths, header, body.
    static func frame(_ message: WorkerMessage, body: [UInt8]) -> [UInt8] {
        var frame: [UInt8] = []
        appendFrame(message, body: body, to: &frame)
        return frame
    }

    /// Appends one message as it travels, encoded in place: no copy of its own.
    static func appendFrame(_ message: WorkerMessage, body: [UInt8], to frame: inout [UInt8]) {
        appendFrame(body: body, to: &frame) { WorkerHeaderCodec.encode(message, to: &$0) }
    }

    /// Appends one message whose header `header` appends.
    private static func appendFrame(
        body: [UInt8], to frame: inout [UInt8], header: (inout [UInt8]) -> Void
    ) {
        let lengthAt = frame.count
        appendLength(0, to: &frame)
        header(&frame)
        let headerLength = UInt32(truncatingIfNeeded: frame.count - lengthAt - 4)
        for shift in 0..<4 {
            frame[lengthAt + shift] = UInt8(truncatingIfNeeded: headerLength >> (24 - 8 * shift))
        }
        appendLength(body.count, to: &frame)
        frame.append(contentsOf: body)
    }

    /// What a frame length too large to be one says when its four bytes are text, as they are when a program
    /// writes to the stdout that carries the protocol: the usual cause, named, with the text.
    static func textHint(_ length: Int) -> String {
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: length >> (24 - 8 * $0)) }
        guard bytes.allSatisfy({ (0x20...0x7e).contains($0) || $0 == 0x0a || $0 == 0x09 }) else { return "" }
        let text = String(decoding: bytes, as: UTF8.self).debugDescription
        return " (its four bytes read \(text): text written to stdout, which carries only frames; log to stderr)"
    }

    /// Reads the next message; throws `.closed` at a clean end of input between messages. With a
    /// `deadline`, a message not complete by then is a protocol error (a worker that stalls mid-frame).
    public func receive(before deadline: ContinuousClock.Instant? = nil) throws(WorkerProtocolError) -> (
        WorkerMessage, [UInt8]
    ) {
        self.deadline = deadline
        defer { self.deadline = nil }
        let headerLength = try readLength(allowEnd: true)
        guard headerLength <= Self.maxHeaderBytes else {
            throw .malformed(
                "header of \(headerLength) bytes exceeds \(Self.maxHeaderBytes)\(Self.textHint(headerLength))")
        }
        try waitAvailable(headerLength)
        // Decoded where it was read, with no copy of its own.
        let message: WorkerMessage
        do {
            message = try buffer.withUnsafeBufferPointer { (bytes) throws(WorkerProtocolError) in
                try WorkerHeaderCodec.decode(UnsafeBufferPointer(rebasing: bytes[start..<start + headerLength]))
            }
        } catch {
            let text = String(decoding: buffer[start..<start + min(headerLength, 200)], as: UTF8.self)
            throw .malformed("header is not a worker message (\(error)): \(text)")
        }
        consume(headerLength)
        let bodyLength = try readLength(allowEnd: false)
        guard bodyLength <= Self.maxBodyBytes else {
            throw .malformed("body of \(bodyLength) bytes exceeds \(Self.maxBodyBytes)")
        }
        return (message, try readBytes(bodyLength))
    }

    /// True when a whole message has been read already and waits in the buffer: ``receive(before:)``
    /// returns it without a system call.
    public var hasBufferedMessage: Bool {
        buffer.withUnsafeBufferPointer { bytes in
            guard bytes.count - start >= 4 else { return false }
            let header = Self.length(in: bytes, at: start)
            let bodyAt = start + 4 + header
            guard bytes.count - bodyAt >= 4 else { return false }
            return bytes.count - (bodyAt + 4) >= Self.length(in: bytes, at: bodyAt)
        }
    }

    // MARK: - Bytes

    private static func appendLength(_ length: Int, to frame: inout [UInt8]) {
        // Its four bytes in one append: four appends each checked capacity and uniqueness, twice a message.
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: length).bigEndian) { frame.append(contentsOf: $0) }
    }

    private func readLength(allowEnd: Bool) throws(WorkerProtocolError) -> Int {
        if allowEnd, available == 0 {
            guard try fill() else { throw .closed }
        }
        // Read where it lies: a length is two of every message's reads, and an array of four bytes for
        // each was an allocation a job on each side of the pipe.
        try waitAvailable(4)
        let length = buffer.withUnsafeBufferPointer { Self.length(in: $0, at: start) }
        consume(4)
        return length
    }

    /// The big-endian length of four bytes at `offset`, which the caller checked are there.
    private static func length(in bytes: UnsafeBufferPointer<UInt8>, at offset: Int) -> Int {
        Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
    }

    private var available: Int { buffer.count - start }

    private func readBytes(_ count: Int) throws(WorkerProtocolError) -> [UInt8] {
        try waitAvailable(count)
        let bytes = Array(buffer[start..<start + count])
        consume(count)
        return bytes
    }

    /// Reads until `count` bytes are in the buffer.
    private func waitAvailable(_ count: Int) throws(WorkerProtocolError) {
        while available < count {
            guard try fill() else {
                throw available == 0 && count > 0 ? .closed : .malformed("input ended inside a message")
            }
        }
    }

    private func consume(_ count: Int) {
        start += count
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
    }

    /// Reads what is there into the buffer; false at end of input.
    private func fill() throws(WorkerProtocolError) -> Bool {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        // Turns given to the other side so far in this wait; each ends in a read, which takes the input
        // the moment it is there (a look with `poll` first would cost a second system call a message).
        var yields = 0
        while true {
            if pendingOutput.count > pendingStart {
                try writePendingUntilReadable()
            } else if let deadline {
                try waitReadable(until: deadline)
            } else if !inputNonBlocking, yieldsBeforeSleeping > 0 {
                var descriptor = pollfd(fd: input, events: Int16(POLLIN), revents: 0)
                if poll(&descriptor, 1, 0) == 0 { _ = yieldUntilReadable() }
            }
            let count = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count > 0 {
                buffer.append(contentsOf: chunk[0..<count])
                return true
            }
            if count == 0 { return false }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                // Nothing there yet: a few turns for the other side to write, then sleep until it does (with
                // output queued or a deadline, the top of the loop waits, as it must, for those too).
                if pendingOutput.count == pendingStart, deadline == nil {
                    if yields < yieldsBeforeSleeping {
                        yields += 1
                        sched_yield()
                    } else if !waitReadable() {
                        // The other side ended and left nothing more: what it wrote before it ended was read.
                        return false
                    }
                }
                continue
            }
            throw .io(String(cString: strerror(errno)))
        }
    }

    /// Sleeps until input is readable (or ends); false when the other side ended with nothing left to read.
    private func waitReadable() -> Bool {
        // On the stack: a supervisor waits here between most results. A negative descriptor is left out by poll.
        withUnsafeTemporaryAllocation(of: pollfd.self, capacity: 2) { descriptors in
            descriptors.initializeElement(at: 0, to: pollfd(fd: input, events: Int16(POLLIN), revents: 0))
            descriptors.initializeElement(at: 1, to: pollfd(fd: peerEnded, events: Int16(POLLIN), revents: 0))
            while poll(descriptors.baseAddress, 2, -1) < 0 && errno == EINTR {}
            return descriptors[0].revents != 0 || descriptors[1].revents == 0
        }
    }

    /// Gives the other side up to ``yieldsBeforeSleeping`` turns of the processor to write; true as soon as
    /// input is there. Never spins: each turn yields.
    private func yieldUntilReadable() -> Bool {
        var descriptor = pollfd(fd: input, events: Int16(POLLIN), revents: 0)
        for _ in 0..<yieldsBeforeSleeping {
            sched_yield()
            if poll(&descriptor, 1, 0) != 0 { return true }
        }
        return false
    }

    /// Writes what the pipe takes of the queued frames, without waiting. A closed pipe drops them: the
    /// other side is gone, which reading will tell.
    private func flushPending() {
        while pendingOutput.count > pendingStart {
            let count = pendingOutput.withUnsafeBytes {
                write(output, $0.baseAddress! + pendingStart, $0.count - pendingStart)
            }
            if count > 0 {
                pendingStart += count
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return
            } else {
                pendingStart = pendingOutput.count
            }
        }
        pendingOutput.removeAll(keepingCapacity: true)
        pendingStart = 0
    }

    /// Waits until input is readable, writing queued frames as the pipe takes them meanwhile.
    private func writePendingUntilReadable() throws(WorkerProtocolError) {
        var descriptors = [
            pollfd(fd: input, events: Int16(POLLIN), revents: 0),
            pollfd(fd: output, events: Int16(POLLOUT), revents: 0),
            pollfd(fd: peerEnded, events: Int16(POLLIN), revents: 0),
        ]
        while pendingOutput.count > pendingStart {
            var milliseconds: Int32 = -1
            if let deadline {
                let left = ContinuousClock.now.duration(to: deadline)
                milliseconds = Int32(max(0, min(left.timeInterval * 1000, Double(Int32.max))).rounded(.up))
            }
            let ready = poll(&descriptors, 3, milliseconds)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if ready == 0 {
                throw .malformed("the message was not complete in time (\(available) bytes of it came)")
            }
            if descriptors[1].revents != 0 { flushPending() }
            if descriptors[0].revents != 0 { return }
            if descriptors[2].revents != 0 {
                // The other side ended: nothing more it will take (a program it started may hold its end of
                // the pipe open, and the frames would only fill it). The read that follows tells the end.
                pendingOutput.removeAll(keepingCapacity: true)
                pendingStart = 0
                return
            }
        }
    }

    private func waitReadable(until deadline: ContinuousClock.Instant) throws(WorkerProtocolError) {
        var descriptor = pollfd(fd: input, events: Int16(POLLIN), revents: 0)
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            let milliseconds = Int32(max(0, min(left.timeInterval * 1000, Double(Int32.max))).rounded(.up))
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { return }
            if ready == 0 { throw .malformed("the message was not complete in time (\(available) bytes of it came)") }
            if errno != EINTR { return }
        }
    }

    private func writeAll(_ bytes: [UInt8], from start: Int) throws(WorkerProtocolError) {
        var offset = start
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { write(output, $0.baseAddress! + offset, $0.count - offset) }
            if count > 0 {
                offset += count
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                var descriptor = pollfd(fd: output, events: Int16(POLLOUT), revents: 0)
                _ = poll(&descriptor, 1, -1)
            } else if count < 0 && errno == EPIPE {
                throw .closed
            } else {
                throw .io(String(cString: strerror(errno)))
            }
        }
    }
}

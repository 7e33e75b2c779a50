import FairwayProcessWorkers
import Foundation
import Testing

/// The worker protocol's framing and header codec over a real pipe, without a worker process:
/// docs/worker-protocol.md, as the supervisor and every worker library read and write it.
@Suite("worker protocol")
struct WorkerProtocolTests {
    /// A pipe, read end first; the test closes both ends with ``closePair(_:)``.
    static func pipePair() throws -> [Int32] {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        return fds
    }

    static func closePair(_ fds: [Int32]) {
        close(fds[0])
        close(fds[1])
    }

    static func job(_ type: String, id: String = UUID().uuidString) -> WorkerMessage {
        .job(id: id, queue: "q", jobType: type, attempt: 1, maxAttempts: 1, timeoutSeconds: 30)
    }

    @Test("a message survives the trip: header fields and a binary body")
    func framing() throws {
        let fds = try Self.pipePair()
        defer { Self.closePair(fds) }
        let channel = WorkerChannel(input: fds[0], output: fds[1])
        var sent = Self.job("resize", id: "42")
        sent.reason = "ünïcode ✓"
        sent.key = "tenant \"ünï\""
        let body: [UInt8] = [0, 255, 10, 13] + Array("{\"ms\": 1}".utf8)
        try channel.send(sent, body: body)
        try channel.send(.result(id: "42", outcome: .failure, reason: "boom"))
        let (first, firstBody) = try channel.receive()
        #expect(first == sent)
        #expect(firstBody == body)
        let (second, secondBody) = try channel.receive()
        #expect(second.outcome == .failure && second.reason == "boom" && second.id == "42")
        #expect(secondBody.isEmpty)
    }

    /// Writes `header` as one frame with an empty body into a pipe and reads it back through a channel.
    static func decode(_ header: String) throws -> WorkerMessage {
        let fds = try Self.pipePair()
        defer { Self.closePair(fds) }
        let bytes = Array(header.utf8)
        let length = UInt32(bytes.count)
        let frame =
            [UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff)]
            + bytes + [0, 0, 0, 0]
        #expect(write(fds[1], frame, frame.count) == frame.count)
        return try WorkerChannel(input: fds[0], output: fds[1]).receive().0
    }

    @Test("headers as other JSON writers write them: escapes, surrogate pairs, spacing, nulls, unknown fields")
    func foreignHeaders() throws {
        let python = try Self.decode(
            #"{ "kind" : "result", "id": "7", "outcome": "failure", "reason": "caf\u00e9 \ud83d\ude00 \"q\"\n\\", "extra": {"a": [1, "}"], "b": null}, "flag": true }"#
        )
        #expect(python.kind == .result && python.id == "7" && python.outcome == .failure)
        #expect(python.reason == "café 😀 \"q\"\n\\")
        let hello = try Self.decode(#"{"kind":"hello","protocol":1,"pid":4242,"reason":null}"#)
        #expect(hello == .hello(pid: 4242))
        var job = Self.job("render", id: "tab\tquote\"back\\slash")
        job.timeoutSeconds = 0.25
        job.reason = "\u{1}control"
        let encoded = try JSONEncoder().encode(job)
        #expect(try Self.decode(String(decoding: encoded, as: UTF8.self)) == job)

        // And what the channel writes is JSON any parser reads.
        let fds = try Self.pipePair()
        defer { Self.closePair(fds) }
        try WorkerChannel(input: fds[0], output: fds[1]).send(job)
        var raw = [UInt8](repeating: 0, count: 4096)
        let count = read(fds[0], &raw, raw.count)
        let length = Int(raw[0]) << 24 | Int(raw[1]) << 16 | Int(raw[2]) << 8 | Int(raw[3])
        #expect(count == 4 + length + 4)
        #expect(try JSONDecoder().decode(WorkerMessage.self, from: Data(raw[4..<(4 + length)])) == job)
    }

    @Test("kinds and outcomes are matched whole, escaped or not; a null outcome is none")
    func kindsAndOutcomes() throws {
        for kind in WorkerMessage.Kind.allCases {
            #expect(try Self.decode(#"{"kind":"\#(kind.rawValue)"}"#).kind == kind)
        }
        for outcome in WorkerMessage.Outcome.allCases {
            #expect(try Self.decode(#"{"kind":"result","outcome":"\#(outcome.rawValue)"}"#).outcome == outcome)
        }
        let escaped = try Self.decode(#"{"kind":"res\u0075lt","outcome":"succ\u0065ss"}"#)
        #expect(escaped.kind == .result && escaped.outcome == .success)
        #expect(try Self.decode(#"{"kind":"result","outcome":null}"#).outcome == nil)
        for (header, problem) in [
            (#"{"kind":"jobs"}"#, "unknown kind 'jobs'"), (#"{"kind":"jo"}"#, "unknown kind 'jo'"),
            (#"{"kind":""}"#, "unknown kind ''"), (#"{"kind":null}"#, "unknown kind 'null'"),
            (#"{"kind":"result","outcome":"succes"}"#, "unknown outcome 'succes'"),
            (#"{"kind":"result","outcome":"successful"}"#, "unknown outcome 'successful'"),
            (#"{"kind":"result","outcome":1}"#, "'outcome' must be a string"),
        ] {
            do {
                _ = try Self.decode(header)
                Issue.record("accepted \(header)")
            } catch let error as WorkerProtocolError {
                #expect("\(error)".contains(problem), "\(error)")
            }
        }
    }

    @Test("keys are matched whole, escaped or not; a whole timeout travels as an integer, a fraction as written")
    func keysAndTimeouts() throws {
        // An escaped key names its field; keys that only begin or end like one are unknown, and skipped.
        let escaped = try Self.decode(#"{"k\u0069nd":"result","i\u0064":"9","ids":"x","d":"y","outcomes":"z"}"#)
        #expect(escaped.kind == .result && escaped.id == "9" && escaped.outcome == nil)
        #expect(try Self.decode(#"{"kind":"job","timeoutSeconds":30}"#).timeoutSeconds == 30)

        let fds = try Self.pipePair()
        defer { Self.closePair(fds) }
        let channel = WorkerChannel(input: fds[0], output: fds[1])
        var whole = Self.job("render", id: "1")
        whole.timeoutSeconds = 30
        var fraction = Self.job("render", id: "2")
        fraction.timeoutSeconds = 0.25
        channel.hold(whole)
        try channel.send(fraction)
        var raw = [UInt8](repeating: 0, count: 4096)
        let count = read(fds[0], &raw, raw.count)
        let text = String(decoding: raw[0..<max(count, 0)], as: UTF8.self)
        #expect(text.contains(#""timeoutSeconds":30}"#) && text.contains(#""timeoutSeconds":0.25}"#), "\(text)")
        #expect(text.range(of: #""id":"1""#)!.lowerBound < text.range(of: #""id":"2""#)!.lowerBound)
        // Read back through a channel: both intact, in the order sent.
        #expect(write(fds[1], raw, count) == count)
        #expect(try channel.receive().0 == whole)
        #expect(try channel.receive().0 == fraction)
    }

    @Test("whole numbers are written digit by digit as JSON writes them, and read back exactly")
    func wholeNumbers() throws {
        let fds = try Self.pipePair()
        defer { Self.closePair(fds) }
        let channel = WorkerChannel(input: fds[0], output: fds[1])
        for value in [0, 1, 9, 10, 99, 100, -1, -10, -987_654_321, 1_234_567_890_123, 999_999_999_999_999] {
            var job = Self.job("t", id: "n")
            job.attempt = value
            job.maxAttempts = -value
            job.timeoutSeconds = Double(value)
            try channel.send(job)
            var raw = [UInt8](repeating: 0, count: 4096)
            let count = read(fds[0], &raw, raw.count)
            let text = String(decoding: raw[0..<max(count, 0)], as: UTF8.self)
            #expect(
                text.contains(#""attempt":\#(value),"maxAttempts":\#(-value),"timeoutSeconds":\#(value)}"#), "\(text)")
            #expect(write(fds[1], raw, count) == count)
            #expect(try channel.receive().0 == job)
        }
    }

    @Test(
        "a reader that yields before sleeping still sleeps: waiting costs no processor time",
        arguments: [false, true])
    func yieldingReaderSleeps(nonBlocking: Bool) throws {
        let fds = try Self.pipePair()
        defer { Self.closePair(fds) }
        let channel = WorkerChannel(input: fds[0], output: fds[1])
        channel.yieldsBeforeSleeping = WorkerChannel.standardYields
        if nonBlocking { channel.makeInputNonBlocking() }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var received: WorkerMessage?
        nonisolated(unsafe) var busy = Duration.zero
        let reader = Thread {
            let before = Self.threadTime()
            received = try? channel.receive().0
            busy = Self.threadTime() - before
            done.signal()
        }
        reader.start()
        Thread.sleep(forTimeInterval: 0.3)
        let writer = WorkerChannel(input: fds[0], output: fds[1])
        try writer.send(.result(id: "late", outcome: .success))
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(received?.id == "late")
        // A reader that spun instead of sleeping would have used most of the 300 ms.
        #expect(busy < .milliseconds(30), "the reader used \(busy) of processor time while it waited")
    }

    /// Processor time the calling thread has used.
    static func threadTime() -> Duration {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return .seconds(time.tv_sec) + .nanoseconds(time.tv_nsec)
    }

    @Test(
        "a header with a wrong type, no kind or broken JSON is a protocol error naming what is wrong",
        arguments: [
            (#"{"kind":"result","attempt":"one"}"#, "'attempt' must be a whole number"),
            (#"{"kind":"result","attempt":1.5}"#, "'attempt' must be a whole number"),
            (#"{"kind":"job","key":7}"#, "'key' must be a string"),
            (#"{"id":"7"}"#, "without a kind"),
            (#"{"kind":"goodbye"}"#, "unknown kind 'goodbye'"),
            (#"{"kind":"result","outcome":"maybe"}"#, "unknown outcome 'maybe'"),
            (#"{"kind":"result""#, "expected"),
            (#"{"kind":"result"} trailing"#, "text after"),
            (#"{"kind":"res\x"}"#, "invalid escape"),
        ])
    func badHeaders(header: String, problem: String) throws {
        do {
            _ = try Self.decode(header)
            Issue.record("accepted \(header)")
        } catch let error as WorkerProtocolError {
            #expect("\(error)".contains(problem), "\(error)")
        }
    }

    @Test("a header longer than the limit is a protocol error, not an allocation")
    func oversizeHeader() throws {
        let fds = try Self.pipePair()
        defer { Self.closePair(fds) }
        let length: [UInt8] = [0x7f, 0xff, 0xff, 0xff]
        #expect(write(fds[1], length, 4) == 4)
        let channel = WorkerChannel(input: fds[0], output: fds[1])
        #expect(throws: WorkerProtocolError.self) { try channel.receive() }
    }
}

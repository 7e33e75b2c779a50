import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import FairwayProcessWorkers

/// A worker's stderr relay over a real pipe: which queue each line is logged with.
@Suite("worker stderr relay")
struct WorkerStderrRelayTests {
    @Test(
        "lines written before the worker moves on are named by the job that wrote them, however late the relay's thread wakes"
    )
    func linesBeforeASwitchKeepTheirQueue() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[1]) }
        let lines = NIOLockedValueBox<[(queue: String?, line: String)]>([])
        let relay = WorkerStderrRelay(descriptor: fds[0], pid: 1) { _, queue, line in
            lines.withLockedValue { $0.append((queue, line)) }
        }
        let rounds = 200
        for index in 0..<rounds {
            let queue = index % 2 == 0 ? "even" : "odd"
            relay.running(queue: queue)
            // The job's last words, in two pieces as an unbuffered print writes them, and at once its end.
            let text = Array("job \(index) of \(queue)".utf8)
            #expect(write(fds[1], text, text.count) == text.count)
            #expect(write(fds[1], "\n", 1) == 1)
            relay.running(queue: nil)
        }
        // A piece of a line when the worker goes idle is its job's last line, not the start of another.
        relay.running(queue: "tail")
        #expect(write(fds[1], "no newline", 10) == 10)
        relay.running(queue: nil)
        let all = lines.withLockedValue { $0 }
        #expect(all.count == rounds + 1)
        let wrong = all.filter { !$0.line.hasSuffix(" of \($0.queue ?? "-")") && $0.line != "no newline" }
        #expect(wrong.count == 0, "e.g. \(wrong.prefix(3).map { "'\($0.line)' as \($0.queue ?? "-")" })")
        #expect(
            all.last.map { $0.queue == "tail" && $0.line == "no newline" } == true, "\(String(describing: all.last))")
    }

    @Test("a line longer than the limit is cut, and the relay ends with the pipe")
    func longLinesAndTheEnd() throws {
        let (relay, writer, lines) = try relayOfAPipe()
        writer.write(
            Data(repeating: UInt8(ascii: "x"), count: WorkerStderrRelay.maxLineBytes + 10) + Data("\nlast".utf8))
        try writer.close()
        #expect(eventually { lines.withLockedValue { $0.count } == 3 })
        #expect(lines.withLockedValue { $0.map(\.count) } == [WorkerStderrRelay.maxLineBytes, 10, 4])
        relay.running(queue: nil)
        #expect(lines.withLockedValue { $0.count } == 3, "nothing read after the end")
    }

    @Test("blank lines are not handed on; a line with any other character is, spaces and all")
    func blankLines() throws {
        let (relay, writer, lines) = try relayOfAPipe()
        // What PHP writes for a fatal error, between blank lines, and blanks of every kind.
        let text = "\nPHP Fatal error:  Allowed memory size exhausted\n\n \t\r\n\u{0B}\u{0C}\n  indented\n\r\n.\n"
        writer.write(Data(text.utf8))
        try writer.close()
        relay.running(queue: nil)
        #expect(eventually { lines.withLockedValue { $0.count } >= 3 })
        #expect(lines.withLockedValue { $0 } == ["PHP Fatal error:  Allowed memory size exhausted", "  indented", "."])
    }

    /// A relay reading a new pipe for a job of queue `q`, the pipe's writing end, and the lines handed on.
    func relayOfAPipe() throws -> (WorkerStderrRelay, FileHandle, NIOLockedValueBox<[String]>) {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        let lines = NIOLockedValueBox<[String]>([])
        let relay = WorkerStderrRelay(descriptor: fds[0], pid: 1) { _, _, line in
            lines.withLockedValue { $0.append(line) }
        }
        relay.running(queue: "q")
        return (relay, FileHandle(fileDescriptor: fds[1], closeOnDealloc: true), lines)
    }

    /// True once `condition` holds, within 10 s.
    func eventually(_ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return condition()
    }
}

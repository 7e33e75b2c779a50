import FairwayTestSupport
import Foundation
import Testing

@testable import FairwayProcessWorkers

/// The shared memory a supervisor and a Swift worker pass jobs and results through, both sides' views of it
/// mapped in this one process, and the channels on it over real pipes: docs/worker-protocol.md, "Shared
/// memory".
@Suite("shared memory rings")
struct SharedByteRingTests {
    /// One worker's shared memory as the supervisor and the worker each map it.
    static func rings(capacity: Int) throws -> (supervisor: WorkerRings, worker: WorkerRings) {
        let (supervisor, descriptor) = try #require(WorkerRings.create(capacity: capacity))
        defer { close(descriptor) }
        let worker = try #require(WorkerRings.attach(descriptor: descriptor))
        return (supervisor, worker)
    }

    @Test("bytes arrive in order across the ring's end, and a write larger than the room takes what fits")
    func wrapAround() throws {
        let (supervisor, worker) = try Self.rings(capacity: 100)
        var chunk = [UInt8](repeating: 0, count: 64)
        var expected: [UInt8] = []
        var received: [UInt8] = []
        func drain() throws {
            while true {
                let (count, _) = try #require(worker.jobs.read(into: &chunk))
                if count == 0 { return }
                received += chunk[0..<count]
            }
        }
        for round in 0..<60 {
            let bytes = (0..<(round % 37 + 1)).map { UInt8(truncatingIfNeeded: round &* 31 &+ $0) }
            var offset = 0
            while offset < bytes.count {
                offset += supervisor.jobs.write(bytes, from: offset)
                if round % 3 == 0 { try drain() }
            }
            expected += bytes
            if round % 5 == 4 { try drain() }
        }
        try drain()
        #expect(received == expected)
        let big = [UInt8](repeating: 7, count: 250)
        #expect(supervisor.jobs.write(big, from: 0) == 100, "a write fills the room")
        #expect(supervisor.jobs.write(big, from: 100) == 0, "and no more")
        #expect(try #require(supervisor.results.read(into: &chunk)).count == 0, "the other ring is apart")
    }

    @Test("a reader that said it sleeps is woken once, a writer waiting for room when room frees")
    func wakeUps() throws {
        let (supervisor, worker) = try Self.rings(capacity: 64)
        #expect(supervisor.jobs.wakeReader() == false, "an awake reader is not woken")
        #expect(worker.jobs.readerSleeps() == false, "nothing written: it may sleep")
        #expect(supervisor.jobs.wakeReader() == true)
        #expect(supervisor.jobs.wakeReader() == false, "woken once")
        worker.jobs.readerAwake()
        _ = supervisor.jobs.write([1, 2, 3], from: 0)
        #expect(worker.jobs.readerSleeps() == true, "bytes came since: it stays awake")
        worker.jobs.readerAwake()

        #expect(supervisor.jobs.write([UInt8](repeating: 0, count: 100), from: 0) == 61)
        #expect(supervisor.jobs.writerWaits() == false, "full: it may sleep")
        var chunk = [UInt8](repeating: 0, count: 10)
        let first = try #require(worker.jobs.read(into: &chunk))
        #expect(first.count == 10 && first.wakeWriter, "room freed for a writer that waits")
        let second = try #require(worker.jobs.read(into: &chunk))
        #expect(second.count == 10 && !second.wakeWriter, "woken once")
        #expect(supervisor.jobs.writerWaits() == true, "room: it stays awake")
        supervisor.jobs.writerAwake()
    }

    @Test("a write position the other process overwrote is refused, never read past")
    func overwrittenPosition() throws {
        let (supervisor, descriptor) = try #require(WorkerRings.create(capacity: 128))
        defer { close(descriptor) }
        let worker = try #require(WorkerRings.attach(descriptor: descriptor))
        let rogue = try #require(WorkerRings.attach(descriptor: descriptor))
        _ = worker.results.write([UInt8](repeating: 1, count: 50), from: 0)
        var chunk = [UInt8](repeating: 0, count: 64)
        #expect(try #require(supervisor.results.read(into: &chunk)).count == 50)
        // A second writer from position 0 sets the published position behind what the reader has taken.
        _ = rogue.results.write([UInt8](repeating: 2, count: 10), from: 0)
        #expect(supervisor.results.read(into: &chunk) == nil)
    }

    /// A supervisor's and a worker's channel on one pair of pipes and one shared memory, as after a hello
    /// that took it.
    static func channels(capacity: Int) throws -> (supervisor: WorkerChannel, worker: WorkerChannel, close: () -> Void)
    {
        let (supervisorRings, workerRings) = try rings(capacity: capacity)
        var toWorker: [Int32] = [0, 0]
        var fromWorker: [Int32] = [0, 0]
        try #require(pipe(&toWorker) == 0 && pipe(&fromWorker) == 0)
        let supervisor = WorkerChannel(input: fromWorker[0], output: toWorker[1])
        let worker = WorkerChannel(input: toWorker[0], output: fromWorker[1])
        supervisor.makeInputNonBlocking()
        supervisor.makeOutputNonBlocking()
        worker.makeInputNonBlocking()
        supervisor.useRings(input: supervisorRings.results, output: supervisorRings.jobs)
        worker.useRings(input: workerRings.jobs, output: workerRings.results)
        return (supervisor, worker, { for fd in toWorker + fromWorker { close(fd) } })
    }

    @Test("jobs sent ahead and results of any size cross the rings in order, many times a ring's size")
    func channelsOverRings() throws {
        let (supervisor, worker, closeAll) = try Self.channels(capacity: 1024)
        defer { closeAll() }
        // The worker answers each job with its body's length and sum, and every fifth with a reason longer
        // than the ring.
        let served = DispatchSemaphore(value: 0)
        Thread {
            defer { served.signal() }
            while let (job, body) = try? worker.receive() {
                let sum = body.reduce(0) { $0 &+ Int($1) }
                let padding = job.attempt == 5 ? String(repeating: "x", count: 3000) : ""
                let reason = "\(body.count):\(sum)\(padding)"
                guard (try? worker.send(.result(id: job.id ?? "", outcome: .failure, reason: reason))) != nil else {
                    return
                }
            }
        }.start()
        var generator = SplitMix(seed: 42)
        var outstanding: [(id: String, reason: String)] = []
        for index in 0..<300 {
            let body = (0..<Int(generator.next() % 5000)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let sum = body.reduce(0) { $0 &+ Int($1) }
            let attempt = index % 5 + 1
            let padding = attempt == 5 ? String(repeating: "x", count: 3000) : ""
            supervisor.enqueue(
                .job(id: "j\(index)", queue: "q", jobType: "t", attempt: attempt, maxAttempts: 9, timeoutSeconds: 30),
                body: body)
            outstanding.append(("j\(index)", "\(body.count):\(sum)\(padding)"))
            // Four jobs in the worker at a time, as a pipeline of four.
            while outstanding.count >= 4 || (index == 299 && !outstanding.isEmpty) {
                let (result, _) = try supervisor.receive(before: .now + .seconds(30))
                let expected = outstanding.removeFirst()
                #expect(result.id == expected.id)
                #expect(result.reason == expected.reason, "\(expected.id)")
            }
        }
        closeAll()
        #expect(served.wait(timeout: .now() + 10) == .success)
    }

    @Test("results a worker wrote without waking the supervisor are read after it dies, then its end")
    func resultsOutliveTheirWriter() throws {
        let (supervisor, worker, closeAll) = try Self.channels(capacity: 4096)
        defer { closeAll() }
        let outcomes = Shared<[String]>([])
        let done = DispatchSemaphore(value: 0)
        Thread {
            defer { done.signal() }
            while true {
                do {
                    let (result, _) = try supervisor.receive()
                    outcomes.update { $0.append(result.id ?? "?") }
                } catch {
                    outcomes.update { $0.append("\(error)") }
                    return
                }
            }
        }.start()
        Thread.sleep(forTimeInterval: 0.2)  // the supervisor sleeps on its doorbell by now
        for id in ["a", "b", "c"] {
            try worker.send(.result(id: id, outcome: .success))
        }
        // The worker "dies" without running out of input: it never rang; only the end of its pipe wakes the
        // supervisor.
        close(worker.output)
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(outcomes.read() == ["a", "b", "c", "\(WorkerProtocolError.closed)"])
    }

    @Test("a reader of a ring that yields before sleeping still sleeps: waiting costs no processor time")
    func ringReaderSleeps() throws {
        let (supervisor, worker, closeAll) = try Self.channels(capacity: 4096)
        defer { closeAll() }
        let done = DispatchSemaphore(value: 0)
        let busy = Shared(Duration.zero)
        let received = Shared<String?>(nil)
        Thread {
            let before = WorkerProtocolTests.threadTime()
            received.update { $0 = try? supervisor.receive().0.id }
            busy.update { $0 = WorkerProtocolTests.threadTime() - before }
            done.signal()
        }.start()
        Thread.sleep(forTimeInterval: 0.3)
        try worker.send(.result(id: "late", outcome: .success))
        // The worker runs out of input: that is when it wakes the supervisor.
        #expect(throws: WorkerProtocolError.self) { try worker.receive(before: .now + .milliseconds(50)) }
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(received.read() == "late")
        #expect(busy.read() < .milliseconds(30), "the reader used \(busy.read()) of processor time while it waited")
    }
}

/// A small seeded generator, so that a failure repeats.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}

import FairwayJobs
import FairwayTestSupport
import Foundation
import Logging
import Testing

@Suite("Built-in jobs")
struct BuiltinJobsTests {
    static var registry: JobRegistry {
        var registry = JobRegistry()
        BuiltinJobs.register(in: &registry)
        return registry
    }

    @Test("the six built-in types are registered")
    func registered() {
        #expect(Self.registry.jobTypes == ["append", "crash", "fail", "noop", "pooled", "sleep"])
    }

    @Test(
        "sleep and append refuse a pause outside 0 ms to a day, permanently and saying the range",
        arguments: ["-1", "86400001", "1e300"])
    func sleepRange(ms: String) async throws {
        for (type, payload) in [
            ("sleep", #"{"ms": \#(ms)}"#), ("append", #"{"path":"/dev/null","line":"x","ms":\#(ms)}"#),
        ] {
            let error = try #require(await JobRegistryTests.run(Self.registry, type, payload) as? JobError)
            #expect(error == .permanent("\(type): ms must be a number from 0 to 86400000 (a day), got \(Double(ms)!)"))
        }
    }

    @Test("append writes one line with the job id and attempt; a NUL in the path is refused")
    func append() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("append-\(UUID()).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(await JobRegistryTests.run(Self.registry, "append", #"{"path":"\#(path)","line":"job"}"#) == nil)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "job id=7 attempt=1\n")
        #expect(
            await JobRegistryTests.run(Self.registry, "append", #"{"path":"\#(path)","line":"a","end":"b"}"#) == nil)
        #expect(
            try String(contentsOfFile: path, encoding: .utf8)
                == "job id=7 attempt=1\na id=7 attempt=1\nb id=7 attempt=1\n")
        let error = await JobRegistryTests.run(Self.registry, "append", #"{"path":"a\u0000b","line":"x"}"#)
        #expect((error as? JobError).map { "\($0)" }?.contains("without NUL bytes") == true)
    }

    @Test("pooled: eight jobs on threads of their own, a pool of three: never more than three slots at once")
    func pooled() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pool-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = folder + ".log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let payload = Array(#"{"pool":"\#(folder)","size":3,"ms":40,"path":"\#(log)","line":"w1"}"#.utf8)
        guard case .blocking(let run) = Self.registry.body(for: "pooled") else {
            Issue.record("pooled is a blocking job")
            return
        }
        // Threads of their own, as the engine's workers: a job waiting for a slot blocks its thread.
        let errors = Shared<[String]>([])
        let group = DispatchGroup()
        for _ in 0..<8 {
            group.enter()
            Thread {
                do { try run(payload, JobRegistryTests.context("pooled")) } catch {
                    errors.update { $0.append("\(error)") }
                }
                group.leave()
            }.start()
        }
        #expect(group.wait(timeout: .now() + 30) == .success)
        #expect(errors.read().isEmpty, "\(errors.read())")
        let ends = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter {
            $0.hasPrefix("end")
        }
        #expect(ends.count == 8)
        // Each end line carries when its job took and gave back its slot.
        let held = ends.map { line -> (Int64, Int64) in
            let fields = Dictionary(
                uniqueKeysWithValues: line.split(separator: " ").compactMap { field -> (String, Int64)? in
                    let parts = field.split(separator: "=")
                    return parts.count == 2 ? (String(parts[0]), Int64(parts[1]) ?? 0) : nil
                })
            return (fields["acquired"] ?? 0, fields["released"] ?? 0)
        }
        let most = held.map { probe in held.filter { $0.0 <= probe.0 && probe.0 < $0.1 }.count }.max() ?? 0
        #expect(most <= 3 && most >= 2, "slots held at once: \(most)")
    }

    @Test("pooled refuses a pool size out of range and an empty pool folder, permanently")
    func pooledBadInput() async {
        for bad in [#"{"pool":"/tmp/p","size":0,"ms":1}"#, #"{"pool":"","size":2,"ms":1}"#] {
            let error = await JobRegistryTests.run(Self.registry, "pooled", bad)
            #expect((error as? JobError).map { "\($0)" }?.contains("pooled: ") == true, "\(String(describing: error))")
        }
    }

    @Test("fail throws a retried error with its message, or a default one")
    func fail() async {
        let given = await JobRegistryTests.run(Self.registry, "fail", #"{"message":"boom"}"#)
        #expect(JobError.classify(given!) == (false, "boom"))
        let plain = await JobRegistryTests.run(Self.registry, "fail", "")
        #expect(JobError.classify(plain!) == (false, "fail job failed on purpose"))
    }

    @Test("blockThread sleeps at least as long as asked")
    func blockThread() {
        let clock = ContinuousClock()
        let elapsed = clock.measure { BuiltinJobs.blockThread(nanoseconds: 20_000_000) }
        #expect(elapsed >= .milliseconds(20))
    }
}

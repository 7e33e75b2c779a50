import FairwayJobs
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

    @Test("the five built-in types are registered")
    func registered() {
        #expect(Self.registry.jobTypes == ["append", "crash", "fail", "noop", "sleep"])
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
        let error = await JobRegistryTests.run(Self.registry, "append", #"{"path":"a\u0000b","line":"x"}"#)
        #expect((error as? JobError).map { "\($0)" }?.contains("without NUL bytes") == true)
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

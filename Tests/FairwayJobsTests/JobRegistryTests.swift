import FairwayJobs
import FairwayTestSupport
import Foundation
import Logging
import Testing

@Suite("Job registry")
struct JobRegistryTests {
    struct Email: Codable, Sendable {
        var to: String
        var copies: Int
        var tags: [String]?
    }
    static let email = JobName<Email>("email")

    static func context(_ type: String = "email") -> JobContext {
        JobContext(
            queue: "q", jobType: type, jobID: "7", attempt: 1, maxAttempts: 3,
            deadline: .now + .seconds(60), logger: Logger(label: "test"))
    }

    /// Runs the registered body for `type` with `payload` and returns the error it threw, if any.
    static func run(_ registry: JobRegistry, _ type: String, _ payload: String) async -> (any Error)? {
        guard let body = registry.body(for: type) else { return JobError.unknownJobType(type) }
        do {
            switch body {
            case .blocking(let run): try run(Array(payload.utf8), context(type))
            case .async(let run): try await run(Array(payload.utf8), context(type))
            }
            return nil
        } catch {
            return error
        }
    }

    @Test("a typed handler gets its decoded parameters and the job's context")
    func decodes() async {
        var registry = JobRegistry()
        let seen = Shared<[String]>([])
        registry.register(Self.email) { parameters, context in
            seen.update {
                $0.append("\(parameters.to) x\(parameters.copies) \(context.queue)#\(context.jobID)")
            }
        }
        #expect(await Self.run(registry, "email", #"{"to":"a@b","copies":2}"#) == nil)
        #expect(seen.read() == ["a@b x2 q#7"])
        #expect(registry.jobTypes == ["email"])
    }

    @Test(
        "an undecodable payload is a permanent error that names the job type and what is wrong",
        arguments: [
            (#"{"copies":2}"#, "missing field 'to'"),
            (#"{"to":"a","copies":"two"}"#, "copies: expected Int"),
            (#"{"to":"a","copies":null}"#, "copies: expected Int, found null"),
            (#"{"to":"a","copies":1,"tags":["x",3]}"#, "tags.[1]: expected String"),
            ("not json", "not valid JSON"),
            ("", "missing field 'to'"),
            (String(repeating: "[", count: 513), "nested deeper than 500 levels"),
        ])
    func undecodable(payload: String, detail: String) async throws {
        var registry = JobRegistry()
        registry.register(Self.email) { _, _ in Issue.record("the handler ran for \(payload.prefix(40))") }
        let error = try #require(await Self.run(registry, "email", payload) as? JobError)
        guard case .undecodablePayload(let type, let text) = error else {
            Issue.record("expected undecodablePayload, got \(error)")
            return
        }
        #expect(type == "email")
        #expect(text.contains(detail), "\(text)")
        #expect(JobError.classify(error).permanent)
        #expect(error.description.hasPrefix("undecodable payload for job type 'email': "))
    }

    @Test("an async handler runs to completion and its errors come back unchanged")
    func asyncHandler() async {
        var registry = JobRegistry()
        registry.register(
            JobName<NoParameters>("tick"),
            executeAsync: { _, _ in
                try await Task.sleep(for: .milliseconds(1))
                throw CancellationError()
            })
        #expect(await Self.run(registry, "tick", "") is CancellationError)
    }

    @Test("registering a type again replaces its handler")
    func replaces() async {
        var registry = JobRegistry()
        registry.register(rawJobType: "x", body: .blocking { _, _ in throw JobError.permanent("old") })
        registry.register(rawJobType: "x", body: .blocking { _, _ in })
        #expect(await Self.run(registry, "x", "") == nil)
        #expect(registry.jobTypes == ["x"])
    }

    @Test("classify: a JobError is permanent; any other error is retried and keeps its text or its type's name")
    func classify() {
        struct Quiet: Error, CustomStringConvertible { var description: String { "" } }
        #expect(JobError.classify(JobError.permanent("never")) == (true, "never"))
        #expect(JobError.classify(JobError.unknownJobType("z")).reason.contains("no handler is registered"))
        let retried = JobError.classify(BuiltinJobs.Failure(description: "later"))
        #expect(retried == (false, "later"))
        #expect(JobError.classify(Quiet()) == (false, "Quiet"))
    }
}

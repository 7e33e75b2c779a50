import FairwayJobs
import FairwayRuntime
import FairwayTestSupport
import Foundation
import Logging
import Testing

/// What an operator reads in the log about jobs: one line per job that failed, was retried, timed out or
/// was dead-lettered, with queue, type, id, attempt and reason; successes only at debug level.
@Suite("Job log")
struct JobLogTests {
    @Test(
        "a retried failure, a dead letter and a rejection each log one line naming the job; a success logs at debug only"
    )
    func linesPerJob() throws {
        let messages = CapturingLogHandler.Messages()
        var logger = Logger(label: "fairway.test") { _ in CapturingLogHandler(sink: messages) }
        logger.logLevel = .debug
        let harness = try EngineHarness(
            workers: 1, queues: [QueueDefinition(name: "q", retry: quickRetry(2))], logger: logger)
        try harness.start()
        defer { harness.stop() }
        harness.source.enqueue(queue: "q", jobType: "fail", payloads: [Array(#"{"message":"smtp down"}"#.utf8)])
        harness.source.enqueue(queue: "q", jobType: "no-such-type")
        harness.source.enqueue(queue: "q", jobType: "noop")
        // The log line of a job comes after its settlement: wait for the lines too, not only the counts.
        #expect(
            eventually {
                harness.source.deadLettered.count == 2 && harness.snapshot("q").succeeded == 1
                    && messages.all.filter { $0.contains("job ") }.count >= 4
            })
        let lines = messages.all.filter { $0.contains("job ") }
        let retried = lines.filter { $0.hasPrefix("warning job will be retried") }
        let dead = lines.filter { $0.hasPrefix("error job dead-lettered") }
        #expect(
            retried.count == 1 && retried[0].contains("attempt=1") && retried[0].contains("reason=smtp down"),
            "\(lines)")
        #expect(retried.first?.contains("queue=q") == true && retried.first?.contains("type=fail") == true)
        #expect(dead.count == 2, "\(lines)")
        #expect(dead.contains { $0.contains("attempt=2") && $0.contains("reason=smtp down") })
        #expect(dead.contains { $0.contains("outcome=rejected") && $0.contains("unknown job type 'no-such-type'") })
        #expect(lines.filter { $0.hasPrefix("debug job succeeded") && $0.contains("type=noop") }.count == 1)
        #expect(lines.count == 4, "one line per job end: \(lines)")
    }
}

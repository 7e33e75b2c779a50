import FairwayJobs
import FairwayRuntime
import Foundation
import Testing

/// A job whose last run ended with its process runs alone, so that a second crash is charged to it and to
/// nothing that happened to run beside it.
@Suite("Suspect jobs run alone")
struct SuspectJobTests {
    struct Span: Codable, Sendable { var name: String }

    @Test("a suspect waits for running jobs to end, and no other job starts while it runs")
    func runsAlone() throws {
        let spans = Shared<[(name: String, start: Date, end: Date)]>([])
        let harness = try EngineHarness(workers: 4, queues: [QueueDefinition(name: "q", credit: 64)]) { registry in
            registry.register(JobName<Span>("span")) { span, _ in
                let start = Date()
                Thread.sleep(forTimeInterval: 0.03)
                spans.update { $0.append((span.name, start, Date())) }
            }
        }
        try harness.start()
        defer { harness.stop() }
        let payload = { (name: String) in Array(#"{"name":"\#(name)"}"#.utf8) }
        for index in 0..<6 { harness.source.enqueue(queue: "q", jobType: "span", payload: payload("before-\(index)")) }
        #expect(eventually { harness.engine.snapshot().busyWorkers == 4 })
        harness.source.enqueue(queue: "q", jobType: "span", payload: payload("suspect"), suspect: true)
        for index in 0..<6 { harness.source.enqueue(queue: "q", jobType: "span", payload: payload("after-\(index)")) }
        #expect(eventually { spans.read().count == 13 })
        let all = spans.read()
        let suspect = try #require(all.first { $0.name == "suspect" })
        for other in all where other.name != "suspect" {
            let overlaps = other.start < suspect.end && suspect.start < other.end
            #expect(!overlaps, "\(other.name) ran beside the suspect")
        }
        #expect(all.filter { $0.name.hasPrefix("after") }.allSatisfy { $0.start >= suspect.end })
        #expect(harness.source.ackedCount == 13)
    }
}

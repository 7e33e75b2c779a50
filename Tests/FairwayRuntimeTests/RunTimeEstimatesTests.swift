import Testing

@testable import FairwayRuntime

/// The run-time estimates that decide what is sent ahead to a worker process, by job type.
@Suite("run-time estimates by job type")
struct RunTimeEstimatesTests {
    @Test("a job type is unknown until one ends, then moves a fifth of the way to each run; types apart")
    func byJobType() {
        var estimates = RunTimeEstimates()
        #expect(estimates["resize"].isInfinite)
        estimates.note(0.001, jobType: "resize")
        #expect(estimates["resize"] == 0.001)
        estimates.note(20, jobType: "report")
        #expect(estimates["resize"] == 0.001, "a long job of another type leaves this one's estimate alone")
        estimates.note(0.011, jobType: "resize")
        #expect(abs(estimates["resize"] - 0.003) < 1e-12)
        #expect(estimates["report"] == 20)
        #expect(estimates["email"].isInfinite)
    }

    @Test("job types past the cap share one estimate: a producer's endless new types cannot grow it")
    func cappedJobTypes() {
        var estimates = RunTimeEstimates()
        for index in 0..<RunTimeEstimates.maxJobTypes {
            estimates.note(0.001, jobType: "type-\(index)")
        }
        #expect(estimates["type-\(RunTimeEstimates.maxJobTypes)"].isInfinite, "no type past the cap has ended yet")
        for index in 0..<10_000 {
            estimates.note(5, jobType: "flood-\(index)")
        }
        #expect(estimates["flood-123"] == 5 && estimates["never-seen"] == 5)
        #expect(estimates["type-0"] == 0.001, "the types within the cap keep their own")
        estimates.note(0.002, jobType: "type-0")
        #expect(abs(estimates["type-0"] - 0.0012) < 1e-12)
    }
}

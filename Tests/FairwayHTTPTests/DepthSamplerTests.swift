import Testing

@testable import FairwayHTTP

@Suite("Depth sampler")
struct DepthSamplerTests {
    @Test("samples once a second, and never spends more than a tenth of a core asking")
    func pauseGrowsWithTheCostOfASample() {
        #expect(DepthSampler.pause(after: .milliseconds(3)) == .seconds(1))
        #expect(DepthSampler.pause(after: .milliseconds(111)) == .seconds(1))
        #expect(DepthSampler.pause(after: .milliseconds(500)) == .milliseconds(4_500))
        for sample in [Duration.milliseconds(120), .milliseconds(800), .seconds(4)] {
            let pause = DepthSampler.pause(after: sample)
            #expect(sample / (sample + pause) <= 0.1)
        }
    }
}

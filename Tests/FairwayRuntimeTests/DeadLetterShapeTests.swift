import FairwayRuntime
import Testing

@Suite("Dead-letter causes")
struct DeadLetterShapeTests {
    @Test("a reason's shape masks its numbers, so one cause is one group")
    func shapes() {
        #expect(
            DeadLetterFilter.shape(of: "worker process 4242 was killed by signal 9 (gave up after 3 attempts)")
                == "worker process # was killed by signal # (gave up after # attempts)")
        #expect(DeadLetterFilter.shape(of: "no digits here") == "no digits here")
        #expect(DeadLetterFilter.shape(of: "") == "")
        #expect(DeadLetterFilter.shape(of: "12.5 ms, order A-77") == "#.# ms, order A-#")
        #expect(DeadLetterFilter.shape(of: "٣ Arabic-Indic digits stay") == "٣ Arabic-Indic digits stay")
    }
}

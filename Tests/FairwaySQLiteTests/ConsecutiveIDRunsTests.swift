import Testing

@testable import FairwaySQLite

@Suite("Runs of consecutive job ids")
struct ConsecutiveIDRunsTests {
    @Test("runs are split where an id does not follow the one before, in the list's order")
    func splitsRuns() {
        #expect(Array(ConsecutiveIDRuns([3, 4, 5, 9, 10, 2])) == [3...5, 9...10, 2...2])
        #expect(Array(ConsecutiveIDRuns([7])) == [7...7])
        #expect(Array(ConsecutiveIDRuns([])).isEmpty)
        // A repeated id ends a run: it does not follow itself.
        #expect(Array(ConsecutiveIDRuns([1, 2, 2, 3])) == [1...2, 2...3])
        // Priority order can put a later id first: 10 then 1, 2 are two runs.
        #expect(Array(ConsecutiveIDRuns([10, 1, 2])) == [10...10, 1...2])
    }
}

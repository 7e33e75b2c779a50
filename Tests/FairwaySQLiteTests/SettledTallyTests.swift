import Testing

@testable import FairwaySQLite

@Suite("Settled tally")
struct SettledTallyTests {
    @Test("counts per queue, lists each touched queue once, and clears to zero")
    func countsAndClears() {
        var tally = SettledTally(queues: 4)
        tally.add(queue: 2, completed: 1, failed: 0)
        tally.add(queue: 0, completed: 0, failed: 1)
        tally.add(queue: 2, completed: 0, failed: 0)
        #expect(tally.touched == [2, 0])
        #expect(tally.settled == [1, 0, 2, 0])
        #expect(tally.completed == [0, 0, 1, 0])
        #expect(tally.failed == [1, 0, 0, 0])
        tally.clear()
        #expect(tally.touched.isEmpty)
        #expect(tally.settled == [0, 0, 0, 0] && tally.completed == [0, 0, 0, 0] && tally.failed == [0, 0, 0, 0])
        tally.add(queue: 3, completed: 1, failed: 0)
        #expect(tally.touched == [3] && tally.settled == [0, 0, 0, 1])
    }
}

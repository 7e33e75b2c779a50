/// What one transaction settled, per queue: how many deliveries returned their credit, and how many
/// completed and failed. Arrays indexed by queue with a list of the queues touched, so that a
/// transaction of thousands of settlements costs no hashing per job and clearing costs only the touched.
struct SettledTally {
    private(set) var settled: [Int]
    private(set) var completed: [Int]
    private(set) var failed: [Int]
    /// The queues with at least one settlement, each once, in the order first seen.
    private(set) var touched: [Int] = []

    init(queues: Int) {
        settled = Array(repeating: 0, count: queues)
        completed = settled
        failed = settled
    }

    mutating func add(queue index: Int, completed: Int, failed: Int) {
        if settled[index] == 0 { touched.append(index) }
        settled[index] += 1
        self.completed[index] += completed
        self.failed[index] += failed
    }

    /// Zeroes what was added, keeping the storage.
    mutating func clear() {
        for index in touched {
            settled[index] = 0
            completed[index] = 0
            failed[index] = 0
        }
        touched.removeAll(keepingCapacity: true)
    }
}

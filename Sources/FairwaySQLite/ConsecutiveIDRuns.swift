/// The runs of consecutive ids in a list of job ids, in the list's order: `[3, 4, 5, 9, 10, 2]` is 3…5,
/// 9…10 and 2…2. Jobs enqueued together have consecutive ids, and one statement per run leases or deletes
/// them where one per job would (``ReadyJobClaim``, ``CompletedJobs``).
struct ConsecutiveIDRuns: Sequence {
    let ids: [Int64]

    init(_ ids: [Int64]) {
        self.ids = ids
    }

    func makeIterator() -> Iterator {
        Iterator(ids: ids)
    }

    struct Iterator: IteratorProtocol {
        let ids: [Int64]
        var start = 0

        mutating func next() -> ClosedRange<Int64>? {
            guard start < ids.count else { return nil }
            var end = start
            while end + 1 < ids.count && ids[end + 1] == ids[end] + 1 { end += 1 }
            defer { start = end + 1 }
            return ids[start]...ids[end]
        }
    }
}

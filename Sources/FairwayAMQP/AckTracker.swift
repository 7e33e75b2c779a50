/// Which delivery tags of a channel are settled, so that acknowledgements go out as one `multiple` ack
/// for the contiguous settled prefix and single acks beyond a gap.
struct AckTracker {
    private var outstanding: [UInt64] = []
    private var head = 0
    private var settledTags: Set<UInt64> = []
    /// Tags acknowledged singly or rejected: no longer outstanding at the broker.
    private var done: Set<UInt64> = []

    var hasWork: Bool { !settledTags.isEmpty }

    mutating func delivered(_ tag: UInt64) { outstanding.append(tag) }
    mutating func settled(_ tag: UInt64) { settledTags.insert(tag) }
    mutating func handled(_ tag: UInt64) { done.insert(tag) }

    mutating func takeAcks() -> (multipleUpTo: UInt64?, single: [UInt64]) {
        var highest: UInt64?
        while head < outstanding.count {
            let tag = outstanding[head]
            if settledTags.remove(tag) != nil {
                highest = tag
            } else if done.remove(tag) == nil {
                break
            }
            head += 1
        }
        if head > 1024 {
            outstanding.removeFirst(head)
            head = 0
        }
        let single = settledTags.sorted()
        settledTags.removeAll(keepingCapacity: true)
        done.formUnion(single)
        return (highest, single)
    }
}

import FairwayTestSupport
import Testing

@testable import FairwayScheduling

@Suite("IndexedMinHeap")
struct IndexedMinHeapTests {
    @Test("agrees with a sorted reference under random inserts, updates and removals")
    func matchesReference() {
        var rng = SplitMix64(seed: 42)
        var heap = IndexedMinHeap<Double>()
        var reference: [Int: Double] = [:]
        for _ in 0..<20_000 {
            let member = Int.random(in: 0..<64, using: &rng)
            let key = Double(Int.random(in: 0..<100, using: &rng))
            switch Int.random(in: 0..<4, using: &rng) {
            case 0, 1:
                if reference[member] == nil {
                    heap.insert(member, key: key)
                } else {
                    heap.update(member, key: key)
                }
                reference[member] = key
            case 2:
                heap.remove(member)
                reference[member] = nil
            default:
                if let (top, topKey) = heap.min {
                    let expected = reference.min { ($0.value, $0.key) < ($1.value, $1.key) }!
                    #expect(top == expected.key)
                    #expect(topKey == expected.value)
                } else {
                    #expect(reference.isEmpty)
                }
            }
            #expect(heap.count == reference.count)
        }
    }
}

/// A binary min-heap of small integer members (queue indices), each with a key, that supports
/// O(log n) insert, remove and key change of any member. Ties break towards the lower member.
@usableFromInline
struct IndexedMinHeap<Key: Comparable & Sendable>: Sendable {
    @usableFromInline
    struct Entry: Sendable {
        @usableFromInline var key: Key
        @usableFromInline var member: Int32

        @inlinable
        init(key: Key, member: Int32) {
            self.key = key
            self.member = member
        }

        @inlinable @inline(__always)
        static func < (a: Entry, b: Entry) -> Bool {
            a.key < b.key || (a.key == b.key && a.member < b.member)
        }
    }

    @usableFromInline var entries: [Entry] = []
    /// Position of each member in `entries`, or -1 when absent.
    @usableFromInline var positions: [Int32] = []

    @inlinable init() {}

    @inlinable var isEmpty: Bool { entries.isEmpty }
    @inlinable var count: Int { entries.count }

    /// The member with the smallest key, with that key.
    @inlinable var min: (member: Int, key: Key)? {
        guard let first = entries.first else { return nil }
        return (Int(first.member), first.key)
    }

    @inlinable func contains(_ member: Int) -> Bool {
        member < positions.count && positions[member] >= 0
    }

    @inlinable func key(of member: Int) -> Key? {
        contains(member) ? entries[Int(positions[member])].key : nil
    }

    @inlinable mutating func reserve(members capacity: Int) {
        if positions.count < capacity {
            positions.append(contentsOf: repeatElement(-1, count: capacity - positions.count))
            entries.reserveCapacity(capacity)
        }
    }

    @inlinable mutating func insert(_ member: Int, key: Key) {
        reserve(members: member + 1)
        precondition(positions[member] < 0, "member already in heap")
        entries.append(Entry(key: key, member: Int32(member)))
        positions[member] = Int32(entries.count - 1)
        siftUp(entries.count - 1)
    }

    @inlinable mutating func remove(_ member: Int) {
        guard contains(member) else { return }
        let position = Int(positions[member])
        let last = entries.count - 1
        if position != last {
            entries[position] = entries[last]
            positions[Int(entries[position].member)] = Int32(position)
        }
        entries.removeLast()
        positions[member] = -1
        if position < entries.count {
            siftDown(position)
            siftUp(position)
        }
    }

    /// Changes the key of a member already in the heap.
    @inlinable mutating func update(_ member: Int, key: Key) {
        let position = Int(positions[member])
        precondition(position >= 0, "member not in heap")
        let old = entries[position].key
        entries[position].key = key
        if key < old {
            siftUp(position)
        } else {
            siftDown(position)
        }
    }

    /// Raises the key of the minimum member: the common case after a dispatch.
    @inlinable mutating func raiseMinimum(to key: Key) {
        entries[0].key = key
        siftDown(0)
    }

    @inlinable mutating func siftUp(_ start: Int) {
        entries.withUnsafeMutableBufferPointer { heap in
            positions.withUnsafeMutableBufferPointer { positions in
                let moving = heap[start]
                var child = start
                while child > 0 {
                    let parent = (child - 1) / 2
                    guard moving < heap[parent] else { break }
                    heap[child] = heap[parent]
                    positions[Int(heap[child].member)] = Int32(child)
                    child = parent
                }
                heap[child] = moving
                positions[Int(moving.member)] = Int32(child)
            }
        }
    }

    @inlinable mutating func siftDown(_ start: Int) {
        entries.withUnsafeMutableBufferPointer { heap in
            positions.withUnsafeMutableBufferPointer { positions in
                let n = heap.count
                let moving = heap[start]
                var parent = start
                while true {
                    let left = 2 * parent + 1
                    guard left < n else { break }
                    var smallest = left
                    let right = left + 1
                    if right < n && heap[right] < heap[left] {
                        smallest = right
                    }
                    guard heap[smallest] < moving else { break }
                    heap[parent] = heap[smallest]
                    positions[Int(heap[parent].member)] = Int32(parent)
                    parent = smallest
                }
                heap[parent] = moving
                positions[Int(moving.member)] = Int32(parent)
            }
        }
    }
}

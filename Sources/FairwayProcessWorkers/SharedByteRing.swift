import CProcess
import Foundation

/// One direction of a worker's shared memory: a byte stream with one writer and one reader, each in its own
/// process. Bytes put here cost neither side a system call while the other is awake; the pipe beside it only
/// wakes a side that sleeps (docs/worker-protocol.md, "Shared memory").
///
/// Each side keeps its own position and only checks the other's, so a worker that scribbles over the shared
/// header can garble what it sends (a protocol error, charged to its job) but never make the supervisor read
/// or write outside the ring.
final class SharedByteRing: @unchecked Sendable {
    // Unchecked Sendable: one writer or one reader per instance at a time, as WorkerChannel's own contract.
    private let memory: SharedMemory
    private let header: UnsafeMutableRawPointer
    let capacity: UInt64
    /// This side's position: bytes written (writer) or read (reader) so far.
    private var position: UInt64 = 0

    fileprivate init(memory: SharedMemory, offset: Int, capacity: Int) {
        self.memory = memory
        self.header = memory.base + offset
        self.capacity = UInt64(capacity)
    }

    /// Writes as many of `bytes` (from `offset`) as fit and returns how many. The reader is not woken: its
    /// writer does that with ``wakeReader()`` when it runs out of input, so that one wake-up carries all it
    /// wrote meanwhile.
    func write(_ bytes: [UInt8], from offset: Int) -> Int {
        bytes.withUnsafeBufferPointer { buffer in
            fw_ring_write(header, capacity, &position, buffer.baseAddress! + offset, buffer.count - offset)
        }
    }

    /// True when the reader sleeps and must be woken (once: it is then taken as awake).
    func wakeReader() -> Bool { fw_ring_wake_reader(header) != 0 }

    /// Reads what has been written, up to `chunk`'s size; returns how many, and whether the writer waits for
    /// room and must be woken; nil when the writer's position is impossible.
    func read(into chunk: inout [UInt8]) -> (count: Int, wakeWriter: Bool)? {
        var wake: Int32 = 0
        let count = chunk.withUnsafeMutableBufferPointer { buffer in
            fw_ring_read(header, capacity, &position, buffer.baseAddress!, buffer.count, &wake)
        }
        return count < 0 ? nil : (count, wake != 0)
    }

    /// The reader says it is going to sleep; true when bytes came meanwhile (then ``readerAwake()`` and read).
    func readerSleeps() -> Bool { fw_ring_reader_sleeps(header, position) != 0 }

    /// The reader is awake: the writer need not wake it.
    func readerAwake() { fw_ring_reader_awake(header) }

    /// The writer says it is going to sleep until room frees; true when room freed meanwhile.
    func writerWaits() -> Bool { fw_ring_writer_waits(header, capacity, position) != 0 }

    /// The writer is awake: the reader need not wake it.
    func writerAwake() { fw_ring_writer_awake(header) }
}

/// The memory a supervisor shares with one worker process: a ring for its jobs and one for its results,
/// in one anonymous file the worker is handed as descriptor 3.
struct WorkerRings: Sendable {
    /// The environment variable that tells a worker the descriptor of its shared memory, when it has one.
    static let environmentKey = "FAIRWAY_SHARED_MEMORY_FD"
    /// The environment variable that, set to `off` in the supervisor's environment, keeps every worker on
    /// its pipes: for comparing the two, or for a system that refuses shared memory oddly.
    static let switchKey = "FAIRWAY_WORKER_SHARED_MEMORY"
    /// The descriptor a worker is handed its shared memory as.
    static let childDescriptor: Int32 = 3
    /// The bytes each ring holds: jobs and results are small, and larger ones go through in parts.
    static let standardCapacity = 256 << 10

    /// Supervisor → worker.
    let jobs: SharedByteRing
    /// Worker → supervisor.
    let results: SharedByteRing

    private init(memory: SharedMemory) {
        let half = memory.bytes / 2
        let capacity = half - Int(FW_RING_HEADER)
        jobs = SharedByteRing(memory: memory, offset: 0, capacity: capacity)
        results = SharedByteRing(memory: memory, offset: half, capacity: capacity)
    }

    /// New, empty rings, and the descriptor of their memory to hand to the worker (close it once the worker
    /// has it); nil when the system refuses.
    static func create(capacity: Int = standardCapacity) -> (rings: WorkerRings, descriptor: Int32)? {
        let descriptor = fw_memfd("fairway-worker")
        guard descriptor >= 0 else { return nil }
        let bytes = 2 * (Int(FW_RING_HEADER) + capacity)
        guard ftruncate(descriptor, off_t(bytes)) == 0, let memory = SharedMemory(descriptor, bytes: bytes) else {
            close(descriptor)
            return nil
        }
        return (WorkerRings(memory: memory), descriptor)
    }

    /// The rings a supervisor created, from the descriptor a worker was handed; nil when it is not such memory.
    static func attach(descriptor: Int32) -> WorkerRings? {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        let bytes = Int(status.st_size)
        guard bytes % 2 == 0, bytes / 2 > Int(FW_RING_HEADER),
            let memory = SharedMemory(descriptor, bytes: bytes)
        else { return nil }
        return WorkerRings(memory: memory)
    }
}

/// A shared mapping of a file, unmapped when the last ring using it goes.
private final class SharedMemory: @unchecked Sendable {
    // Unchecked Sendable: the mapping never changes; the rings in it say who touches what.
    let base: UnsafeMutableRawPointer
    let bytes: Int

    init?(_ descriptor: Int32, bytes: Int) {
        let base = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0)
        guard let base, base != MAP_FAILED else { return nil }
        self.base = base
        self.bytes = bytes
    }

    deinit { munmap(base, bytes) }
}

import Foundation
import NIOConcurrencyHelpers

/// Which jobs this process is running right now, kept in a small file mapped into memory, so that a crash
/// is charged to the jobs that were running when it happened and to no other.
///
/// A worker writes the job's key into a slot just before the handler runs and clears it when the handler
/// returns: a store into a shared mapping, no system call. The kernel owns those pages, so the record
/// outlives the death of the process (a trap, a segfault, `kill -9`, an OOM kill) without any `fsync`; it
/// does not outlive the machine (power loss, a kernel panic), where the last moments' records may be lost
/// and those jobs are run again uncharged.
///
/// The file is locked (`flock`) for as long as its process lives; the kernel drops the lock when the
/// process dies. A later process finds journals whose lock it can take (``orphans(withPrefix:)``): their
/// keys are the jobs that were running when their owner died.
public final class RunJournal: Sendable {
    /// A slot taken by ``begin(_:)``, given back to ``end(_:)``.
    public struct Mark: Sendable, Hashable {
        let slot: Int
        /// No journal: ``end(_:)`` does nothing with it.
        public static let none = Mark(slot: -1)
    }

    /// The journal of a process that ended: who owned it and which jobs it was running.
    public struct Orphan: Sendable {
        public let path: String
        /// The owner's identity, as given to ``init(prefix:owner:)``.
        public let owner: String
        /// Keys of the jobs running when the owner died.
        public let keys: [UInt64]
        fileprivate let descriptor: Int32
    }

    /// The journal file's mapping into memory.
    private struct Mapping: @unchecked Sendable {
        // Unchecked Sendable: the mapped pointer is only read or written while the lock around it is held.
        var descriptor: Int32
        var base: UnsafeMutableRawPointer?
        var capacity: Int
        var free: [Int]
    }

    public let path: String
    public let owner: String
    private let mapping: NIOLockedValueBox<Mapping>

    private static let magic: UInt64 = 0x3130_4E55_5257_4654  // "FTWRUN01" read as little-endian bytes
    private static let ownerCapacity = 240
    /// Magic, owner length, owner bytes; then the slots.
    private static let headerSize = 16 + ownerCapacity

    /// Creates the journal `<prefix><random>` and locks it for the life of the process.
    public init(prefix: String, owner: String, capacity: Int = 64) throws {
        let ownerBytes = Array(owner.utf8.prefix(Self.ownerCapacity))
        let name = prefix + UUID().uuidString.prefix(12).lowercased()
        // Made complete and locked under a temporary name, then renamed: a scan never sees it unlocked.
        let temporary = name + ".new"
        let descriptor = open(temporary, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw Self.error("cannot create", temporary) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let error = Self.error("cannot lock", temporary)
            close(descriptor)
            unlink(temporary)
            throw error
        }
        var header = [UInt8](repeating: 0, count: Self.headerSize)
        withUnsafeBytes(of: Self.magic.littleEndian) { header.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: UInt64(ownerBytes.count).littleEndian) { header.replaceSubrange(8..<16, with: $0) }
        header.replaceSubrange(16..<16 + ownerBytes.count, with: ownerBytes)
        let slots = max(8, capacity)
        guard pwrite(descriptor, header, header.count, 0) == header.count,
            ftruncate(descriptor, off_t(Self.headerSize + slots * 8)) == 0,
            let base = Self.map(descriptor, slots: slots),
            rename(temporary, name) == 0
        else {
            let error = Self.error("cannot set up", temporary)
            close(descriptor)
            unlink(temporary)
            throw error
        }
        self.path = name
        self.owner = owner
        self.mapping = NIOLockedValueBox(
            Mapping(descriptor: descriptor, base: base, capacity: slots, free: Array((0..<slots).reversed())))
    }

    deinit {
        mapping.withLockedValue { mapping in
            if let base = mapping.base { munmap(base, Self.headerSize + mapping.capacity * 8) }
            if mapping.descriptor >= 0 { close(mapping.descriptor) }
        }
    }

    /// Records that the job with `key` (never 0) is starting. Call right before its handler runs.
    public func begin(_ key: UInt64) -> Mark {
        mapping.withLockedValue { mapping in
            guard mapping.base != nil else { return .none }
            if mapping.free.isEmpty, !Self.grow(&mapping) { return .none }
            // Read after growing: a grown journal is mapped anew.
            guard let base = mapping.base else { return .none }
            let slot = mapping.free.removeLast()
            (base + Self.headerSize).storeBytes(of: key, toByteOffset: slot * 8, as: UInt64.self)
            return Mark(slot: slot)
        }
    }

    /// Records that the run marked `mark` ended (its handler returned, whatever the outcome).
    public func end(_ mark: Mark) {
        guard mark.slot >= 0 else { return }
        mapping.withLockedValue { mapping in
            guard let base = mapping.base, mark.slot < mapping.capacity else { return }
            (base + Self.headerSize).storeBytes(of: 0, toByteOffset: mark.slot * 8, as: UInt64.self)
            mapping.free.append(mark.slot)
        }
    }

    /// Jobs running now, by key: for tests and diagnostics.
    public var running: [UInt64] {
        mapping.withLockedValue { mapping in
            guard let base = mapping.base else { return [] }
            return (0..<mapping.capacity).compactMap { slot in
                let key = (base + Self.headerSize).load(fromByteOffset: slot * 8, as: UInt64.self)
                return key == 0 ? nil : key
            }
        }
    }

    /// Deletes the journal at a clean stop: nothing it records was a crash. Later calls do nothing.
    public func remove() {
        mapping.withLockedValue { mapping in
            guard mapping.descriptor >= 0 else { return }
            unlink(path)
            if let base = mapping.base { munmap(base, Self.headerSize + mapping.capacity * 8) }
            close(mapping.descriptor)
            mapping.base = nil
            mapping.descriptor = -1
            mapping.free = []
        }
    }

    // MARK: - Journals of processes that ended

    /// The journals named `<prefix>…` whose owners have died, each locked by this process until
    /// ``discard(_:)``. The caller charges their keys durably, then discards them; if it dies first, the
    /// next process finds them again.
    public static func orphans(withPrefix prefix: String) -> [Orphan] {
        var found: [Orphan] = []
        for path in journalPaths(withPrefix: prefix) {
            let descriptor = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
            guard descriptor >= 0 else { continue }
            // Locked: its owner lives. Unlinked after we opened it: another process took it already.
            var opened = stat()
            var current = stat()
            guard flock(descriptor, LOCK_EX | LOCK_NB) == 0, fstat(descriptor, &opened) == 0,
                stat(path, &current) == 0, opened.st_ino == current.st_ino, opened.st_dev == current.st_dev,
                let orphan = read(descriptor, path: path, size: Int(opened.st_size))
            else {
                close(descriptor)
                continue
            }
            found.append(orphan)
        }
        return found
    }

    /// The owners of every journal with this prefix that is still there, whoever holds it. A dead
    /// consumer whose journal remains is being charged by another process (which holds its lock), or will
    /// be by the next to look: its leases must not be freed without the charge in the meantime.
    public static func owners(withPrefix prefix: String) -> Set<String> {
        var owners: Set<String> = []
        for path in journalPaths(withPrefix: prefix) {
            let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard descriptor >= 0 else { continue }
            defer { close(descriptor) }
            var status = stat()
            guard fstat(descriptor, &status) == 0, let journal = read(descriptor, path: path, size: Int(status.st_size))
            else { continue }
            owners.insert(journal.owner)
        }
        return owners
    }

    /// The journal files with this prefix, in name order (not those still being written).
    private static func journalPaths(withPrefix prefix: String) -> [String] {
        let url = URL(fileURLWithPath: prefix)
        let directory = url.deletingLastPathComponent().path
        let stem = url.lastPathComponent
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.sorted().filter { $0.hasPrefix(stem) && !$0.hasSuffix(".new") }.map { directory + "/" + $0 }
    }

    /// Deletes an orphan once its keys were charged.
    public static func discard(_ orphan: Orphan) {
        unlink(orphan.path)
        close(orphan.descriptor)
    }

    /// Lets go of an orphan without deleting it (charging failed; a later process tries again).
    public static func keep(_ orphan: Orphan) {
        close(orphan.descriptor)
    }

    private static func read(_ descriptor: Int32, path: String, size: Int) -> Orphan? {
        guard size >= headerSize, size <= headerSize + 8 * (1 << 24) else { return nil }
        var bytes = [UInt8](repeating: 0, count: size)
        guard pread(descriptor, &bytes, size, 0) == size else { return nil }
        let (magic, ownerLength) = bytes.withUnsafeBytes {
            (
                UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)),
                UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            )
        }
        guard magic == Self.magic, ownerLength <= UInt64(ownerCapacity) else { return nil }
        let owner = String(decoding: bytes[16..<16 + Int(ownerLength)], as: UTF8.self)
        var keys: [UInt64] = []
        bytes.withUnsafeBytes { raw in
            var offset = headerSize
            while offset + 8 <= size {
                let key = raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                if key != 0 { keys.append(key) }
                offset += 8
            }
        }
        return Orphan(path: path, owner: owner, keys: keys, descriptor: descriptor)
    }

    // MARK: - Mapping

    private static func map(_ descriptor: Int32, slots: Int) -> UnsafeMutableRawPointer? {
        let base = mmap(nil, headerSize + slots * 8, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0)
        return base == MAP_FAILED ? nil : base
    }

    /// Doubles the slots when every one is taken (more jobs running than planned for, e.g. stuck threads).
    private static func grow(_ mapping: inout Mapping) -> Bool {
        let slots = mapping.capacity * 2
        guard ftruncate(mapping.descriptor, off_t(headerSize + slots * 8)) == 0,
            let base = map(mapping.descriptor, slots: slots)
        else { return false }
        if let old = mapping.base { munmap(old, headerSize + mapping.capacity * 8) }
        mapping.base = base
        mapping.free.append(contentsOf: (mapping.capacity..<slots).reversed())
        mapping.capacity = slots
        return true
    }

    private static func error(_ doing: String, _ path: String) -> any Error {
        let code = errno
        return NSError(
            domain: "fairway.journal", code: Int(code),
            userInfo: [
                NSLocalizedDescriptionKey: "\(doing) the run journal \(path): \(String(cString: strerror(code)))"
            ]
        )
    }
}

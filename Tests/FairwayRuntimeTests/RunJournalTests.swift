import FairwayRuntime
import Foundation
import Testing

/// The run journal: what a process is running, readable by the next process once the owner is gone.
@Suite("Run journal")
struct RunJournalTests {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fairway-journal-\(UUID())").path

    init() throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    var prefix: String { folder + "/q.db.running-" }

    @Test("begin and end record exactly the jobs running, beyond the initial slots")
    func records() throws {
        let journal = try RunJournal(prefix: prefix, owner: "host:1:abc", capacity: 8)
        defer { journal.remove() }
        let marks = (1...100).map { journal.begin(UInt64($0)) }
        #expect(Set(journal.running) == Set((1...100).map(UInt64.init)), "the journal grows past 8 slots")
        for mark in marks.prefix(60) { journal.end(mark) }
        #expect(Set(journal.running) == Set((61...100).map(UInt64.init)))
    }

    @Test("a live owner's journal is no orphan; a copy nobody holds is, with its owner and keys")
    func orphans() throws {
        let journal = try RunJournal(prefix: prefix, owner: "host:42:abc")
        defer { journal.remove() }
        _ = journal.begin(7)
        _ = journal.begin(9)
        #expect(RunJournal.orphans(withPrefix: prefix).isEmpty, "the owner holds its lock")
        // What a dead owner leaves: the same bytes, no lock.
        try FileManager.default.copyItem(atPath: journal.path, toPath: prefix + "dead")
        let found = RunJournal.orphans(withPrefix: prefix)
        #expect(found.count == 1)
        #expect(found.first?.owner == "host:42:abc")
        #expect(Set(found.first?.keys ?? []) == [7, 9])
        // While one process holds an orphan, no other gets it.
        #expect(RunJournal.orphans(withPrefix: prefix).isEmpty)
        found.forEach(RunJournal.discard)
        #expect(!FileManager.default.fileExists(atPath: prefix + "dead"))
        #expect(RunJournal.orphans(withPrefix: prefix).isEmpty)
    }

    @Test("a file that is not a journal is passed over, and a clean stop leaves nothing")
    func foreignFilesAndCleanStop() throws {
        try Data("not a journal".utf8).write(to: URL(fileURLWithPath: prefix + "junk"))
        #expect(RunJournal.orphans(withPrefix: prefix).isEmpty)
        let journal = try RunJournal(prefix: prefix, owner: "x")
        journal.remove()
        #expect(!FileManager.default.fileExists(atPath: journal.path))
        #expect(journal.begin(1) == .none, "a removed journal records nothing")
    }
}

import CSQLite
import Foundation
import Testing

@testable import FairwaySQLite

@Suite("WAL checkpointer")
struct WALCheckpointerTests {
    /// A writer whose commits grow the log by about 1,100 pages (4 KiB each), on a fresh file.
    private func writeBacklog(_ writer: SQLiteConnection) throws {
        try writer.execute("CREATE TABLE IF NOT EXISTS t(x BLOB)")
        let insert = try writer.prepare("INSERT INTO t(x) VALUES (zeroblob(3000))", persistent: true)
        for _ in 0..<12 {
            try writer.transaction {
                for _ in 0..<100 { try insert.execute() }
            }
        }
    }

    /// A fresh file in WAL mode and the connection that will write it.
    private func openWriter(in folder: TemporaryFolder) throws -> (String, SQLiteConnection) {
        let path = folder.path("q.db")
        let writer = try SQLiteConnection(path: path, mode: .readWriteCreate)
        try writer.execute("PRAGMA journal_mode = WAL")
        return (path, writer)
    }

    private func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }

    @Test("the log passing 1,000 pages is copied into the file by the checkpoint thread, not the writer")
    func checkpointsInTheBackground() async throws {
        let folder = TemporaryFolder()
        let (path, writer) = try openWriter(in: folder)
        let checkpointer = WALCheckpointer(path: path)
        try checkpointer.start(writer: writer)
        let before = fileSize(path)
        try writeBacklog(writer)
        // The writer is idle from here: only the checkpoint thread can grow the main file.
        var grown = false
        for _ in 0..<500 where !grown {
            try await Task.sleep(for: .milliseconds(10))
            grown = fileSize(path) > before + 1_000 * 4096
        }
        checkpointer.stop(writer: writer)
        #expect(grown, "the main file stayed at \(fileSize(path)) bytes: no checkpoint ran")
    }

    @Test("without it the same commits leave the file as it was (the test above would fail)")
    func nothingCheckpointsWithoutIt() async throws {
        let folder = TemporaryFolder()
        let (path, writer) = try openWriter(in: folder)
        sqlite3_wal_autocheckpoint(writer.handle, 0)
        let before = fileSize(path)
        try writeBacklog(writer)
        try await Task.sleep(for: .milliseconds(300))
        #expect(fileSize(path) < before + 1_000 * 4096)
    }

    @Test("stopped, it hands checkpoints back to the writer's own commits")
    func stopRestoresAutomaticCheckpoints() throws {
        let folder = TemporaryFolder()
        let (path, writer) = try openWriter(in: folder)
        let checkpointer = WALCheckpointer(path: path)
        try checkpointer.start(writer: writer)
        checkpointer.stop(writer: writer)
        let before = fileSize(path)
        try writeBacklog(writer)
        // SQLite's automatic checkpoint runs inside the commit that passes 1,000 pages: synchronously.
        #expect(fileSize(path) > before + 1_000 * 4096)
    }
}

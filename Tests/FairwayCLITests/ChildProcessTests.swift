import FairwayTestSupport
import Foundation
import Testing

/// The helper every process test starts its programs with: what those tests rely on it for.
@Suite("child processes started by the tests")
struct ChildProcessTests {
    @Test("stdout and stderr are read together: a megabyte on stderr does not stall the child, and its exit is kept")
    func bothStreamsRead() throws {
        let finished = try ChildProcess.run(
            "/bin/sh", ["-c", "head -c 1048576 /dev/zero >&2; printf out; exit 3"], environment: ["LC_ALL": "C"])
        #expect(finished.exit == .exited(3) && finished.exit.shellStatus == 3)
        #expect(finished.outputText == "out")
        #expect(finished.error.count == 1_048_576)
    }

    @Test("a child ended by a signal says which, and is no longer running once reaped")
    func endedBySignal() throws {
        let child = try ChildProcess("/bin/sleep", ["30"])
        #expect(child.isRunning && child.exit == nil)
        kill(child.pid, SIGKILL)
        #expect(child.waitUntilExit() == .signaled(SIGKILL))
        #expect(!child.isRunning && child.exit?.bySignal == true && child.exit?.shellStatus == 137)
    }

    @Test("a descriptor the test process holds open does not leak into the child; the child runs in its folder")
    func descriptorsClosedFolderSet() throws {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)  // not close-on-exec: only the child's own closing keeps it out
        defer { for end in ends { close(end) } }
        let folder = FileManager.default.temporaryDirectory.path
        let check = try ChildProcess.run(
            "/bin/sh", ["-c", "[ -e /proc/$$/fd/\(ends[1]) ] && echo leaked; [ -e /proc/$$/fd/0 ] && pwd"],
            directory: folder)
        #expect(check.outputText == folder + "\n")
    }

    @Test("a stdin pipe reaches the child, and a program that cannot start is an error naming it")
    func inputAndMissingProgram() throws {
        let child = try ChildProcess("/bin/cat", [], input: .pipe, output: .pipe)
        let input = try #require(child.input)
        input.write(Data("through the pipe".utf8))
        try input.close()
        #expect(String(decoding: try #require(child.output).readDataToEndOfFile(), as: UTF8.self) == "through the pipe")
        #expect(child.waitUntilExit() == .exited(0))
        #expect(throws: ChildProcess.SpawnError.self) { try ChildProcess("/no/such/program", []) }
        #expect(spawnAndWait("/no/such/program", []) == 127)
    }
}

import FairwayTestSupport
import Foundation
import Testing

/// `.ci/install` runs in a child shell, so it cannot change the PATH of the `swift run` that follows it in
/// the README's commands; it links `swift` where that PATH looks instead (`.ci/swift-on-path`).
@Suite("The README's install step")
struct InstallScriptTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".ci/swift-on-path").path

    @Test("a caller whose PATH has no swift gets it linked into a folder on that PATH, and it runs")
    func linksSwift() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fairway-path-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let callerPath = "\(folder):/usr/bin:/bin"
        let environment = "CALLER_PATH=\(callerPath) SWIFT_LINK_DIR=\(folder)"
        #expect(spawnAndWait("/bin/sh", ["-c", "PATH=\(callerPath) command -v swift"], quiet: true) != 0)
        #expect(spawnAndWait("/bin/sh", ["-c", "\(environment) bash \(Self.script)"], quiet: true) == 0)
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: "\(folder)/swift")
        #expect(link.hasSuffix("/usr/bin/swift"))
        #expect(spawnAndWait("/bin/sh", ["-c", "PATH=\(callerPath) swift --version"], quiet: true) == 0)
        // Run again with swift now on the PATH: nothing to do, the link left as it is.
        #expect(spawnAndWait("/bin/sh", ["-c", "\(environment) bash \(Self.script)"], quiet: true) == 0)
        #expect(FileManager.default.fileExists(atPath: "\(folder)/swift"))
    }

    @Test("a caller whose PATH has neither swift nor the link folder is told what to export")
    func saysWhatToExport() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fairway-path-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let output = "\(folder).out"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let status = spawnAndWait(
            "/bin/sh", ["-c", "CALLER_PATH=/usr/bin:/bin SWIFT_LINK_DIR=\(folder) bash \(Self.script) 2>\(output)"])
        #expect(status == 0)
        #expect(!FileManager.default.fileExists(atPath: "\(folder)/swift"))
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(text.contains("export PATH=/opt/swift/usr/bin:$PATH"), "\(text)")
    }
}

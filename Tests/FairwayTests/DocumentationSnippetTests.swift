import Foundation
import Testing

/// The Swift code blocks of README.md and docs/*.md are compiled code: each is preceded by
/// `<!-- snippet: NAME -->` and must equal, line for line after dedenting, the region of that name in
/// GettingStartedSnippets.swift (or in the example application's sources). A block without a marker, a
/// marker without a region, or a block that differs from its region fails here.
@Suite("Documentation snippets")
struct DocumentationSnippetTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The compiled files whose regions the documents may show.
    static var snippetFiles: [URL] {
        var files = [root.appendingPathComponent("Tests/FairwayTests/GettingStartedSnippets.swift")]
        let examples = root.appendingPathComponent("Examples")
        if let walker = FileManager.default.enumerator(at: examples, includingPropertiesForKeys: nil) {
            for case let url as URL in walker
            where url.pathExtension == "swift" && !url.path.contains("/.build") {
                files.append(url)
            }
        }
        return files
    }

    /// Every `// snippet: NAME` … `// end snippet` region of the files, dedented.
    static func regions() throws -> [String: [String]] {
        var regions: [String: [String]] = [:]
        for file in snippetFiles {
            var current: (name: String, lines: [String])?
            for line in try String(contentsOf: file, encoding: .utf8).components(separatedBy: "\n") {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix("// snippet: ") {
                    current = (String(trimmed.dropFirst("// snippet: ".count)), [])
                } else if trimmed == "// end snippet", let region = current {
                    regions[region.name] = dedent(region.lines)
                    current = nil
                } else if current != nil {
                    current!.lines.append(line)
                }
            }
        }
        return regions
    }

    static func dedent(_ lines: [String]) -> [String] {
        let indent =
            lines.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            .map { $0.prefix { $0 == " " }.count }.min() ?? 0
        return lines.map { String($0.dropFirst(min(indent, $0.prefix { $0 == " " }.count))) }
    }

    /// The Swift blocks of a Markdown document, each with the snippet name of the marker just above it.
    static func blocks(in document: URL) throws -> [(marker: String?, lines: [String], line: Int)] {
        var blocks: [(String?, [String], Int)] = []
        var previous = ""
        var open: (marker: String?, lines: [String], line: Int)?
        for (number, line) in try String(contentsOf: document, encoding: .utf8).components(separatedBy: "\n")
            .enumerated()
        {
            if var block = open {
                if line.trimmingCharacters(in: .whitespaces) == "```" {
                    blocks.append((block.marker, dedent(block.lines), block.line))
                    open = nil
                } else {
                    block.lines.append(line)
                    open = block
                }
            } else if line.trimmingCharacters(in: .whitespaces) == "```swift" {
                let marker = previous.trimmingCharacters(in: .whitespaces)
                let name =
                    marker.hasPrefix("<!-- snippet: ") && marker.hasSuffix(" -->")
                    ? String(marker.dropFirst("<!-- snippet: ".count).dropLast(" -->".count)) : nil
                open = (name, [], number + 1)
            }
            if !line.trimmingCharacters(in: .whitespaces).isEmpty { previous = line }
        }
        return blocks
    }

    static var documents: [URL] {
        let docs = root.appendingPathComponent("docs")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: docs.path)) ?? []
        return [root.appendingPathComponent("README.md")]
            + names.filter { $0.hasSuffix(".md") }.sorted().map { docs.appendingPathComponent($0) }
    }

    @Test("every Swift block in README.md and docs/ is a compiled snippet, word for word")
    func blocksMatchCompiledCode() throws {
        let regions = try Self.regions()
        #expect(regions.count >= 5, "the snippet file was found and read: \(regions.keys.sorted())")
        var checked = 0
        for document in Self.documents {
            for block in try Self.blocks(in: document) {
                let place = "\(document.lastPathComponent):\(block.line)"
                guard let name = block.marker else {
                    Issue.record("\(place): a Swift block without a `<!-- snippet: NAME -->` line above it")
                    continue
                }
                guard let region = regions[name] else {
                    Issue.record("\(place): no region '\(name)' in the compiled snippet files")
                    continue
                }
                #expect(block.lines == region, "\(place) differs from the compiled region '\(name)'")
                checked += 1
            }
        }
        #expect(checked >= 5, "the documents show the snippets (found \(checked))")
    }

    @Test("the checker catches a block that drifted from its region, and one without a marker")
    func checkerFailsOnDrift() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("snippets-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let document = folder.appendingPathComponent("doc.md")
        try """
        <!-- snippet: registry -->
        ```swift
        var registry = JobRegistry()
        ```

        ```swift
        print("no marker")
        ```
        """.write(to: document, atomically: true, encoding: .utf8)
        let blocks = try Self.blocks(in: document)
        #expect(blocks.map(\.marker) == ["registry", nil])
        #expect(blocks[0].lines != (try Self.regions())["registry"], "a one-line block is not the registry region")
    }
}

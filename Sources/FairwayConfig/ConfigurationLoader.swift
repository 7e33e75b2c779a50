import FairwayAMQP
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Yams

/// Reads and validates a Fairway YAML file. Every problem is reported as a ``ConfigError`` that names the
/// file, the field (`queues[3].weight`), its line, and what is wrong; unknown fields are errors too, so a
/// typo never silently falls back to a default.
public enum ConfigurationLoader {
    /// Reads the file at `path`.
    public static func load(
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> FairwayConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read as UTF-8 text" : "no such file"
            throw ConfigError(file: path, field: "", message: reason)
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().standardizedFileURL.path
        return try parse(yaml: text, file: path, folder: folder, environment: environment)
    }

    /// Parses YAML text; `file` is only used in errors. A worker `command` is started in `folder` (nil: the
    /// current directory), and its program must be there or on PATH.
    public static func parse(
        yaml: String,
        file: String = "<config>",
        folder: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> FairwayConfiguration {
        var reader = ConfigReader(file: file, folder: folder, environment: environment)
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch YamlError.duplicatedKeysInMapping(let duplicates, let context) {
            let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            throw ConfigError(
                file: file, field: "", line: context.mark.line, message: "field \(keys) given twice in one mapping")
        } catch let error as YamlError {
            throw ConfigError(file: file, field: "", message: "not valid YAML: \(Self.describe(error))")
        } catch {
            throw ConfigError(file: file, field: "", message: "not valid YAML: \(error)")
        }
        guard let root else {
            throw ConfigError(file: file, field: "", message: "the file is empty; it needs at least a 'queues' list")
        }
        return try reader.configuration(root)
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return "\(problem) at line \(mark.line), column \(mark.column)"
        default:
            return "\(error)"
        }
    }
}

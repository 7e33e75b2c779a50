import Foundation
import Logging

/// Keeps every message logged through it, for tests that check what an operator would read.
public struct CapturingLogHandler: LogHandler {
    public let sink: Messages
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public init(sink: Messages) { self.sink = sink }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let details = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        sink.append("\(event.level) \(event.message) \(details)")
    }

    /// The messages, in order.
    public final class Messages: Sendable {
        private let items = Shared<[String]>([])

        public init() {}

        func append(_ message: String) { items.update { $0.append(message) } }
        public var all: [String] { items.read() }
    }
}

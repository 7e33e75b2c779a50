/// A configuration file that cannot be used, with the file, the field and what is wrong with it.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file, as given.
    public var file: String
    /// The field's path, e.g. `queues[2].weight`; empty for the file as a whole.
    public var field: String
    /// The line in the file, when known.
    public var line: Int?
    public var message: String

    public init(file: String, field: String, line: Int? = nil, message: String) {
        self.file = file
        self.field = field
        self.line = line
        self.message = message
    }

    public var description: String {
        let location = line.map { "\(file):\($0)" } ?? file
        return field.isEmpty ? "\(location): \(message)" : "\(location): \(field): \(message)"
    }
}

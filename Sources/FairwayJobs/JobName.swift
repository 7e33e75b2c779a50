/// The name of a job type together with the type of its parameters, so that registering a handler and
/// enqueueing a job agree on both at compile time.
///
/// ```swift
/// struct SendEmail: Codable, Sendable { var to: String }
/// let sendEmail = JobName<SendEmail>("send-email")
/// registry.register(sendEmail) { parameters, context in ... }
/// ```
public struct JobName<Parameters: Codable & Sendable>: Sendable, Hashable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public var description: String { rawValue }
}

/// Parameters for job types that take none.
public struct NoParameters: Codable, Sendable, Hashable {
    public init() {}
}

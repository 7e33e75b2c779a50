import Foundation

/// How a job type runs: on its worker thread, blocking it if it must, or as an async function whose
/// continuations also run on that worker thread.
public enum JobBody: Sendable {
    case blocking(@Sendable (_ payload: [UInt8], _ context: JobContext) throws -> Void)
    case async(@Sendable (_ payload: [UInt8], _ context: JobContext) async throws -> Void)
}

/// The handlers of a program, by job type. Build it before the runtime starts; it is a value and does not
/// change while jobs run.
public struct JobRegistry: Sendable {
    private var bodies: [String: JobBody] = [:]

    public init() {}

    /// The registered job types, sorted.
    public var jobTypes: [String] { bodies.keys.sorted() }

    /// The body registered for a job type, if any.
    public func body(for jobType: String) -> JobBody? { bodies[jobType] }

    /// Registers a handler that may block its worker thread (a database call, a file, a sleep).
    public mutating func register<Parameters>(
        _ name: JobName<Parameters>,
        execute: @escaping @Sendable (Parameters, JobContext) throws -> Void
    ) {
        let type = name.rawValue
        bodies[type] = .blocking { payload, context in
            try execute(try Self.decode(Parameters.self, payload, jobType: type), context)
        }
    }

    /// Registers an async handler. It runs on a worker thread of the pool and keeps that worker until it ends.
    public mutating func register<Parameters>(
        _ name: JobName<Parameters>,
        executeAsync: @escaping @Sendable (Parameters, JobContext) async throws -> Void
    ) {
        let type = name.rawValue
        bodies[type] = .async { payload, context in
            try await executeAsync(try Self.decode(Parameters.self, payload, jobType: type), context)
        }
    }

    /// Registers a handler that receives the payload bytes undecoded.
    public mutating func register(rawJobType type: String, body: JobBody) {
        bodies[type] = body
    }

    static func decode<Parameters: Decodable>(_: Parameters.Type, _ payload: [UInt8], jobType: String) throws
        -> Parameters
    {
        let data = payload.isEmpty ? Data("{}".utf8) : Data(payload)
        guard !JSONNesting.isTooDeep(payload) else {
            throw JobError.undecodablePayload(
                jobType: jobType, detail: "arrays and objects nested deeper than \(JSONNesting.limit) levels")
        }
        do {
            return try JSONDecoder().decode(Parameters.self, from: data)
        } catch let error as DecodingError {
            throw JobError.undecodablePayload(jobType: jobType, detail: Self.describe(error))
        } catch {
            throw JobError.undecodablePayload(jobType: jobType, detail: "\(error)")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "payload" : keys.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return parent == "payload"
                ? "missing field '\(key.stringValue)'" : "\(parent): missing field '\(key.stringValue)'"
        case .typeMismatch(let type, let context):
            return "\(path(context)): expected \(type)"
        case .valueNotFound(let type, let context):
            return "\(path(context)): expected \(type), found null"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "not valid JSON" }
            return "\(path(context)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

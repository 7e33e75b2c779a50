import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import Foundation

/// A refused admin request: the HTTP status, the field at fault, and why.
public struct AdminError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var field: String?
    public var message: String

    public var description: String { field.map { "\($0): \(message)" } ?? message }

    /// `{"error": "...", "field": "..."}`
    var json: [UInt8] {
        var object: [String: String] = ["error": description]
        if let field { object["field"] = field }
        return Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }
}

/// The body of `PUT /queues/{name}`: any of weight, maxConcurrency, rate, burst. `null` removes a limit.
public enum QueueUpdate {
    static let fields: Set<String> = ["weight", "maxConcurrency", "rate", "burst"]

    /// Applies a JSON body to a queue's settings, or says which field is wrong. Nothing changes on error.
    public static func apply(_ body: [UInt8], to settings: QueueSettings) throws(AdminError) -> QueueSettings {
        guard !JSONNesting.isTooDeep(body),
            let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(body))
        else {
            throw AdminError(status: 400, field: nil, message: "the body must be a JSON object such as {\"weight\": 2}")
        }
        for key in object.keys where !fields.contains(key) {
            throw AdminError(
                status: 400, field: key, message: "unknown field; expected weight, maxConcurrency, rate or burst")
        }
        var updated = settings
        if let value = object["weight"] {
            guard let weight = number(value), weight > 0, weight <= 1_000_000 else {
                throw AdminError(
                    status: 400, field: "weight", message: "must be a number greater than 0 (at most 1000000)")
            }
            updated.weight = weight
        }
        if let value = object["maxConcurrency"] {
            if value == .null {
                updated.maxConcurrency = .max
            } else {
                guard let limit = number(value), limit >= 1, limit <= 1_000_000, limit == limit.rounded() else {
                    throw AdminError(
                        status: 400, field: "maxConcurrency",
                        message: "must be a whole number from 1, or null for no limit")
                }
                updated.maxConcurrency = Int(limit)
            }
        }
        if let value = object["rate"] {
            if value == .null {
                updated.rateLimit = nil
            } else {
                guard let rate = number(value), rate > 0, rate.isFinite else {
                    throw AdminError(
                        status: 400, field: "rate",
                        message: "must be a number of jobs per second greater than 0, or null for no limit")
                }
                updated.rateLimit = RateLimit(perSecond: rate, burst: settings.rateLimit?.burst)
            }
        }
        if let value = object["burst"] {
            guard let burst = number(value), burst >= 1, burst.isFinite else {
                throw AdminError(status: 400, field: "burst", message: "must be a number of at least 1")
            }
            guard let limit = updated.rateLimit else {
                throw AdminError(status: 400, field: "burst", message: "needs a rate")
            }
            updated.rateLimit = RateLimit(perSecond: limit.perSecond, burst: burst)
        }
        return updated
    }

    private static func number(_ value: JSONValue) -> Double? {
        if case .number(let number) = value { return number }
        return nil
    }

    /// A JSON value, told apart by kind (booleans are not numbers).
    enum JSONValue: Decodable, Equatable {
        case null
        case bool(Bool)
        case number(Double)
        case other

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let flag = try? container.decode(Bool.self) {
                self = .bool(flag)
            } else if let number = try? container.decode(Double.self) {
                self = .number(number)
            } else {
                self = .other
            }
        }
    }
}

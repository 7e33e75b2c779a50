import FairwayRuntime
import Foundation
import Hummingbird
import NIOCore

/// Dead letters over HTTP, for every source that keeps them (``DeadLetterInspecting``): list, group by
/// cause, requeue, delete. Reads are open like `/queues`; requeue and delete need the admin token, are
/// audited, and delete everything only when told `"all": true`.
extension FairwayHTTPServer {
    /// A requeue or delete: a filter, or `all`.
    struct DeadLetterAction: Codable {
        var queue: String?
        var type: String?
        var reason: String?
        var shape: String?
        var text: String?
        var ids: [String]?
        var all: Bool?

        var filter: DeadLetterFilter {
            DeadLetterFilter(queue: queue, type: type, reason: reason, shape: shape, text: text, ids: ids)
        }

        /// What is wrong with it, if anything: each text at most 1,000 characters, at most 10,000 ids, and
        /// an empty filter only with `all`.
        var problem: AdminError? {
            for (field, value) in [
                ("queue", queue), ("type", type), ("reason", reason), ("shape", shape), ("text", text),
            ]
            where (value?.count ?? 0) > 1_000 {
                return AdminError(status: 400, field: field, message: "\(field) is longer than 1,000 characters")
            }
            if let ids, ids.count > 10_000 {
                return AdminError(status: 400, field: "ids", message: "at most 10,000 ids at once, got \(ids.count)")
            }
            if filter == DeadLetterFilter() && all != true {
                return AdminError(
                    status: 400, field: nil,
                    message: "an empty filter means every dead letter: say \"all\": true, or narrow it")
            }
            return nil
        }

        var summary: String {
            let parts = [
                queue.map { "queue \($0)" }, type.map { "type \($0)" }, reason.map { "reason contains \"\($0)\"" },
                shape.map { "cause \"\($0)\"" }, text.map { "text \"\($0)\"" }, ids.map { "\($0.count) ids" },
            ].compactMap { $0 }
            return parts.isEmpty ? "all dead letters" : parts.joined(separator: ", ")
        }
    }

    var inspectors: [any DeadLetterInspecting] { sources.compactMap { $0 as? any DeadLetterInspecting } }

    func addDeadLetterRoutes(to router: Router<BasicRequestContext>) {
        router.get("/dead-letters") { [self] request, _ in
            let query = request.uri.queryParameters
            let filter = Self.filter { query.get($0) }
            let limit = min(max(query.get("limit").flatMap { Int($0) } ?? 50, 1), 500)
            let offset = max(query.get("offset").flatMap { Int($0) } ?? 0, 0)
            let inspectors = inspectors
            do {
                let letters = try await OwnThread.run("fairway-dead-letters") {
                    try inspectors.flatMap { try $0.deadLetters(matching: filter, limit: offset + limit, offset: 0) }
                        .sorted { ($0.diedAt ?? 0) > ($1.diedAt ?? 0) }
                }
                return Self.json(.ok, Array(letters.dropFirst(offset).prefix(limit)))
            } catch {
                return Self.error(AdminError(status: 500, field: nil, message: "cannot read dead letters: \(error)"))
            }
        }
        router.get("/dead-letters/groups") { [self] request, _ in
            let query = request.uri.queryParameters
            let filter = Self.filter { query.get($0) }
            let inspectors = inspectors
            do {
                let groups = try await OwnThread.run("fairway-dead-letters") {
                    try inspectors.flatMap { try $0.deadLetterGroups(matching: filter) }
                        .sorted { ($0.count, $1.queue) > ($1.count, $0.queue) }
                }
                return Self.json(.ok, groups)
            } catch {
                return Self.error(AdminError(status: 500, field: nil, message: "cannot read dead letters: \(error)"))
            }
        }
        router.post("/dead-letters/requeue") { [self] request, _ in
            try await deadLetterAction(request, action: "requeue") { try $0.requeueDeadLetters(matching: $1) }
        }
        router.post("/dead-letters/delete") { [self] request, _ in
            try await deadLetterAction(request, action: "delete") { try $0.deleteDeadLetters(matching: $1) }
        }
    }

    private func deadLetterAction(
        _ request: Request, action: String,
        _ apply: @escaping @Sendable (any DeadLetterInspecting, DeadLetterFilter) throws -> Int
    ) async throws -> Response {
        if let refusal = authorise(request) { return Self.error(refusal) }
        let bytes: [UInt8]
        do throws(AdminError) {
            bytes = try await body(of: request)
        } catch {
            return Self.error(error)
        }
        let parsed: DeadLetterAction
        do {
            parsed = try JSONDecoder().decode(DeadLetterAction.self, from: Data(bytes))
        } catch {
            return Self.error(
                AdminError(
                    status: 400, field: nil,
                    message: "expected a JSON object with queue, type, reason, shape, text, ids or all"))
        }
        if let problem = parsed.problem { return Self.error(problem) }
        let inspectors = inspectors
        let filter = parsed.filter
        let count: Int
        do {
            count = try await OwnThread.run("fairway-dead-letters") {
                try inspectors.reduce(0) { $0 + (try apply($1, filter)) }
            }
        } catch {
            return Self.error(AdminError(status: 500, field: nil, message: "cannot \(action): \(error)"))
        }
        audit.record(
            AuditEntry(
                actor: Self.actor(of: request), action: action, target: parsed.summary, before: nil,
                after: "\(count) dead letter\(count == 1 ? "" : "s") \(action == "requeue" ? "requeued" : "deleted")"))
        return Self.json(.ok, [action == "requeue" ? "requeued" : "deleted": count])
    }

    /// A filter from query parameters (`get` reads one): `queue`, `type`, `reason`, `shape`, `text`, `id`.
    static func filter(from get: (String) -> String?) -> DeadLetterFilter {
        func text(_ name: String) -> String? {
            guard let value = get(name), !value.isEmpty else { return nil }
            return String(value.prefix(1_000))
        }
        return DeadLetterFilter(
            queue: text("queue"), type: text("type"), reason: text("reason"), shape: text("shape"), text: text("text"),
            ids: text("id").map { [$0] })
    }
}

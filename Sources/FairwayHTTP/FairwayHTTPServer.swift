import FairwayRuntime
import FairwayScheduling
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// The HTTP surface of `fairway run`: `/metrics`, `/scale`, `/healthz`, `/readyz` and the admin API.
/// Binds to 127.0.0.1 unless told otherwise; state-changing calls need the admin token.
///
/// A ServiceLifecycle `Service`: it listens from `run()` until graceful shutdown, and answers through a
/// drain (readiness says 503 while the engine drains). Run it in the same group as its ``DepthSampler``.
public final class FairwayHTTPServer: Service, Sendable {
    public struct Settings: Sendable, Equatable {
        public var host = "127.0.0.1"
        /// 0 picks a free port (see ``port``).
        public var port = 9464
        /// Bearer token for admin calls; nil disables them (403).
        public var adminToken: String?
        public var scale = ScaleAdvisor.Settings()
        /// The largest request body accepted.
        public var maxBodyBytes = 64 * 1024
        /// `/metrics` exposes every per-queue series while there are at most this many queues, and a
        /// compact form beyond (docs/metrics.md).
        public var perQueueMetricsUpTo = 250
        /// How long `POST /drain` gives running jobs to finish: the process's drain timeout.
        public var drainTimeout: Duration = .seconds(30)

        public init() {}
    }

    /// Whether the server listens yet.
    enum Listening {
        case waiting([CheckedContinuation<Int?, Never>])
        case listening(port: Int)
        case ended
    }

    let engine: Engine
    let sources: [any JobSource]
    private let metrics: FairwayMetrics
    private let advisor: ScaleAdvisor
    /// The sampler whose depths `/metrics`, `/scale` and `/queues` report.
    public let sampler: DepthSampler
    let settings: Settings
    let logger: Logger
    private let listening = NIOLockedValueBox(Listening.waiting([]))
    /// Every change made through the admin API (and by reloads, which the caller records here).
    public let audit: AuditTrail
    /// The dashboard's rates and its last hour of chart points.
    public let history = DashboardHistory()

    public init(engine: Engine, sources: [any JobSource], metrics: FairwayMetrics, settings: Settings, logger: Logger) {
        self.engine = engine
        self.sources = sources
        self.metrics = metrics
        let advisor = ScaleAdvisor(settings: settings.scale)
        self.advisor = advisor
        let history = history
        self.sampler = DepthSampler(engine: engine, sources: sources) {
            _ = advisor.observe($0, depths: $1)
            history.observe($0, depths: $1)
        }
        self.settings = settings
        self.logger = logger
        self.audit = AuditTrail(logger: logger)
    }

    /// The port the server listens on; 0 until it does.
    public var port: Int {
        if case .listening(let port) = listening.withLockedValue({ $0 }) { return port }
        return 0
    }

    /// Waits until the server listens and returns its port; nil when it stopped (or failed) first.
    public func waitUntilListening() async -> Int? {
        await withCheckedContinuation { continuation in
            let now: Int?? = listening.withLockedValue { state in
                switch state {
                case .waiting(var waiters):
                    waiters.append(continuation)
                    state = .waiting(waiters)
                    return .none
                case .listening(let port): return .some(port)
                case .ended: return .some(nil)
                }
            }
            if case .some(let port) = now { continuation.resume(returning: port) }
        }
    }

    /// Serves until graceful shutdown. Throws ``HTTPServerError`` when the address cannot be bound.
    public func run() async throws {
        let router = Router()
        addRoutes(to: router)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "fairway"),
            onServerRunning: { [self] channel in
                settle(.listening(port: channel.localAddress?.port ?? settings.port))
            },
            logger: logger
        )
        defer { settle(.ended) }
        do {
            try await app.run()
        } catch {
            if port == 0 {
                throw HTTPServerError(host: settings.host, port: settings.port, reason: "\(error)")
            }
            throw error
        }
    }

    private func settle(_ next: Listening) {
        let waiters: [CheckedContinuation<Int?, Never>] = listening.withLockedValue { state in
            guard case .waiting(let waiters) = state else {
                if case .listening = state, case .ended = next { state = next }
                return []
            }
            state = next
            return waiters
        }
        let port: Int? = if case .listening(let port) = next { port } else { nil }
        for waiter in waiters { waiter.resume(returning: port) }
    }

    // MARK: - State

    /// The depths of the sampler's last sample; empty until its first.
    func depths() -> [String: QueueDepth] { sampler.depths }

    func connections() -> [String: Bool] {
        var states: [String: Bool] = [:]
        for source in sources {
            let up = (source as? any ConnectionReporting)?.isConnected ?? true
            states[source.name] = (states[source.name] ?? true) && up
        }
        return states
    }

    // MARK: - Routes

    private func addRoutes(to router: Router<BasicRequestContext>) {
        router.get("/metrics") { [self] _, _ in
            let body = metrics.exposition(snapshot: engine.snapshot(), depths: depths(), connected: connections())
            return Self.response(.ok, body, type: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/scale") { [self] _, _ in
            let signal = advisor.observe(engine.snapshot(), depths: depths())
            return Self.json(.ok, signal)
        }
        router.get("/healthz") { _, _ in
            Self.response(.ok, Array("ok\n".utf8), type: "text/plain; charset=utf-8")
        }
        router.get("/readyz") { [self] _, _ in
            let snapshot = engine.snapshot()
            if snapshot.draining {
                return Self.response(.serviceUnavailable, Array("not ready: draining\n".utf8), type: "text/plain")
            }
            if snapshot.starting {
                let text = "not ready: starting (setting up the sources' queues)\n"
                return Self.response(.serviceUnavailable, Array(text.utf8), type: "text/plain")
            }
            let down = connections().filter { !$0.value }.keys.sorted()
            if !down.isEmpty {
                let text = "not ready: source \(down.joined(separator: ", ")) disconnected\n"
                return Self.response(.serviceUnavailable, Array(text.utf8), type: "text/plain")
            }
            return Self.response(.ok, Array("ready\n".utf8), type: "text/plain")
        }
        router.get("/queues") { [self] _, _ in
            Self.json(.ok, queueList())
        }
        addDashboardRoutes(to: router)
        router.get("/audit") { [self] request, _ in
            let limit = request.uri.queryParameters.get("limit").flatMap { Int($0) } ?? 100
            return Self.json(.ok, audit.recent(limit: min(max(limit, 0), 1_000)))
        }
        router.post("/drain") { [self] request, _ in
            try await drain(request)
        }
        router.post("/queues/:name/pause") { [self] request, context in
            try await change(request, context, action: "pause") { (settings: inout QueueSettings) throws(AdminError) in
                settings.paused = true
            }
        }
        router.post("/queues/:name/resume") { [self] request, context in
            try await change(request, context, action: "resume") { (settings: inout QueueSettings) throws(AdminError) in
                settings.paused = false
            }
        }
        router.put("/queues/:name") { [self] request, context in
            let bytes: [UInt8]
            do throws(AdminError) {
                bytes = try await body(of: request)
            } catch {
                return Self.error(error)
            }
            return try await change(request, context, action: "set") {
                (settings: inout QueueSettings) throws(AdminError) in
                settings = try QueueUpdate.apply(bytes, to: settings)
            }
        }
    }

    /// Checks the token and the queue, then applies `edit` to the queue's settings and records the change.
    private func change(
        _ request: Request, _ context: BasicRequestContext, action: String,
        _ edit: (inout QueueSettings) throws(AdminError) -> Void
    ) async throws -> Response {
        if let refusal = authorise(request) { return Self.error(refusal) }
        let name = context.parameters.get("name") ?? ""
        guard var settings = engine.snapshot().queues.first(where: { $0.name == name })?.settings else {
            return Self.error(AdminError(status: 404, field: nil, message: "no queue named '\(name)'"))
        }
        let before = settings
        do {
            try edit(&settings)
        } catch {
            return Self.error(error)
        }
        try engine.updateQueue(named: name, settings: settings)
        audit.record(
            AuditEntry(
                actor: Self.actor(of: request), action: action, target: name, before: before.summary,
                after: settings.summary))
        return Self.json(
            .ok,
            QueueChange(
                queue: queueList().first { $0.name == name }, before: before.summary, after: settings.summary,
                lasts: QueueChange.lasts))
    }

    /// Who made an admin call, as its `X-Fairway-Actor` header says (untrusted: printable, at most 120
    /// characters), or "admin token" when it names no one.
    static func actor(of request: Request) -> String {
        guard let name = HTTPField.Name("X-Fairway-Actor"), let header = request.headers[name] else {
            return "admin token"
        }
        let printable = header.unicodeScalars.filter { $0.properties.generalCategory != .control }
        let text = String(String.UnicodeScalarView(printable.prefix(120))).trimmingCharacters(in: .whitespaces)
        return text.isEmpty ? "admin token" : text
    }

    /// An admin call's body, refused (413) past ``Settings/maxBodyBytes``.
    func body(of request: Request) async throws(AdminError) -> [UInt8] {
        var request = request
        do {
            return Array(buffer: try await request.collectBody(upTo: settings.maxBodyBytes))
        } catch {
            throw AdminError(status: 413, field: nil, message: "body larger than \(settings.maxBodyBytes) bytes")
        }
    }

    func authorise(_ request: Request) -> AdminError? {
        guard let token = settings.adminToken, !token.isEmpty else {
            return AdminError(
                status: 403, field: nil,
                message: "the admin API is disabled: set http.adminToken or FAIRWAY_ADMIN_TOKEN")
        }
        let header = request.headers[.authorization] ?? ""
        guard BearerToken.matches(header: header, token: token) else {
            return AdminError(status: 401, field: nil, message: "missing or wrong bearer token")
        }
        return nil
    }

    /// The answer to a change: the queue now, its settings before and after, and how long the change lasts.
    struct QueueChange: Codable {
        /// Admin changes live in this process only (docs/operations.md, "Live changes").
        static let lasts =
            "this process only, until it restarts or a reload changes the same field; "
            + "put it in the configuration file to keep it"
        var queue: QueueState?
        var before: String
        var after: String
        var lasts: String
    }

    /// One queue in `GET /queues`.
    struct QueueState: Codable {
        var name: String
        var group: String?
        var weight: Double
        var maxConcurrency: Int?
        var rate: Double?
        var burst: Double?
        var paused: Bool
        var ready: Int
        var held: Int
        var inFlight: Int
        var succeeded: Int
        var failed: Int
        var timedOut: Int
        var crashed: Int
        var deadLettered: Int
        /// Keys (tenants, or a pattern's queues) with jobs held or running; absent while none.
        var activeKeys: Int?
        /// Worker processes that could not start for the queue's jobs, in a row; absent while none.
        var failedWorkerStarts: Int?
        /// Seconds until the queue is tried again after its worker could not start; absent when it is not
        /// held off. Its jobs wait meanwhile, charged nothing.
        var heldOffSeconds: Double?
    }

    func queueList() -> [QueueState] {
        let depths = depths()
        return engine.snapshot().queues.map { queue in
            QueueState(
                name: queue.name, group: queue.group, weight: queue.settings.weight,
                maxConcurrency: queue.settings.maxConcurrency == .max ? nil : queue.settings.maxConcurrency,
                rate: queue.settings.rateLimit?.perSecond, burst: queue.settings.rateLimit?.burst,
                paused: queue.settings.paused, ready: depths[queue.name]?.ready ?? 0, held: queue.held,
                inFlight: queue.inFlight, succeeded: queue.succeeded, failed: queue.failed, timedOut: queue.timedOut,
                crashed: queue.crashed, deadLettered: queue.deadLettered,
                activeKeys: queue.activeKeys > 0 ? queue.activeKeys : nil,
                failedWorkerStarts: queue.failedWorkerStarts > 0 ? queue.failedWorkerStarts : nil,
                heldOffSeconds: queue.heldOffSeconds
            )
        }
    }

    // MARK: - Responses

    static func response(_ status: HTTPResponse.Status, _ bytes: [UInt8], type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let bytes = (try? encoder.encode(value)).map(Array.init) ?? Array("null".utf8)
        return response(status, bytes, type: "application/json")
    }

    static func error(_ error: AdminError) -> Response {
        response(HTTPResponse.Status(code: error.status), error.json, type: "application/json")
    }
}

/// The HTTP server could not listen where it was told to.
public struct HTTPServerError: Error, CustomStringConvertible {
    public let host: String
    public let port: Int
    public let reason: String
    public var description: String { "cannot serve HTTP on \(host):\(port): \(reason)" }
}

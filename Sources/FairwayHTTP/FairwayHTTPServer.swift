import FairwayRuntime
import FairwayScheduling
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The HTTP surface of `fairway run`: `/metrics`, `/scale`, `/healthz`, `/readyz` and the admin API.
/// Binds to 127.0.0.1 unless told otherwise; state-changing calls need the admin token.
public final class FairwayHTTPServer: @unchecked Sendable {
    public struct Settings: Sendable {
        public var host = "127.0.0.1"
        /// 0 picks a free port (see ``port``).
        public var port = 9464
        /// Bearer token for admin calls; nil disables them (403).
        public var adminToken: String?
        public var scale = ScaleAdvisor.Settings()
        /// The largest request body accepted.
        public var maxBodyBytes = 64 * 1024

        public init() {}
    }

    private let engine: Engine
    private let sources: [any JobSource]
    private let metrics: FairwayMetrics
    private let advisor: ScaleAdvisor
    private let settings: Settings
    private let logger: Logger
    private var task: Task<Void, any Error>?
    /// Set by ``stop()``; the sampler thread ends when it sees it.
    private var stopped = false
    private let samplerWake = MonotonicCondition()
    private let ready = DispatchSemaphore(value: 0)
    private let lock = NIOLock()
    private var boundPort = 0
    private var latestDepths: [String: QueueDepth] = [:]

    public init(engine: Engine, sources: [any JobSource], metrics: FairwayMetrics, settings: Settings, logger: Logger) {
        self.engine = engine
        self.sources = sources
        self.metrics = metrics
        self.advisor = ScaleAdvisor(settings: settings.scale)
        self.settings = settings
        self.logger = logger
    }

    /// The port the server listens on, once started.
    public var port: Int { lock.withLock { boundPort } }

    /// Starts listening; returns once the port is bound.
    public func start() throws {
        let router = Router()
        addRoutes(to: router)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "fairway"),
            onServerRunning: { [self] channel in
                lock.withLock { boundPort = channel.localAddress?.port ?? settings.port }
                ready.signal()
            },
            logger: logger
        )
        task = Task { try await app.run() }
        // Its own thread, not a task: asking a broker for 1,000 queues' depths blocks for a while, and the
        // cooperative pool that serves HTTP has one thread per core.
        let sampler = Thread { [self] in
            while !samplerWake.withLock({ stopped }) {
                _ = advisor.observe(engine.snapshot(), depths: sampleDepths())
                samplerWake.withLock {
                    if !stopped { samplerWake.wait(for: .seconds(1)) }
                }
            }
        }
        sampler.name = "fairway-depth-sampler"
        sampler.start()
        guard ready.wait(timeout: .now() + 10) == .success else {
            task?.cancel()
            throw AdminError(status: 500, field: nil, message: "cannot listen on \(settings.host):\(settings.port)")
        }
    }

    public func stop() {
        samplerWake.withLock {
            stopped = true
            samplerWake.broadcast()
        }
        task?.cancel()
    }

    // MARK: - State

    /// The depths of the last sample, taken by the sampler thread every second: a scrape never waits on a
    /// source (at 10,000 RabbitMQ queues one sample is 10,000 round trips to the broker). Empty until the
    /// first sample.
    func depths() -> [String: QueueDepth] {
        lock.withLock { latestDepths }
    }

    /// Asks every source for its depths now, and keeps the answer for ``depths()``.
    private func sampleDepths() -> [String: QueueDepth] {
        var merged: [String: QueueDepth] = [:]
        for case let source as any QueueDepthReporting in sources {
            for (queue, depth) in source.queueDepths() {
                let previous = merged[queue]
                merged[queue] = QueueDepth(
                    ready: (previous?.ready ?? 0) + depth.ready,
                    oldestAgeSeconds: [previous?.oldestAgeSeconds, depth.oldestAgeSeconds].compactMap { $0 }.max()
                )
            }
        }
        lock.withLock { latestDepths = merged }
        return merged
    }

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
        router.post("/queues/:name/pause") { [self] request, context in
            try await change(request, context) { (settings: inout QueueSettings) throws(AdminError) in
                settings.paused = true
            }
        }
        router.post("/queues/:name/resume") { [self] request, context in
            try await change(request, context) { (settings: inout QueueSettings) throws(AdminError) in
                settings.paused = false
            }
        }
        router.put("/queues/:name") { [self] request, context in
            var request = request
            let body: ByteBuffer
            do {
                body = try await request.collectBody(upTo: settings.maxBodyBytes)
            } catch {
                return Self.error(
                    AdminError(status: 413, field: nil, message: "body larger than \(settings.maxBodyBytes) bytes"))
            }
            let bytes = Array(buffer: body)
            return try await change(request, context) { (settings: inout QueueSettings) throws(AdminError) in
                settings = try QueueUpdate.apply(bytes, to: settings)
            }
        }
    }

    /// Checks the token and the queue, then applies `edit` to the queue's settings.
    private func change(
        _ request: Request, _ context: BasicRequestContext, _ edit: (inout QueueSettings) throws(AdminError) -> Void
    ) async throws -> Response {
        if let refusal = authorise(request) { return Self.error(refusal) }
        let name = context.parameters.get("name") ?? ""
        guard var settings = engine.snapshot().queues.first(where: { $0.name == name })?.settings else {
            return Self.error(AdminError(status: 404, field: nil, message: "no queue named '\(name)'"))
        }
        do {
            try edit(&settings)
        } catch {
            return Self.error(error)
        }
        try engine.updateQueue(named: name, settings: settings)
        logger.info("queue changed through the admin API", metadata: ["queue": "\(name)"])
        return Self.json(.ok, queueList().first { $0.name == name })
    }

    private func authorise(_ request: Request) -> AdminError? {
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

    /// One queue in `GET /queues`.
    struct QueueState: Codable {
        var name: String
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
    }

    func queueList() -> [QueueState] {
        let depths = depths()
        return engine.snapshot().queues.map { queue in
            QueueState(
                name: queue.name, weight: queue.settings.weight,
                maxConcurrency: queue.settings.maxConcurrency == .max ? nil : queue.settings.maxConcurrency,
                rate: queue.settings.rateLimit?.perSecond, burst: queue.settings.rateLimit?.burst,
                paused: queue.settings.paused, ready: depths[queue.name]?.ready ?? 0, held: queue.held,
                inFlight: queue.inFlight, succeeded: queue.succeeded, failed: queue.failed, timedOut: queue.timedOut,
                crashed: queue.crashed, deadLettered: queue.deadLettered
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

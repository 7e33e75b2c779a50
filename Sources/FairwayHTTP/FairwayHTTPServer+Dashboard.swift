import FairwayRuntime
import Foundation
import Hummingbird
import NIOCore

/// The dashboard: its page (`GET /dashboard`, one embedded file, no CDN), the state it polls
/// (`GET /dashboard/state`), and the dead letters of every source that keeps them.
extension FairwayHTTPServer {
    /// One queue's row.
    struct DashboardQueue: Codable {
        var name: String
        var weight: Double
        /// `running`, `idle`, `paused`, `at its cap` or `rate-limited`.
        var state: String
        var ready: Int
        var held: Int
        var inFlight: Int
        var oldestAgeSeconds: Double?
        var completedPerSecond: Double
        var failedPerSecond: Double
        var share: Double
        var ideal: Double
        var maxConcurrency: Int?
        var rate: Double?
        var deadLettered: Int
    }

    struct DashboardSource: Codable {
        var name: String
        var connected: Bool
    }

    struct DashboardPool: Codable {
        var workers: Int
        var busy: Int
        var stuck: Int
        var processesStarted: Int
        var processesIdle: Int
        var processesCrashed: Int
        var processesRecycled: Int
    }

    struct DashboardState: Codable {
        var draining: Bool
        var pool: DashboardPool
        var sources: [DashboardSource]
        var totalQueues: Int
        /// Queues matching the search, before paging.
        var matchingQueues: Int
        var queues: [DashboardQueue]
        var history: [DashboardHistory.Point]
        var adminEnabled: Bool
    }

    func addDashboardRoutes(to router: Router<BasicRequestContext>) {
        router.get("/dashboard") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.cacheControl] = "no-store"
            return Response(
                status: .ok, headers: headers,
                body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.dashboard_html)))
        }
        router.get("/dashboard/state") { [self] request, _ in
            let query = request.uri.queryParameters
            return Self.json(
                .ok,
                dashboardState(
                    search: query.get("search").map { String($0.prefix(200)) } ?? "",
                    sort: query.get("sort").map { String($0) } ?? "",
                    limit: query.get("limit").flatMap { Int($0) } ?? 50,
                    offset: query.get("offset").flatMap { Int($0) } ?? 0))
        }
        addDeadLetterRoutes(to: router)
    }

    func dashboardState(search: String, sort: String, limit: Int, offset: Int) -> DashboardState {
        let snapshot = engine.snapshot()
        let depths = depths()
        let rates = history.rates
        var rows: [DashboardQueue] = []
        for queue in snapshot.queues where search.isEmpty || queue.name.localizedCaseInsensitiveContains(search) {
            let rate = rates[queue.name] ?? DashboardHistory.QueueRates()
            let depth = depths[queue.name]
            let settings = queue.settings
            let state: String
            if settings.paused {
                state = "paused"
            } else if queue.heldOffSeconds != nil {
                state = "worker cannot start"
            } else if settings.maxConcurrency != .max && queue.inFlight >= settings.maxConcurrency {
                state = "at its cap"
            } else if let limit = settings.rateLimit, queue.held > 0,
                rate.completedPerSecond >= 0.9 * limit.perSecond
            {
                state = "rate-limited"
            } else if queue.inFlight > 0 || queue.held > 0 || (depth?.ready ?? 0) > 0 {
                state = "running"
            } else {
                state = "idle"
            }
            rows.append(
                DashboardQueue(
                    name: queue.name, weight: settings.weight, state: state, ready: depth?.ready ?? 0, held: queue.held,
                    inFlight: queue.inFlight, oldestAgeSeconds: depth?.oldestAgeSeconds,
                    completedPerSecond: rate.completedPerSecond, failedPerSecond: rate.failedPerSecond,
                    share: rate.share, ideal: rate.ideal,
                    maxConcurrency: settings.maxConcurrency == .max ? nil : settings.maxConcurrency,
                    rate: settings.rateLimit?.perSecond, deadLettered: queue.deadLettered))
        }
        switch sort {
        case "name": rows.sort { $0.name < $1.name }
        case "age": rows.sort { ($0.oldestAgeSeconds ?? 0, $1.name) > ($1.oldestAgeSeconds ?? 0, $0.name) }
        case "rate": rows.sort { ($0.completedPerSecond, $1.name) > ($1.completedPerSecond, $0.name) }
        case "failed": rows.sort { ($0.failedPerSecond, $1.name) > ($1.failedPerSecond, $0.name) }
        case "weight": rows.sort { ($0.weight, $1.name) > ($1.weight, $0.name) }
        case "config": break
        default: rows.sort { ($0.ready + $0.held + $0.inFlight, $1.name) > ($1.ready + $1.held + $1.inFlight, $0.name) }
        }
        let matching = rows.count
        let start = min(max(0, offset), rows.count)
        let page = Array(rows[start..<min(rows.count, start + min(max(1, limit), 500))])
        let processes = snapshot.workerProcesses
        return DashboardState(
            draining: snapshot.draining,
            pool: DashboardPool(
                workers: snapshot.workers, busy: snapshot.busyWorkers, stuck: snapshot.stuckWorkers,
                processesStarted: processes.started, processesIdle: processes.idle,
                processesCrashed: processes.crashed, processesRecycled: processes.recycled),
            sources: connections().sorted { $0.key < $1.key }.map {
                DashboardSource(name: $0.key, connected: $0.value)
            },
            totalQueues: snapshot.queues.count, matchingQueues: matching, queues: page, history: history.points,
            adminEnabled: !(settings.adminToken ?? "").isEmpty)
    }
}

import FairwayAMQP
import FairwayConfig
import FairwayHTTP
import FairwayJobs
import FairwayProcessWorkers
import FairwayRuntime
import FairwaySQLite
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Fairway as a ServiceLifecycle `Service`: the configured sources, the engine that runs an application's
/// handlers on them, and the HTTP surface (`/metrics`, `/scale`, health, admin). Run it in the
/// application's own `ServiceGroup`, beside a web server or anything else; `fairway run` is this service
/// and a signal handler.
///
/// ```swift
/// let fairway = try FairwayService(configurationPath: "fairway.yaml", registry: registry, logger: logger)
/// let group = ServiceGroup(services: [fairway], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await group.run()
/// ```
///
/// On graceful shutdown the engine stops taking jobs, lets running ones finish within the configuration's
/// `drainTimeout` while HTTP still answers (readiness 503), then HTTP stops. A cancelled group stops at once:
/// running jobs go back to their sources.
public final class FairwayService: Service, Sendable {
    /// The configuration the service started with.
    public let configuration: FairwayConfiguration
    /// The engine: its snapshot, live queue updates and pause/resume are the service's control surface.
    public let engine: Engine
    /// The sources, in the configuration's order.
    public let sources: [any JobSource]
    private let server: FairwayHTTPServer
    private let reloader: NIOLockedValueBox<LiveReload>
    private let logger: Logger

    /// Reads the YAML configuration file at `path` (relative source paths are relative to its folder) and
    /// opens its sources. Throws a `ConfigError` that names the field, or a ``SourceOpeningError``.
    public convenience init(
        configurationPath path: String, registry: JobRegistry, logger: Logger = Logger(label: "fairway")
    ) throws {
        try self.init(
            configuration: try ConfigurationLoader.load(path: path), registry: registry, configurationPath: path,
            logger: logger)
    }

    /// Opens the sources of `configuration`, whose handlers are the registry's. Nothing runs before ``run()``.
    ///
    /// - Parameter configurationPath: the file the configuration came from, if any: relative source paths
    ///   are resolved against its folder, and ``reload()`` reads it again.
    public init(
        configuration: FairwayConfiguration, registry: JobRegistry, configurationPath: String? = nil,
        logger: Logger = Logger(label: "fairway")
    ) throws {
        // A worker process of a process-isolated queue re-executes the program; if the program did not
        // serve it first thing in `main`, it would start a second consumer here. Say what to add instead.
        try Self.refuseInWorkerProcess(ProcessInfo.processInfo.environment)
        var logger = logger
        if let level = configuration.logLevel { logger.logLevel = level }
        let sources = try SourceFactory.makeSources(
            configuration, registry: registry, configurationPath: configurationPath, logger: logger)
        let metrics = FairwayMetrics(
            queueNames: configuration.queues.map(\.name), sourceNames: sources.map(\.name),
            fullDetailUpTo: configuration.http.perQueueMetricsUpTo)
        let engine = try Engine(
            configuration: configuration.engineConfiguration, registry: registry, sources: sources, observer: metrics,
            processIsolation: WorkerProcesses(), logger: logger)
        self.configuration = configuration
        self.engine = engine
        self.sources = sources
        var httpSettings = configuration.http
        httpSettings.drainTimeout = configuration.drainTimeout
        self.server = FairwayHTTPServer(
            engine: engine, sources: sources, metrics: metrics, settings: httpSettings, logger: logger)
        self.reloader = NIOLockedValueBox(
            LiveReload(
                path: configurationPath, running: configuration, engine: engine, audit: server.audit, logger: logger))
        self.logger = logger
    }

    /// Runs until the enclosing group shuts down: the depth sampler, the HTTP server, then the engine once
    /// HTTP listens (so that `/healthz` answers while a broker's queues are still being set up). Throws
    /// `HTTPServerError` when the HTTP address cannot be bound; no job is taken then.
    public func run() async throws {
        let server = server
        let configuration = configuration
        let logger = logger
        let engineService = EngineService(
            engine: engine, drainTimeout: configuration.drainTimeout,
            startAfter: {
                guard let port = await server.waitUntilListening() else { return false }
                logger.info("serving HTTP", metadata: ["http": "\(configuration.http.host):\(port)"])
                return true
            },
            started: {
                logger.info(
                    "fairway running",
                    metadata: [
                        "http": "\(configuration.http.host):\(server.port)",
                        "queues": "\(configuration.queues.count)", "workers": "\(configuration.workers)",
                        "cost": "\(configuration.cost.rawValue)", "sources": "\(configuration.sources.map(\.kind))",
                    ])
            },
            drained: { summary in
                logger.info(
                    "drained: \(summary.released) jobs released to their sources",
                    metadata: summary.logMetadata)
            }
        )
        // Shutdown runs in reverse order: the engine drains while HTTP still answers.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                // Named, not described: ServiceLifecycle otherwise names each by `"\(service)"`.
                services: [
                    .init(service: server.sampler, serviceName: "depth-sampler"),
                    .init(service: server, serviceName: "http"),
                    .init(service: engineService, serviceName: "engine"),
                ],
                logger: logger
            )
        )
        try await group.run()
    }

    static func refuseInWorkerProcess(_ environment: [String: String]) throws {
        guard !ProcessWorkerMain.isRequested(in: environment) else { throw FairwayServiceError.workerNotServed }
    }

    /// The HTTP port once the server listens (useful with port 0); nil if it could not.
    public func waitUntilListening() async -> Int? {
        await server.waitUntilListening()
    }

    /// Reads the configuration file again and applies what can change live: each queue's weight,
    /// concurrency cap, rate limit and pause. Logs every change, and what would need a restart. A file that
    /// became invalid changes nothing. Without a file, logs that nothing was reloaded.
    public func reload() {
        reloader.withLockedValue { $0.reload() }
    }

    /// Applies what can change live of `next`, as ``reload()`` does for a file.
    public func apply(_ next: FairwayConfiguration) {
        reloader.withLockedValue { $0.apply(next) }
    }

    /// Ends a drain now: running jobs are cancelled and released to their sources (a second SIGTERM).
    public func endDrainNow() {
        engine.endDrainNow()
    }

    /// A producer that enqueues into this service's first source: through the same SQLite file (its jobs
    /// wake the running service at once), or onto the same broker. The producer checks queues (and, for
    /// SQLite, job types) against what this service declared; it may be used before ``run()``.
    public func producer(checks: ProducerChecks = ProducerChecks()) -> any JobProducer {
        switch sources.first {
        case let sqlite as SQLiteSource:
            return SQLiteJobProducer(queue: sqlite.queue, checks: checks)
        default:
            guard case .amqp(let amqp) = configuration.sources.first else {
                preconditionFailure("a FairwayService always has a first source")
            }
            var options = AMQPJobProducer.Options(url: amqp.url)
            options.caCertificate = amqp.caCertificate
            options.queueType = amqp.queueType
            options.knownQueues = configuration.queues.map(\.name)
            // The service's own queues are known without asking the broker, and declared as its source
            // declares them: the application may enqueue before the source has finished declaring.
            options.onlyKnownQueues = true
            options.declareQueues = amqp.declare
            options.singleActiveConsumerQueues = Set(
                configuration.queues.filter { $0.globalConcurrency != nil }.map(\.name))
            return AMQPJobProducer(options: options)
        }
    }
}

/// A misuse of ``FairwayService`` that the service can name.
public enum FairwayServiceError: Error, CustomStringConvertible {
    /// The program was started as a worker process and built a service instead of serving jobs.
    case workerNotServed

    public var description: String {
        switch self {
        case .workerNotServed:
            return "this process was started as a Fairway worker process (FAIRWAY_PROCESS_WORKER=1) but built a"
                + " FairwayService: call ProcessWorkerMain.serveIfRequested(registry:) first thing in main"
        }
    }
}

import ArgumentParser
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

/// `fairway run --config PATH`: serve the configured queues until SIGINT or SIGTERM; SIGHUP reloads what
/// can change live (``LiveReload``).
///
/// The process is a `ServiceGroup` of four services, in this order: the signals, the depth sampler, the
/// HTTP server and the engine. All start together, except that the engine waits until HTTP listens, so
/// that `/healthz` and `/metrics` answer while a broker's thousand queues are still being set up (and
/// `/readyz` says "starting" until they are). Shutdown runs in reverse: the engine drains while HTTP
/// still answers (readiness 503), then HTTP stops, then the sampler and the signals.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Consume the configured queues until SIGINT or SIGTERM; SIGHUP reloads weights, limits and pauses."
    )

    @Option(name: .long, help: "The YAML configuration file.")
    var config: String = "config/fairway.yaml"

    func run() async throws {
        let settings: FairwayConfiguration
        do {
            settings = try ConfigurationLoader.load(path: config)
        } catch let error as ConfigError {
            printError("fairway: invalid configuration: \(error)")
            throw ExitCode(2)
        }
        let logger = Logger(label: "fairway")
        let sources = try SourceFactory.makeSources(settings, configPath: config, logger: logger)
        let metrics = FairwayMetrics(
            queueNames: settings.queues.map(\.name), sourceNames: sources.map(\.name),
            fullDetailUpTo: settings.http.perQueueMetricsUpTo
        )
        let engine = try Engine(
            configuration: settings.engineConfiguration,
            registry: FairwayCommand.registry,
            sources: sources,
            observer: metrics,
            processIsolation: WorkerProcesses(),
            logger: logger
        )
        let signals = await ProcessSignals.trap()
        let server = FairwayHTTPServer(
            engine: engine, sources: sources, metrics: metrics, settings: settings.http, logger: logger
        )
        let engineService = EngineService(
            engine: engine, drainTimeout: settings.drainTimeout,
            startAfter: {
                guard let port = await server.waitUntilListening() else { return false }
                logger.info("serving HTTP", metadata: ["http": "\(settings.http.host):\(port)"])
                return true
            },
            started: {
                logger.info(
                    "fairway running",
                    metadata: [
                        "http": "\(settings.http.host):\(server.port)",
                        "queues": "\(settings.queues.count)", "workers": "\(settings.workers)",
                        "cost": "\(settings.cost.rawValue)", "sources": "\(settings.sources.map(\.kind))",
                    ]
                )
            }
        )
        let group = NIOLockedValueBox<ServiceGroup?>(nil)
        let signalService = ProcessSignals(
            signals: signals, engine: engine,
            reload: LiveReload(path: config, running: settings, engine: engine, logger: logger),
            drainTimeout: settings.drainTimeout, logger: logger,
            shutDown: { await group.withLockedValue { $0 }?.triggerGracefulShutdown() }
        )
        let services = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                // Named, not described: ServiceLifecycle otherwise names each by `"\(service)"`, and the
                // signal service holds the whole configuration (0.4 s at 10,000 queues, measured).
                services: [
                    .init(service: signalService, serviceName: "signals"),
                    .init(service: server.sampler, serviceName: "depth-sampler"),
                    .init(service: server, serviceName: "http"),
                    .init(service: engineService, serviceName: "engine"),
                ],
                logger: logger
            )
        )
        group.withLockedValue { $0 = services }
        do {
            try await services.run()
        } catch let error as HTTPServerError {
            printError("fairway: \(error)")
            throw ExitCode(1)
        }
        logger.info("stopped")
    }
}

/// Turns the `sources` of a configuration into running sources.
enum SourceFactory {
    static func makeSources(_ settings: FairwayConfiguration, configPath: String, logger: Logger) throws
        -> [any JobSource]
    {
        guard !settings.sources.isEmpty else {
            printError("fairway: invalid configuration: \(configPath): sources: list at least one source")
            throw ExitCode(2)
        }
        let attempts = Dictionary(uniqueKeysWithValues: settings.queues.map { ($0.name, $0.retry.maxAttempts) })
        return try settings.sources.enumerated().map { index, source in
            switch source {
            case .sqlite(let path):
                let resolved = resolve(path, relativeTo: configPath)
                do {
                    let sqlite = try SQLiteSource(path: resolved, logger: logger)
                    sqlite.setMaxAttempts(attempts)
                    try sqlite.queue.setBacklogLimits(settings.backlogLimits)
                    return sqlite
                } catch let error as QueueFileError {
                    printError("fairway: sources[\(index)]: \(error)")
                    throw ExitCode(2)
                } catch {
                    printError("fairway: sources[\(index)]: \(error)")
                    throw ExitCode(1)
                }
            case .amqp(let amqp):
                do {
                    var options = AMQPSource.Options(url: amqp.url)
                    options.heartbeat = amqp.heartbeat
                    options.declare = amqp.declare
                    options.queueType = amqp.queueType
                    options.caCertificate = amqp.caCertificate
                    options.maxAttempts = attempts
                    options.attemptKey = amqp.attemptKey.map { Array($0.utf8) }
                    if let directory = amqp.stateDirectory {
                        let url = amqp.url
                        options.deliveryCounterPath =
                            URL(fileURLWithPath: directory)
                            .appendingPathComponent("fairway-amqp-deliveries-\(url.host)-\(url.port).db").path
                    }
                    return try AMQPSource(options: options, crashCounter: DeliveryCounter.init(path:), logger: logger)
                } catch {
                    printError("fairway: sources[\(index)]: \(error)")
                    throw ExitCode(2)
                }
            }
        }
    }

    /// A relative path in a configuration file is relative to the file's folder.
    static func resolve(_ path: String, relativeTo configPath: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        let folder = URL(fileURLWithPath: configPath).deletingLastPathComponent()
        return folder.appendingPathComponent(path).standardizedFileURL.path
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

import ArgumentParser
import FairwayAMQP
import FairwayConfig
import FairwayHTTP
import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import Foundation
import Logging
import NIOConcurrencyHelpers

/// `fairway run --config PATH`: serve the configured queues until SIGINT or SIGTERM; SIGHUP reloads what
/// can change live (``LiveReload``).
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Consume the configured queues until SIGINT or SIGTERM; SIGHUP reloads weights, limits and pauses."
    )

    @Option(name: .long, help: "The YAML configuration file.")
    var config: String = "config/fairway.yaml"

    func run() throws {
        let settings: FairwayConfiguration
        do {
            settings = try ConfigurationLoader.load(path: config)
        } catch let error as ConfigError {
            printError("fairway: invalid configuration: \(error)")
            throw ExitCode(2)
        }
        let logger = Logger(label: "fairway")
        let sources = try SourceFactory.makeSources(settings, configPath: config, logger: logger)
        let registry = FairwayCommand.registry
        let metrics = FairwayMetrics(
            queueNames: settings.queues.map(\.name), sourceNames: sources.map(\.name),
            fullDetailUpTo: settings.http.perQueueMetricsUpTo
        )
        let engine = try Engine(
            configuration: settings.engineConfiguration,
            registry: registry,
            sources: sources,
            observer: metrics,
            logger: logger
        )
        let signals = SignalWatcher(signals: [SIGINT, SIGTERM, SIGHUP])
        var httpSettings = FairwayHTTPServer.Settings()
        httpSettings.host = settings.http.host
        httpSettings.port = settings.http.port
        httpSettings.adminToken = settings.http.adminToken
        httpSettings.scale.targetLatency = settings.scale.targetLatency
        httpSettings.scale.targetUtilisation = settings.scale.utilisation
        let server = FairwayHTTPServer(
            engine: engine, sources: sources, metrics: metrics, settings: httpSettings, logger: logger
        )
        do {
            try server.start()
        } catch {
            printError("fairway: cannot serve HTTP on \(settings.http.host):\(settings.http.port): \(error)")
            engine.shutdown(drainTimeout: .zero)
            throw ExitCode(1)
        }
        logger.info("serving HTTP", metadata: ["http": "\(settings.http.host):\(server.port)"])
        // HTTP first: /healthz and /metrics answer while a broker's thousand queues are still being set
        // up, and /readyz says "starting" until they are.
        do {
            try engine.start()
        } catch {
            server.stop()
            throw error
        }
        logger.info(
            "fairway running",
            metadata: [
                "http": "\(settings.http.host):\(server.port)",
                "queues": "\(settings.queues.count)", "workers": "\(settings.workers)",
                "cost": "\(settings.cost.rawValue)", "sources": "\(settings.sources.map(\.kind))",
            ]
        )
        var reload = LiveReload(path: config, running: settings, engine: engine, logger: logger)
        var signal = signals.wait()
        while signal == SIGHUP {
            reload.reload()
            signal = signals.wait()
        }
        logger.info(
            "shutting down",
            metadata: ["signal": "\(signal)", "drainTimeout": "\(settings.drainTimeout.compactDescription)"]
        )
        // A second signal ends the drain early; running jobs are released back to their sources.
        let second = Thread {
            var again = signals.wait()
            while again == SIGHUP {
                logger.warning("SIGHUP while draining: nothing reloaded")
                again = signals.wait()
            }
            logger.warning("second signal: ending the drain now", metadata: ["signal": "\(again)"])
            engine.endDrainNow()
        }
        second.start()
        engine.shutdown(drainTimeout: settings.drainTimeout)
        server.stop()
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
                    var options = AMQPSource.Options(url: try AMQPURL(amqp.url))
                    options.heartbeat = amqp.heartbeat
                    options.declare = amqp.declare
                    options.queueType = AMQPSource.QueueType(rawValue: amqp.queueType) ?? .classic
                    options.caCertificate = amqp.caCertificate
                    options.maxAttempts = attempts
                    options.attemptKey = amqp.attemptKey.map { Array($0.utf8) }
                    if let directory = amqp.stateDirectory {
                        let url = try AMQPURL(amqp.url)
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

/// Blocks until one of the given signals arrives, without letting it kill the process. Signals are
/// returned in the order they came, none lost (a SIGHUP followed at once by a SIGTERM is both).
final class SignalWatcher: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let queue = DispatchQueue(label: "fairway.signals")
    private var sources: [any DispatchSourceSignal] = []
    private let received = NIOLockedValueBox<[Int32]>([])

    init(signals: [Int32]) {
        for number in signals {
            Foundation.signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [weak self] in
                guard let self else { return }
                self.received.withLockedValue { $0.append(number) }
                self.semaphore.signal()
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Waits for the next signal and returns its number.
    func wait() -> Int32 {
        semaphore.wait()
        return received.withLockedValue { $0.removeFirst() }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

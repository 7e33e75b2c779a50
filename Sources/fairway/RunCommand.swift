import ArgumentParser
import Fairway
import FairwayHTTP
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// `fairway run --config PATH`: serve the configured queues until SIGINT or SIGTERM; SIGHUP reloads what
/// can change live.
///
/// The process is the library's `FairwayService` (sources, engine, HTTP) with the built-in job types, in
/// a `ServiceGroup` after the signal handler, so that the signals are the last service told to stop and a
/// second signal during the drain still ends it.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Consume the configured queues until SIGINT or SIGTERM; SIGHUP reloads weights, limits and pauses."
    )

    @Option(name: .long, help: "The YAML configuration file.")
    var config: String = "config/fairway.yaml"

    @Option(
        name: .long, help: "trace, debug, info, notice, warning, error or critical; overrides logLevel: in the file.")
    var logLevel: LogLevelArgument?

    @Option(name: .long, help: "text or json (one JSON object a line); overrides logFormat: in the file.")
    var logFormat: LogFormatArgument?

    func run() async throws {
        var logger = Logger(label: "fairway")
        let fairway: FairwayService
        do {
            var configuration = try ConfigurationLoader.load(path: config)
            if let logLevel { configuration.logLevel = logLevel.level }
            if let logFormat { configuration.logFormat = logFormat.format }
            if configuration.logFormat == .json {
                LoggingSystem.bootstrap(JSONLogHandler.standardError, metadataProvider: nil)
                logger = Logger(label: "fairway")
            }
            if let level = configuration.logLevel { logger.logLevel = level }
            fairway = try FairwayService(
                configuration: configuration, registry: FairwayCommand.registry, configurationPath: config,
                logger: logger)
        } catch let error as ConfigError {
            printError("fairway: invalid configuration: \(error)")
            throw ExitCode(2)
        } catch let error as SourceOpeningError {
            printError(error.index == nil ? "fairway: invalid configuration: \(config): \(error)" : "fairway: \(error)")
            throw ExitCode(error.isConfigurationProblem ? 2 : 1)
        }
        let signals = await ProcessSignals.trap()
        let group = NIOLockedValueBox<ServiceGroup?>(nil)
        let signalService = ProcessSignals(
            signals: signals, fairway: fairway, drainTimeout: fairway.configuration.drainTimeout, logger: logger,
            shutDown: { await group.withLockedValue { $0 }?.triggerGracefulShutdown() }
        )
        let services = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                // Named, not described: ServiceLifecycle otherwise names each by `"\(service)"`, and the
                // signal service holds the whole configuration (0.4 s at 10,000 queues, measured).
                services: [
                    .init(service: signalService, serviceName: "signals"),
                    .init(service: fairway, serviceName: "fairway"),
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

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// A swift-log level as a command-line value (`--log-level debug`).
struct LogLevelArgument: ExpressibleByArgument {
    let level: Logger.Level

    init?(argument: String) {
        guard let level = Logger.Level(rawValue: argument) else { return nil }
        self.level = level
    }

    static var allValueStrings: [String] { Logger.Level.allCases.map(\.rawValue) }
}

/// `--log-format text|json`.
struct LogFormatArgument: ExpressibleByArgument {
    let format: LogFormat

    init?(argument: String) {
        guard let format = LogFormat(rawValue: argument) else { return nil }
        self.format = format
    }

    static var allValueStrings: [String] { LogFormat.allCases.map(\.rawValue) }
}

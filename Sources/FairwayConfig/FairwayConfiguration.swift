import FairwayAMQP
import FairwayHTTP
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Logging

/// A validated Fairway configuration file.
public struct FairwayConfiguration: Sendable, Equatable {
    /// Threads in the worker pool.
    public var workers: Int
    public var cost: CostMode
    /// Where the HTTP surface listens, its admin token, its metrics detail and the `/scale` targets.
    public var http: FairwayHTTPServer.Settings
    public var sources: [SourceSettings]
    /// Every queue, patterns expanded, defaults and overrides applied, in the order first named.
    public var queues: [QueueDefinition]
    /// The groups of queues (`groups:`), each competing as one by its weight.
    public var groups: [QueueGroup] = []
    /// How long running jobs get to finish at shutdown.
    public var drainTimeout: Duration
    /// Load shedding for SQLite sources: the queues with a maximum backlog, written into the queue file.
    public var backlogLimits: [String: BacklogLimit]
    /// The level of Fairway's log (`logLevel:`); nil leaves the logger it is given as it is.
    public var logLevel: Logger.Level?
    /// How `fairway run` writes its log (`logFormat:`): lines of text, or one JSON object a line. An
    /// embedding program bootstraps its own logging and ignores it.
    public var logFormat: LogFormat = .text

    public init(
        workers: Int,
        cost: CostMode = .count,
        http: FairwayHTTPServer.Settings = FairwayHTTPServer.Settings(),
        sources: [SourceSettings] = [],
        queues: [QueueDefinition],
        drainTimeout: Duration = .seconds(30),
        backlogLimits: [String: BacklogLimit] = [:]
    ) {
        self.backlogLimits = backlogLimits
        self.workers = workers
        self.cost = cost
        self.http = http
        self.sources = sources
        self.queues = queues
        self.drainTimeout = drainTimeout
    }

    /// How `/scale` turns load into a number of workers (the file's `scale:` section; kept with the HTTP
    /// settings, since `/scale` serves it).
    public var scale: ScaleAdvisor.Settings {
        get { http.scale }
        set { http.scale = newValue }
    }

    /// The engine configuration this file describes.
    public var engineConfiguration: EngineConfiguration {
        EngineConfiguration(workers: workers, costMode: cost, queues: queues, groups: groups)
    }
}

/// A place jobs come from.
public enum SourceSettings: Sendable, Equatable {
    /// The embedded queue: one SQLite file.
    case sqlite(path: String)
    /// A RabbitMQ broker.
    case amqp(AMQPSourceSettings)

    public var kind: String {
        switch self {
        case .sqlite: return "sqlite"
        case .amqp: return "amqp"
        }
    }
}

/// How to reach a RabbitMQ broker and treat its queues.
public struct AMQPSourceSettings: Sendable, Equatable {
    /// amqp:// or amqps://, with credentials (from the environment, best).
    public var url: AMQPURL
    /// The default credit (prefetch) of every queue.
    public var prefetch: Int?
    /// Heartbeat interval in seconds; 0 disables heartbeats.
    public var heartbeat: Int = 30
    /// Declare the queues (durable); when false they must already exist.
    public var declare: Bool = true
    /// `classic` or `quorum`, for declared queues. Quorum queues count redeliveries in the broker.
    public var queueType: AMQPSource.QueueType = .classic
    /// A PEM file of certificate authorities for amqps://.
    public var caCertificate: String?
    /// The key that signs the attempt counts of retries; nil derives one from the credentials.
    public var attemptKey: String?
    /// Where crashes of messages are counted (a volume that outlives the process); the temporary folder
    /// when nil.
    public var stateDirectory: String?

    public init(url: AMQPURL, prefetch: Int? = nil) {
        self.url = url
        self.prefetch = prefetch
    }
}

/// The shape of `fairway run`'s log lines.
public enum LogFormat: String, Sendable, CaseIterable {
    /// swift-log's own text lines.
    case text
    /// One JSON object a line: `time`, `level`, `label`, `message`, then each metadata field.
    case json
}

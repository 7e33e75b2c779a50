import FairwayRuntime
import FairwaySQLite
import FairwayScheduling

/// A validated Fairway configuration file.
public struct FairwayConfiguration: Sendable, Equatable {
    /// Threads in the worker pool.
    public var workers: Int
    public var cost: CostMode
    public var http: HTTPSettings
    public var sources: [SourceSettings]
    /// Every queue, patterns expanded, defaults and overrides applied, in the order first named.
    public var queues: [QueueDefinition]
    /// How long running jobs get to finish at shutdown.
    public var drainTimeout: Duration
    /// How `/scale` turns load into a number of workers.
    public var scale: ScaleSettings
    /// Load shedding for SQLite sources: the queues with a maximum backlog, written into the queue file.
    public var backlogLimits: [String: BacklogLimit]

    public init(
        workers: Int,
        cost: CostMode = .count,
        http: HTTPSettings = HTTPSettings(),
        sources: [SourceSettings] = [],
        queues: [QueueDefinition],
        drainTimeout: Duration = .seconds(30),
        scale: ScaleSettings = ScaleSettings(),
        backlogLimits: [String: BacklogLimit] = [:]
    ) {
        self.backlogLimits = backlogLimits
        self.scale = scale
        self.workers = workers
        self.cost = cost
        self.http = http
        self.sources = sources
        self.queues = queues
        self.drainTimeout = drainTimeout
    }

    /// The engine configuration this file describes.
    public var engineConfiguration: EngineConfiguration {
        EngineConfiguration(workers: workers, costMode: cost, queues: queues)
    }
}

/// Where the HTTP endpoint listens, and the token that guards its state-changing calls.
public struct HTTPSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Bearer token for admin calls; nil disables them.
    public var adminToken: String?
    /// `/metrics` exposes every per-queue series while there are at most this many queues, and a compact
    /// form beyond (docs/metrics.md).
    public var perQueueMetricsUpTo: Int

    public init(host: String = "127.0.0.1", port: Int = 9464, adminToken: String? = nil, perQueueMetricsUpTo: Int = 250)
    {
        self.host = host
        self.port = port
        self.adminToken = adminToken
        self.perQueueMetricsUpTo = perQueueMetricsUpTo
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
    public var url: String
    /// The default credit (prefetch) of every queue.
    public var prefetch: Int?
    /// Heartbeat interval in seconds; 0 disables heartbeats.
    public var heartbeat: Int = 30
    /// Declare the queues (durable); when false they must already exist.
    public var declare: Bool = true
    /// `classic` or `quorum`, for declared queues. Quorum queues count redeliveries in the broker.
    public var queueType: String = "classic"
    /// A PEM file of certificate authorities for amqps://.
    public var caCertificate: String?
    /// The key that signs the attempt counts of retries; nil derives one from the credentials.
    public var attemptKey: String?
    /// Where crashes of messages are counted (a volume that outlives the process); the temporary folder
    /// when nil.
    public var stateDirectory: String?

    public init(url: String, prefetch: Int? = nil) {
        self.url = url
        self.prefetch = prefetch
    }
}

/// The autoscaler signal's targets.
public struct ScaleSettings: Sendable, Equatable {
    /// How soon a backlog should be worked off.
    public var targetLatency: Duration = .seconds(30)
    /// The share of worker time to aim for when keeping up with arrivals.
    public var utilisation: Double = 0.8

    public init() {}
}

import FairwayScheduling
import Foundation

/// How the engine runs: pool size, how service is measured, and the queues it serves.
public struct EngineConfiguration: Sendable {
    /// Worker threads in the pool.
    public var workers: Int
    public var costMode: CostMode
    public var queues: [QueueDefinition]
    /// The groups queues may belong to (``QueueDefinition/group`` names one).
    public var groups: [QueueGroup]
    /// The most extra threads started to stand in for workers stuck in handlers past their timeout.
    /// Beyond it, a stuck handler costs the pool a worker until it returns.
    public var maxReplacementWorkers: Int

    public init(
        workers: Int = ProcessInfo.processInfo.activeProcessorCount,
        costMode: CostMode = .count,
        queues: [QueueDefinition],
        groups: [QueueGroup] = [],
        maxReplacementWorkers: Int? = nil
    ) {
        self.workers = max(1, workers)
        self.costMode = costMode
        self.queues = queues
        self.groups = groups
        self.maxReplacementWorkers = maxReplacementWorkers ?? max(1, workers)
    }
}

/// Errors the engine reports to its owner.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    case duplicateQueue(String)
    case unknownQueue(String)
    case alreadyStarted
    case sourceFailed(source: String, reason: String)
    /// A queue runs its jobs in worker processes, and the engine was given no ``ProcessIsolation``.
    case noProcessIsolation(queue: String)
    /// A queue names a group the configuration does not define, or a group is defined twice.
    case unknownGroup(queue: String, group: String)
    case duplicateGroup(String)

    public var description: String {
        switch self {
        case .duplicateQueue(let name): return "queue '\(name)' is defined twice"
        case .unknownQueue(let name): return "no queue named '\(name)'"
        case .alreadyStarted: return "the engine was already started"
        case .sourceFailed(let source, let reason): return "source '\(source)' failed to start: \(reason)"
        case .noProcessIsolation(let queue):
            return "queue '\(queue)' runs in worker processes, and the engine was given no process isolation "
                + "(pass WorkerProcesses() from FairwayProcessWorkers)"
        case .unknownGroup(let queue, let group): return "queue '\(queue)' names group '\(group)', which is not defined"
        case .duplicateGroup(let name): return "group '\(name)' is defined twice"
        }
    }
}

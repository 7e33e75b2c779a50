import ArgumentParser
import FairwayJobs
import FairwayProcessWorkers

/// The `fairway` executable.
@main
struct FairwayCommand: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "fairway",
        abstract: "A push-based job consumer that shares workers fairly across many queues.",
        version: version,
        subcommands: [
            RunCommand.self, DemoCommand.self, EnqueueCommand.self, StatsCommand.self, DeadLetterCommand.self,
            QueuesCommand.self, PauseCommand.self, ResumeCommand.self, SetCommand.self, DrainCommand.self,
            ReloadCommand.self,
            WorkerCommand.self,
        ]
    )

    /// The job types this program runs, in its threads and in its worker processes alike.
    static var registry: JobRegistry {
        var registry = JobRegistry()
        BuiltinJobs.register(in: &registry)
        return registry
    }

    static func main() async {
        // Re-executed as the worker process of a process-isolated queue: serve jobs, never parse arguments.
        ProcessWorkerMain.serveIfRequested(registry: registry)
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

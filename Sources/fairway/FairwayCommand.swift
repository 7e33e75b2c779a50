import ArgumentParser
import FairwayJobs
import FairwayProcessWorkers

/// The `fairway` executable.
@main
struct FairwayCommand: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "fairway",
        abstract: "A push-based job consumer that shares workers fairly across many queues.",
        version: version,
        subcommands: [
            RunCommand.self, DemoCommand.self, EnqueueCommand.self, StatsCommand.self, DeadLetterCommand.self,
            QueuesCommand.self, PauseCommand.self, ResumeCommand.self, SetCommand.self, ReloadCommand.self,
        ]
    )

    /// The job types this program runs, in its threads and in its worker processes alike.
    static var registry: JobRegistry {
        var registry = JobRegistry()
        BuiltinJobs.register(in: &registry)
        return registry
    }

    static func main() {
        // Re-executed as the worker process of a process-isolated queue: serve jobs, never parse arguments.
        ProcessWorkerMain.serveIfRequested(registry: registry)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

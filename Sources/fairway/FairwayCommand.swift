import ArgumentParser

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
            QueuesCommand.self, PauseCommand.self, ResumeCommand.self, SetCommand.self,
        ]
    )
}

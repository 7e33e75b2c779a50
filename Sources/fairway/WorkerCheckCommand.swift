import ArgumentParser
import FairwayProcessWorkers
import Foundation

/// `fairway worker check -- CMD…` (or `--command CMD…`): a worker program through every protocol case, with
/// what passed.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Tools for worker programs in other languages.",
        subcommands: [WorkerCheckCommand.self])
}

struct WorkerCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Run a worker program through every case of the worker protocol and say what passed.",
        discussion: """
            The worker must handle the conformance job types the bundled libraries' examples have: sleep \
            {"ms": N}, fail and reject {"message": "…"}, crash (exits 3) and echo-size (rejects with \
            "size N"). Exit status 0 when every case passed, 1 otherwise.
            """)

    @Argument(
        parsing: .captureForPassthrough,
        help: "The worker's program and arguments, after -- (or after --command).")
    var command: [String]

    func run() throws {
        let command = try Self.workerCommand(command)
        let results = WorkerConformance.check(command: command)
        for result in results {
            print(result.passed ? "pass  \(result.name)" : "FAIL  \(result.name): \(result.problem!)")
        }
        let failed = results.filter { !$0.passed }.count
        print(failed == 0 ? "all \(results.count) cases passed" : "\(failed) of \(results.count) cases failed")
        if failed > 0 { throw ExitCode(1) }
    }

    /// The worker's command from the arguments after `check`: what follows `--` or `--command`. Every
    /// argument is passed through to the worker, so the options this command knows are picked out here,
    /// and anything else that looks like an option is refused rather than run as a program.
    static func workerCommand(_ arguments: [String]) throws -> [String] {
        var command = arguments
        switch command.first {
        case "-h", "--help":
            throw CleanExit.helpRequest(self)
        case "--command":
            command.removeFirst()
            if command.first == "--" { command.removeFirst() }
        case "--":
            command.removeFirst()
        case let option? where option.hasPrefix("-"):
            throw ValidationError(
                "unknown option '\(option)': give the worker's command after --, as in "
                    + "fairway worker check -- php worker.php")
        default:
            break
        }
        guard !command.isEmpty else {
            throw ValidationError("give the worker's command after --, as in fairway worker check -- php worker.php")
        }
        return command
    }
}

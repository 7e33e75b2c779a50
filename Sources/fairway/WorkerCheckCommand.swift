import ArgumentParser
import FairwayProcessWorkers
import Foundation

/// `fairway worker check -- CMD…`: a worker program through every protocol case, with what passed.
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

    @Argument(parsing: .captureForPassthrough, help: "The worker's program and arguments, after --.")
    var command: [String]

    func run() throws {
        let command = command.first == "--" ? Array(command.dropFirst()) : command
        guard !command.isEmpty else { throw ValidationError("give the worker's command after --") }
        let results = WorkerConformance.check(command: command)
        for result in results {
            print(result.passed ? "pass  \(result.name)" : "FAIL  \(result.name): \(result.problem!)")
        }
        let failed = results.filter { !$0.passed }.count
        print(failed == 0 ? "all \(results.count) cases passed" : "\(failed) of \(results.count) cases failed")
        if failed > 0 { throw ExitCode(1) }
    }
}

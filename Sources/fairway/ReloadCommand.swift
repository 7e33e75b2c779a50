import ArgumentParser
import FairwayConfig
import Foundation

/// `fairway reload --pid PID --config PATH`: checks the file first, then asks the running process to
/// reload it (SIGHUP). An invalid file is refused here with the field named and a non-zero exit, and the
/// running process is not disturbed, the way `nginx -s reload` checks before it signals.
struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Check a configuration file, then make a running `fairway run` reload it (SIGHUP)."
    )

    @Option(name: .long, help: "The process id of the running `fairway run`.")
    var pid: Int32

    @Option(name: .long, help: "The configuration file that process was started with.")
    var config: String = "config/fairway.yaml"

    func run() throws {
        do {
            _ = try ConfigurationLoader.load(path: config)
        } catch {
            printError("fairway: not reloaded, the file is invalid: \(error)")
            throw ExitCode(2)
        }
        guard kill(pid, SIGHUP) == 0 else {
            printError("fairway: cannot signal process \(pid): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        print("asked process \(pid) to reload \(config); it logs each change it applied")
    }
}

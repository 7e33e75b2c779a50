import ArgumentParser
import FairwayScheduling
import Foundation

/// `fairway demo`: 120 queues in four weight tiers, run for a few seconds, then how fair it was.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract:
            "Run 120 backlogged queues in four weight tiers (30 queues each of weight 8, 4, 2, 1) and report the shares.",
        discussion: """
            Every queue is kept backlogged with `sleep` jobs of mixed lengths (0.25 to 2 ms typical, ±50%), \
            held in a temporary SQLite queue file (or in memory with --store memory). \
            In time mode (the default) queues share worker-seconds by weight; in count mode, jobs. \
            The tiers get 8:4:2:1 of the pool (53.3, 26.7, 13.3 and 6.7 %), and a single queue \
            its weight over the sum of all weights.
            """
    )

    @Option(help: "How long to run, in seconds.")
    var seconds: Double = 10

    @Option(help: "Worker threads.")
    var workers: Int = 8

    @Option(help: "How service is measured: time (worker-seconds) or count (jobs).")
    var cost: String = "time"

    @Option(help: "Where the jobs live: sqlite (a temporary queue file, the default) or memory.")
    var store: DemoStore = .sqlite

    @Flag(help: "Print the summary as one JSON object, and no progress.")
    var json = false

    func validate() throws {
        guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be between 0 and 3600") }
        guard (1...1024).contains(workers) else { throw ValidationError("--workers must be between 1 and 1024") }
        guard CostMode(rawValue: cost) != nil else { throw ValidationError("--cost must be time or count") }
    }

    func run() throws {
        let progress = json ? nil : DemoProgress(terminal: isatty(STDOUT_FILENO) == 1)
        let demo = Demo(
            seconds: seconds, workers: workers, cost: CostMode(rawValue: cost)!, store: store, progress: progress
        )
        let summary = try demo.run()
        print(json ? summary.json() : summary.text())
    }
}

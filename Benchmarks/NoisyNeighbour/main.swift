import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Logging
import NIOConcurrencyHelpers

// The noisy neighbour (issue 15), end to end on a real queue file: an engine embedded as a Swift team would
// embed it, 4 workers, 2 ms jobs; producers write through their own connections to the file, as other
// processes would. One tenant enqueues 100,000 jobs at once while 999 quiet tenants each enqueue a job
// every 2–4 s; the quiet tenants' wait (enqueue to start) is measured with the flood and without it, for
// tenants as keys of one queue, as queues admitted by a pattern, and, as the control, as plain jobs of one
// queue. A last run puts the tenants in a group beside a paid group and a system queue, all backlogged,
// and measures each one's share of the starts against its ideal.
//
//   FAIRWAY_BENCHMARKS=1 swift run -c release --scratch-path .build-benchmarks NoisyNeighbour [seconds]
//   … NoisyNeighbour scale      (100,000 tenants in waves, then the restart below)
//   … NoisyNeighbour restart    (a restart against 10,000 tenants' backlog, alone)

if CommandLine.arguments.dropFirst().first == "scale" {
    try runScale()
    try runRestart()
    exit(0)
}
if CommandLine.arguments.dropFirst().first == "restart" {
    try runRestart()
    exit(0)
}

let seconds = CommandLine.arguments.count > 1 ? Double(CommandLine.arguments[1]) ?? 20 : 20
print("noisy neighbour: 4 workers, 2 ms jobs, 999 quiet tenants (a job each every 2-4 s), flood 100,000")
print("measured \(seconds) s after the flood is enqueued (3 s of quiet traffic before)\n")
print("quiet wait: from the enqueue's commit to the start; from the call: from the producer's enqueue call,")
print("which adds its wait for the file's write lock (the flood's one 100,000-job transaction holds it)\n")
print("steady p99: jobs enqueued from 1 s after the flood's enqueue on\n")
print(
    "| tenants as | flood | quiet jobs | quiet wait p50 | p99 | max | steady p99 | from the call: p99 | max | flood jobs/s | most active keys |"
)
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
var byLayout: [Layout: (Double, Double)] = [:]
var steadyByLayout: [Layout: (Double, Double)] = [:]
for layout in [Layout.keys, .pattern, .plain] {
    for (flood, chunk) in [(false, 100_000), (true, 100_000), (true, 1000)]
    where !(layout == .plain && (!flood || chunk < 100_000)) {
        let result = try run(Scenario(layout: layout, flood: flood, floodChunk: chunk, seconds: seconds))
        let waits = result.quietWaits
        let p50 = percentile(waits, 0.5) * 1000
        let p99 = percentile(waits, 0.99) * 1000
        let most = (waits.last ?? .nan) * 1000
        let callP99 = percentile(result.quietWaitsFromCall, 0.99) * 1000
        let callMost = (result.quietWaitsFromCall.last ?? .nan) * 1000
        let steadyP99 = percentile(result.quietWaitsSteady, 0.99) * 1000
        print(
            String(
                format: "| %@ | %@ | %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.0f | %d |",
                layout.rawValue, flood ? (chunk < 100_000 ? "yes, \(chunk) a call" : "yes, one call") : "no",
                waits.count, p50, p99, most, steadyP99, callP99, callMost,
                Double(result.floodDone) / result.seconds, result.activeKeysMost))
        if flood && chunk < 100_000 {
        } else if flood {
            byLayout[layout, default: (0, 0)].1 = p99
            steadyByLayout[layout, default: (0, 0)].1 = steadyP99
        } else {
            byLayout[layout, default: (0, 0)].0 = p99
            steadyByLayout[layout, default: (0, 0)].0 = steadyP99
        }
    }
}
print("")
for layout in [Layout.keys, .pattern] {
    let (without, with) = byLayout[layout]!
    let (steadyWithout, steadyWith) = steadyByLayout[layout]!
    print(
        String(
            format: "%@: quiet p99 with the flood / without = %.2f, steady %.2f (target <= 2)", layout.rawValue,
            with / without, steadyWith / steadyWithout))
}
print("\ngroups, all backlogged, \(seconds) s (the first second left out):\n")
print("| | share of starts | ideal | off by |")
print("| --- | ---: | ---: | ---: |")
for (name, share, ideal) in try runGroups(seconds: seconds) {
    print(
        String(format: "| %@ | %.1f %% | %.1f %% | %+.1f pp |", name, share * 100, ideal * 100, (share - ideal) * 100))
}

import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

/// Groups of queues in a running `fairway run` on a real SQLite file: the issue's own configuration, with
/// the free group's 200 tenant queues and the paid group's 20 all backlogged beside `system`.
@Suite("groups of queues on SQLite", .serialized, .loadsMachine, .timeLimit(.minutes(10)))
struct GroupSharesProcessTests {
    @Test("system 8, free 1 (200 queues), paid 4 (20 queues): shares within 2 points of 8/13, 1/13, 4/13")
    func groupShares() throws {
        let folder = TestFolder()
        let runs = folder.path("runs.log")
        let file = try SQLiteQueue(path: folder.path("q.db"))
        // Enough 2 ms jobs that nothing runs dry in the measured seconds on two workers: the system queue
        // gets 8/13 of about 900 jobs a second; each free tenant gets 1/2,600 of them. The system queue's
        // prefetch is larger: with 4 held, its credit would run out between the store thread's commits
        // and the other queues would get its turns (docs/sqlite.md), which says nothing about groups.
        var jobs: [NewJob] = []
        func add(_ queue: String, _ label: String, _ count: Int) {
            jobs += (0..<count).map { _ in
                NewJob(
                    queue: queue, type: "append", payload: Array(#"{"path":"\#(runs)","line":"\#(label)","ms":2}"#.utf8)
                )
            }
        }
        add("system", "system", 8_000)
        for tenant in 1...200 { add("tenant-\(tenant)", "free", 30) }
        for vip in 1...20 { add("vip-\(vip)", "paid", 250) }
        try file.enqueue(contentsOf: jobs)
        let config = try folder.config(
            """
            workers: 2
            groups:
              - { name: free, weight: 1 }
              - { name: paid, weight: 4 }
            sources: [{ kind: sqlite, path: "q.db" }]
            defaults: { prefetch: 4 }
            queues:
              - { name: system, weight: 8, prefetch: 64 }
              - { name: "tenant-{1..200}", group: free }
              - { name: "vip-{1..20}", group: paid }
            """)
        let run = try RunningFairway(config: config, folder: folder.url)
        defer { run.stop() }
        #expect(run.waitUntilRunning(), "\(run.log)")
        Thread.sleep(forTimeInterval: 6)
        run.stop(signal: SIGKILL)
        let lines = ((try? String(contentsOfFile: runs, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(lines.count > 1_000, "enough runs to measure: \(lines.count)")
        let stats = try file.stats()
        #expect((stats["system"]?.ready ?? 0) > 0, "system stayed backlogged")
        #expect((1...200).allSatisfy { (stats["tenant-\($0)"]?.ready ?? 0) > 0 }, "every free tenant stayed backlogged")
        #expect((1...20).allSatisfy { (stats["vip-\($0)"]?.ready ?? 0) > 0 }, "every paid queue stayed backlogged")
        let total = Double(lines.count)
        var shares: [String: Double] = [:]
        for (label, ideal) in [("system", 8.0 / 13), ("free", 1.0 / 13), ("paid", 4.0 / 13)] {
            let share = Double(lines.filter { $0.hasPrefix(label + " ") }.count) / total
            shares[label] = (share * 1000).rounded() / 10
            #expect(abs(share - ideal) <= 0.02, "\(label): \(share) against \(ideal)")
        }
        print("groups on SQLite: \(lines.count) runs, shares \(shares) % against system 61.5, free 7.7, paid 30.8")
    }
}

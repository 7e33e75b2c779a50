import FairwayConfig
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Testing

@testable import FairwayHTTP
@testable import FairwayRuntime

@Suite("Metrics exposition: full detail for a few queues, compact for many")
struct MetricsExpositionTests {
    static func snapshot(_ names: [String], inFlight: Set<String> = [], paused: Set<String> = []) -> EngineSnapshot {
        EngineSnapshot(
            queues: names.map { name in
                var settings = QueueSettings()
                settings.paused = paused.contains(name)
                return QueueSnapshot(
                    name: name, settings: settings, held: 0, inFlight: inFlight.contains(name) ? 1 : 0,
                    oldestHeldEnqueuedAt: nil)
            },
            workers: 2, busyWorkers: inFlight.count, stuckWorkers: 0, draining: false
        )
    }

    static func text(_ metrics: FairwayMetrics, _ snapshot: EngineSnapshot, ready: [String: Int] = [:]) -> String {
        let depths = ready.mapValues { QueueDepth(ready: $0, oldestAgeSeconds: 3) }
        return String(
            decoding: metrics.exposition(snapshot: snapshot, depths: depths, connected: ["sqlite": true]), as: UTF8.self
        )
    }

    /// Runs `promtool check metrics` on the text; returns its complaints, empty when clean.
    static func promtool(_ text: String) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-\(UUID().uuidString).txt")
        try Data(text.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let check = try ChildProcess.run("/bin/sh", ["-c", "promtool check metrics < '\(file.path)' 2>&1"])
        return check.exit == .exited(0) ? "" : check.outputText
    }

    @Test("120 queues keep every per-queue family and series, and pass promtool")
    func fullDetail() throws {
        let names = (1...120).map { "q\($0)" }
        let metrics = FairwayMetrics(
            queueNames: names, sourceNames: ["sqlite"], fullDetailUpTo: FairwayHTTPServer.Settings().perQueueMetricsUpTo
        )
        #expect(metrics.fullDetail)
        #expect(FairwayMetrics.Outcome.allCases.enumerated().allSatisfy { $0.offset == $0.element.index })
        metrics.jobEnded(queue: "q7", outcome: .succeeded, settlement: .ack, runSeconds: 0.002, waitSeconds: 0.5)
        let text = Self.text(metrics, Self.snapshot(names), ready: ["q9": 4])
        for name in names {
            #expect(text.contains("fairway_jobs_completed_total{queue=\"\(name)\",outcome=\"crash\"} 0\n"))
            #expect(text.contains("fairway_queue_in_flight_jobs{queue=\"\(name)\"} 0\n"))
            #expect(text.contains("fairway_queue_weight{queue=\"\(name)\"} 1\n"))
            #expect(text.contains("fairway_job_run_duration_seconds_count{queue=\"\(name)\"}"))
        }
        #expect(text.contains("fairway_jobs_completed_total{queue=\"q7\",outcome=\"success\"} 1\n"))
        #expect(text.contains("fairway_job_run_duration_seconds_bucket{queue=\"q7\",le=\"0.005\"} 1\n"))
        #expect(text.contains("fairway_job_run_duration_seconds_bucket{queue=\"q7\",le=\"0.001\"} 0\n"))
        #expect(text.contains("fairway_job_wait_duration_seconds_sum{queue=\"q7\"} 0.5\n"))
        #expect(text.contains("fairway_queue_ready_jobs{queue=\"q9\"} 4\n"))
        #expect(text.contains("fairway_queue_oldest_ready_age_seconds{queue=\"q9\"} 3\n"))
        #expect(text.contains("fairway_queues 120"))
        #expect(try Self.promtool(text) == "")
    }

    @Test("10,000 queues: compact, under 2 MB with every queue having run, promtool clean")
    func compact() throws {
        let names = (0..<10_000).map { "tenant-\($0).emails" }
        let metrics = FairwayMetrics(
            queueNames: names, sourceNames: ["sqlite"], fullDetailUpTo: FairwayHTTPServer.Settings().perQueueMetricsUpTo
        )
        #expect(!metrics.fullDetail)
        for name in names {
            metrics.jobEnded(queue: name, outcome: .succeeded, settlement: .ack, runSeconds: 0.002, waitSeconds: 0.5)
        }
        metrics.jobEnded(
            queue: "tenant-3.emails", outcome: .crashed(reason: "test"),
            settlement: .retry(after: .zero, reason: "test"), runSeconds: 1,
            waitSeconds: nil)
        let text = Self.text(
            metrics, Self.snapshot(names, inFlight: ["tenant-5.emails"], paused: ["tenant-6.emails"]),
            ready: ["tenant-8.emails": 2])
        #expect(text.utf8.count <= 2_000_000, "\(text.utf8.count) bytes")
        // Every queue keeps its ready count and its non-zero outcomes.
        let lines = Set(text.split(separator: "\n").map(String.init))
        for name in names {
            #expect(lines.contains("fairway_queue_ready_jobs{queue=\"\(name)\"} \(name == "tenant-8.emails" ? 2 : 0)"))
            #expect(lines.contains("fairway_jobs_completed_total{queue=\"\(name)\",outcome=\"success\"} 1"))
        }
        #expect(text.contains("fairway_jobs_completed_total{queue=\"tenant-3.emails\",outcome=\"crash\"} 1\n"))
        #expect(!text.contains("outcome=\"dead_letter\""), "zero outcomes are left out")
        // Zero levels are left out; non-zero ones are there.
        #expect(text.contains("fairway_queue_in_flight_jobs{queue=\"tenant-5.emails\"} 1\n"))
        #expect(!text.contains("fairway_queue_in_flight_jobs{queue=\"tenant-4.emails\"}"))
        #expect(text.contains("fairway_queue_paused{queue=\"tenant-6.emails\"} 1\n"))
        #expect(!text.contains("fairway_queue_paused{queue=\"tenant-7.emails\"}"))
        #expect(text.contains("fairway_queue_oldest_ready_age_seconds{queue=\"tenant-8.emails\"} 3\n"))
        #expect(!text.contains("fairway_queue_weight{"))
        // Histograms are one series across all queues.
        #expect(text.contains("fairway_job_run_duration_seconds_count 10001\n"))
        #expect(text.contains("fairway_job_wait_duration_seconds_count 10000\n"))
        #expect(!text.contains("fairway_job_run_duration_seconds_count{"))
        #expect(try Self.promtool(text) == "")
    }

    @Test("groups are summed over their members, one series each; active keys of a keyed or pattern queue")
    func groupsAndKeys() throws {
        let names = ["system", "tenant-*", "vip-1", "vip-2"]
        let metrics = FairwayMetrics(queueNames: names, sourceNames: ["sqlite"], fullDetailUpTo: 120)
        var snapshot = Self.snapshot(names, inFlight: ["vip-1", "vip-2", "tenant-*"])
        for index in snapshot.queues.indices {
            snapshot.queues[index].group = ["tenant-*": "free", "vip-1": "paid", "vip-2": "paid"][names[index]]
            snapshot.queues[index].busySeconds = Double(index + 1)
        }
        snapshot.queues[1].activeKeys = 37
        snapshot.queues[1].held = 5
        let text = Self.text(metrics, snapshot)
        #expect(text.contains("fairway_group_busy_seconds_total{group=\"paid\"} 7\n"))
        #expect(text.contains("fairway_group_busy_seconds_total{group=\"free\"} 2\n"))
        #expect(text.contains("fairway_group_in_flight_jobs{group=\"paid\"} 2\n"))
        #expect(text.contains("fairway_group_held_jobs{group=\"free\"} 5\n"))
        #expect(!text.contains("group=\"system\""), "a queue outside any group is no group")
        #expect(text.contains("fairway_queue_active_keys{queue=\"tenant-*\"} 37\n"))
        #expect(text.contains("fairway_queue_active_keys{queue=\"system\"} 0\n"), "full detail: every queue")
        #expect(try Self.promtool(text) == "")
    }

    @Test("the threshold is the configured one, and a queue name is escaped in its label")
    func thresholdAndEscaping() throws {
        let names = ["plain", "quote\"d", "back\\slash", "new\nline"]
        let compact = FairwayMetrics(queueNames: names, sourceNames: ["amqp"], fullDetailUpTo: 3)
        #expect(!compact.fullDetail)
        #expect(FairwayMetrics(queueNames: names, sourceNames: ["amqp"], fullDetailUpTo: 4).fullDetail)
        let text = Self.text(compact, Self.snapshot(names))
        #expect(text.contains(#"fairway_queue_ready_jobs{queue="quote\"d"} 0"#))
        #expect(text.contains(#"fairway_queue_ready_jobs{queue="back\\slash"} 0"#))
        #expect(text.contains(#"fairway_queue_ready_jobs{queue="new\nline"} 0"#))
        #expect(try Self.promtool(text) == "")
    }
}

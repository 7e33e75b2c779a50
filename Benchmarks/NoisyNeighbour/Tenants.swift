import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Logging
import NIOConcurrencyHelpers

// The scenario's tenants, jobs and what each run records.

struct Start {
    var tenant: Int32  // -1: the flood, -2: system, -3: paid, else a quiet tenant's number
    /// When the producer called enqueue (in the payload).
    var enqueuedAt: UInt64
    var startedAt: UInt64
    var jobID: Int64
}

final class Recorder: Sendable {
    let starts = NIOLockedValueBox<[Start]>([])
    /// When each quiet job's enqueue returned (committed), by job id.
    let committed = NIOLockedValueBox<[Int64: UInt64]>([:])
    func record(_ start: Start) { starts.withLockedValue { $0.append(start) } }
}

func wallNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

enum Layout: String {
    /// One queue `tenants` with `keys: true`; each tenant is a key.
    case keys
    /// A pattern `tenant-*`; each tenant is a queue admitted at run time.
    case pattern
    /// One queue, no keys: the control.
    case plain
}

struct Scenario {
    var layout: Layout
    var flood: Bool
    /// Jobs per enqueue call of the flood: 100,000 is one call (one transaction).
    var floodChunk = 100_000
    var seconds: Double
}

struct Result {
    var scenario: Scenario
    /// From the enqueue's commit to the start.
    var quietWaits: [Double]
    /// From the producer's enqueue call to the start: adds the wait for the file's write lock.
    var quietWaitsFromCall: [Double]
    /// From the commit, for jobs enqueued from 1 s after the flood on: past the flood's own write.
    var quietWaitsSteady: [Double]
    var floodDone: Int
    var seconds: Double
    var activeKeysMost: Int
}

let jobParameters = JobName<[String: Int64]>("tenant-job")

func queueName(_ layout: Layout, tenant: Int) -> String {
    switch layout {
    case .keys, .plain: return "tenants"
    case .pattern: return tenant < 0 ? "tenant-flood" : "tenant-\(tenant)"
    }
}

func job(_ layout: Layout, tenant: Int, at: UInt64) -> NewJob {
    NewJob(
        queue: queueName(layout, tenant: tenant), type: "tenant-job",
        payload: Array("{\"t\":\(tenant),\"at\":\(at)}".utf8),
        fairnessKey: layout == .keys ? (tenant < 0 ? "flood" : "quiet-\(tenant)") : nil)
}

/// Notes when each quiet job is handed to the engine (FAIRWAY_TRACE=1), to split a wait into its parts.

import FairwayRuntime
import Foundation

/// Jobs handed to the store thread by a producer of this process, and the producer's wait for them.
final class EnqueueRequest: @unchecked Sendable {
    // Unchecked Sendable: `result` is written once by the store thread before it signals `done`, and read by the producer only after waiting for it.
    let jobs: [NewJob]
    let done = DispatchSemaphore(value: 0)
    private(set) var result: Result<[Int64], any Error>?

    init(jobs: [NewJob]) { self.jobs = jobs }

    func finish(_ result: Result<[Int64], any Error>) {
        self.result = result
        done.signal()
    }
}

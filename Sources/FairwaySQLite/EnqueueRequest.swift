import FairwayRuntime
import Foundation

/// Jobs handed to the store thread by a producer of this process, and the producer's wait for them.
final class EnqueueRequest: @unchecked Sendable {
    let jobs: [NewJob]
    let done = DispatchSemaphore(value: 0)
    private(set) var result: Result<[Int64], any Error>?

    init(jobs: [NewJob]) { self.jobs = jobs }

    func finish(_ result: Result<[Int64], any Error>) {
        self.result = result
        done.signal()
    }
}

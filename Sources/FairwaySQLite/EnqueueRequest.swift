import FairwayRuntime

/// Jobs handed to the store thread by a producer of this process, and the producer's wait for their
/// commit (the ids, or why not).
final class EnqueueRequest: Sendable {
    let jobs: [NewJob]
    let result = OneShot<Result<[Int64], any Error>>()

    init(jobs: [NewJob]) { self.jobs = jobs }

    func finish(_ result: Result<[Int64], any Error>) {
        self.result.fulfil(result)
    }
}

import FairwayTestSupport
import Foundation
import Testing

@testable import FairwaySQLite

@Suite("Delivery counter")
struct DeliveryCounterTests {
    @Test("shared by several threads at once (every RabbitMQ connection's I/O thread uses one): counts stay exact")
    func sharedBetweenThreads() throws {
        let folder = TemporaryFolder()
        let counter = try DeliveryCounter(path: folder.path("counts.db"))
        // Five threads, as a source with 1,000 queues has five connections; before the counter had a lock
        // this corrupted the heap (a crash after a reconnect under backlog).
        let threads = 5
        let rounds = 400
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            do {
                for round in 0..<rounds {
                    let key = "t\(thread)-\(round % 20)"
                    try counter.add([key, "shared"])
                    _ = try counter.count(key)
                    if round % 20 == 19 { try counter.remove((0..<20).map { "t\(thread)-\($0)" }) }
                }
            } catch {
                failures.record("\(error)")
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all)")
        #expect(try counter.count("shared") == threads * rounds)
        #expect(try counter.count("t0-0") == 0)
    }

    final class Failures: Sendable {
        private let list = Shared<[String]>([])
        func record(_ failure: String) { list.update { $0.append(failure) } }
        var all: [String] { list.read() }
    }
}

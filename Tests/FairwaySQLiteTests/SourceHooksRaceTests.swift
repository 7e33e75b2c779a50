import FairwayRuntime
import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import FairwaySQLite

/// Races between a source's start and close and other threads' enqueues. Run under ThreadSanitizer
/// (`.ci/run` does): before the hooks had a lock of their own, TSan reported these as data races.
@Suite("Source hooks and the file watcher under concurrent use")
struct SourceHooksRaceTests {
    @Test("enqueues from several threads while a source starts and stops routing them: every job is written once")
    func enqueueWhileRoutingChanges() throws {
        let folder = TemporaryFolder()
        let queue = try SQLiteQueue(path: folder.path("q.db"))
        let writer = try SQLiteQueue(path: folder.path("q.db"), create: false)
        let threads = 4
        let perThread = 200
        let done = DispatchSemaphore(value: 0)
        let flipping = DispatchQueue(label: "flip")
        let stop = StopFlag()
        flipping.async {
            // A stand-in for a source's start and close: routes through another connection to the file.
            while !stop.isSet {
                queue.routeEnqueue = { jobs in try writer.enqueue(contentsOf: jobs) }
                queue.onEnqueue = { _ in }
                queue.routeEnqueue = nil
                queue.onEnqueue = nil
            }
            done.signal()
        }
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for index in 0..<perThread {
                _ = try? queue.enqueue(
                    NewJob(queue: "q\(thread)", type: "noop", payload: Array("{\"i\":\(index)}".utf8)))
            }
        }
        stop.set()
        done.wait()
        let stats = try queue.stats()
        for thread in 0..<threads {
            #expect(stats["q\(thread)"]?.ready == perThread)
        }
    }

    final class StopFlag: Sendable {
        private let value = NIOLockedValueBox(false)
        var isSet: Bool { value.withLockedValue { $0 } }
        func set() { value.withLockedValue { $0 = true } }
    }
}

import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing

@testable import FairwaySQLite

@Suite("SQLite source start")
struct SQLiteSourceStartTests {
    /// Records each hand-over of deliveries, in order.
    final class RecordingSink: DeliverySink {
        let batches = NIOLockedValueBox<[[Delivery]]>([])
        func deliver(_ delivery: Delivery) { batches.withLockedValue { $0.append([delivery]) } }
        func deliver(contentsOf deliveries: [Delivery]) { batches.withLockedValue { $0.append(deliveries) } }
        func withdrawHeld(where predicate: @escaping @Sendable (Delivery) -> Bool) -> Int { 0 }
    }

    @Test("the first jobs are handed on after a short transaction, not after a claim in every queue")
    func firstJobsHandedOnEarly() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let queues = 200
        let file = try SQLiteQueue(path: path)
        try file.enqueue(
            contentsOf: (0..<queues).flatMap { queue in
                Array(repeating: NewJob(queue: "q\(queue)", type: "noop"), count: 20)
            })
        var logger = Logger(label: "fairway.test")
        logger.logLevel = .critical
        let source = try SQLiteSource(path: path, logger: logger)
        let sink = RecordingSink()
        try source.start(
            queues: (0..<queues).map { QueueBinding(id: QueueID($0), name: "q\($0)", credit: 16) }, sink: sink)
        defer { source.close() }
        // Nothing is settled, so every queue ends with its full credit held: 16 jobs each.
        #expect(eventually { sink.batches.withLockedValue { $0.joined().count } == queues * 16 })
        let batches = sink.batches.withLockedValue { $0 }
        let first = try #require(batches.first)
        #expect(
            first.count < SQLiteSource.firstHandOver + 16,
            "the first hand-over waited for \(first.count) jobs of \(Set(first.map(\.queue.index)).count) queues")
        let held = Dictionary(grouping: batches.joined(), by: \.queue.index).mapValues(\.count)
        #expect(held.count == queues && held.values.allSatisfy { $0 == 16 }, "no queue holds more than its credit")
    }

    @Test("settlements handed over together are each made durable: acks deleted, a retry and a dead letter kept")
    func settlementsTogether() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        let file = try SQLiteQueue(path: path)
        try file.enqueue(contentsOf: (0..<6).map { _ in NewJob(queue: "q", type: "noop") })
        let source = try SQLiteSource(path: path)
        let sink = RecordingSink()
        try source.start(queues: [QueueBinding(id: QueueID(0), name: "q", credit: 6)], sink: sink)
        defer { source.close() }
        #expect(eventually { sink.batches.withLockedValue { $0.joined().count } == 6 })
        let held = sink.batches.withLockedValue { Array($0.joined()) }
        var settlements = held.prefix(4).map { ($0, Settlement.ack) }
        settlements.append((held[4], .retry(after: .seconds(3600), reason: "try later")))
        settlements.append((held[5], .deadLetter(reason: "bad input")))
        source.settle(contentsOf: settlements)
        #expect(eventually { (try? file.stats()["q"]?.completed) == 4 })
        let stats = try #require(try file.stats()["q"])
        #expect(stats.dead == 1 && stats.delayed == 1, "\(stats)")
        #expect(try file.deadLetters(queue: "q").map(\.reason) == ["bad input"])
    }

    @Test("a consumer's leases carry a short random name; its host and pid are in the consumers table")
    func shortLeaseOwner() throws {
        let names = (0..<1_000).map { _ in SQLiteSource.makeIdentity() }
        #expect(Set(names).count == names.count)
        #expect(names.allSatisfy { $0.utf8.count == 12 })
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        try SQLiteQueue(path: path).enqueue(NewJob(queue: "q", type: "noop"))
        let source = try SQLiteSource(path: path)
        let sink = RecordingSink()
        try source.start(queues: [QueueBinding(id: QueueID(0), name: "q", credit: 4)], sink: sink)
        defer { source.close() }
        #expect(eventually { sink.batches.withLockedValue { $0.joined().count } == 1 })
        let connection = try SQLiteConnection(path: path, mode: .readWrite)
        let owners = try connection.query("SELECT lease_owner FROM jobs WHERE state = 2") { $0.text(0) ?? "" }
        #expect(owners == [source.identity])
        let consumer = try connection.query(
            "SELECT host, pid FROM consumers WHERE identity = ?1", [.text(source.identity)]
        ) {
            ($0.text(0) ?? "", $0.int(1))
        }
        #expect(consumer.first?.0 == ProcessInfo.processInfo.hostName)
        #expect(consumer.first?.1 == Int(getpid()))
    }

    @Test("a queue file deleted or replaced under a running source makes it not ready, and back when it returns")
    func fileDeletedOrReplaced() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        _ = try SQLiteQueue(path: path)
        let source = try SQLiteSource(path: path)
        try source.start(queues: [QueueBinding(id: QueueID(0), name: "q", credit: 4)], sink: RecordingSink())
        defer { source.close() }
        #expect(source.isConnected)
        let aside = folder.path("aside.db")
        try FileManager.default.moveItem(atPath: path, toPath: aside)
        #expect(eventually(timeout: 10) { !source.isConnected }, "a deleted file")
        try FileManager.default.moveItem(atPath: aside, toPath: path)
        #expect(eventually(timeout: 10) { source.isConnected }, "the same file back")
        // Replaced: another file at the path, as a restore from a backup copied over it would leave.
        try FileManager.default.moveItem(atPath: path, toPath: aside)
        try FileManager.default.copyItem(atPath: aside, toPath: path)
        #expect(eventually(timeout: 10) { !source.isConnected }, "another file at the path")
    }
}

import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Testing

@testable import FairwaySQLite

/// Typed producers for the SQLite file, and the checks that keep jobs from going where nobody takes them.
@Suite("SQLite job producer")
struct SQLiteJobProducerTests {
    struct Invoice: Codable, Sendable, Equatable {
        var customer: String
        var cents: Int
        var lines: [String]
    }
    static let sendInvoice = JobName<Invoice>("send-invoice")

    /// A file whose consumers declared `billing` (send-invoice, noop), `email` (any type) and `reports`.
    func declaredFile(_ folder: TemporaryFolder) throws -> String {
        let path = folder.path("q.db")
        try SQLiteQueue(path: path).declareQueues([
            QueueDeclaration(queue: "billing", jobTypes: ["send-invoice", "noop"]),
            QueueDeclaration(queue: "email", jobTypes: nil),
            QueueDeclaration(queue: "reports", jobTypes: ["noop"]),
        ])
        return path
    }

    @Test("a typed job is written as the JSON its handler decodes, with its delay and priority, and its id returned")
    func typedRoundTrip() throws {
        let folder = TemporaryFolder()
        let producer = try SQLiteJobProducer(path: try declaredFile(folder))
        let invoice = Invoice(customer: "ada", cents: 4_200, lines: ["tea", "cake"])
        let id = try producer.enqueue(Self.sendInvoice, invoice, queue: "billing")
        let later = try producer.enqueue(
            Self.sendInvoice, batch: [invoice, invoice], queue: "billing",
            options: EnqueueOptions(delay: .seconds(60), priority: 3))
        #expect(Int64(id) != nil && later.count == 2 && Set(later + [id]).count == 3)
        let rows = try QueueFile.open(path: producer.queue.path, create: false).query(
            "SELECT id, type, payload, priority, state FROM jobs ORDER BY id"
        ) { row in
            (
                id: String(row.int64(0)), type: row.text(1) ?? "", payload: row.blob(2), priority: row.int(3),
                state: row.int(4)
            )
        }
        #expect(rows.count == 3)
        #expect(rows[0].id == id && rows[0].type == "send-invoice" && rows[0].state == 0)
        #expect(try JSONDecoder().decode(Invoice.self, from: Data(rows[0].payload)) == invoice)
        #expect(rows[1].priority == 3 && rows[1].state == 1, "delayed, with its priority")
    }

    @Test("a queue no consumer declared is refused, naming the known queues and the nearest; nothing is written")
    func undeclaredQueue() throws {
        let folder = TemporaryFolder()
        let producer = try SQLiteJobProducer(path: try declaredFile(folder))
        let jobs = [NewJob(queue: "billing", type: "noop"), NewJob(queue: "biling", type: "noop")]
        #expect(
            throws: ProducerRefusal.undeclaredQueue(
                queue: "biling", in: producer.queue.path, known: ["billing", "email", "reports"])
        ) {
            try producer.enqueue(contentsOf: jobs)
        }
        let text =
            "\(ProducerRefusal.undeclaredQueue(queue: "biling", in: "q.db", known: ["billing", "email", "reports"]))"
        #expect(
            text.contains("did you mean 'billing'?") && text.contains("Known queues: billing, email, reports."),
            "\(text)")
        #expect(try producer.queue.stats().isEmpty, "the valid job of the batch was not written either")

        let lenient = try SQLiteJobProducer(
            path: producer.queue.path, checks: ProducerChecks(allowUndeclaredQueues: true))
        _ = try lenient.enqueue(contentsOf: jobs)
        #expect(try producer.queue.stats()["biling"]?.ready == 1)
    }

    @Test("a job type the queue's consumers do not handle is refused; a queue of any type takes any")
    func unknownJobType() throws {
        let folder = TemporaryFolder()
        let producer = try SQLiteJobProducer(path: try declaredFile(folder))
        #expect(
            throws: ProducerRefusal.unknownJobType(
                type: "send-invoce", queue: "billing", known: ["noop", "send-invoice"])
        ) {
            try producer.enqueue(contentsOf: [NewJob(queue: "billing", type: "send-invoce")])
        }
        #expect(
            "\(ProducerRefusal.unknownJobType(type: "send-invoce", queue: "billing", known: ["noop", "send-invoice"]))"
                .contains("did you mean 'send-invoice'?"))
        #expect(throws: ProducerRefusal.self) {
            try producer.enqueue(Self.sendInvoice, Invoice(customer: "a", cents: 1, lines: []), queue: "reports")
        }
        _ = try producer.enqueue(contentsOf: [NewJob(queue: "email", type: "whatever-the-worker-knows")])
        let lenient = try SQLiteJobProducer(
            path: producer.queue.path, checks: ProducerChecks(allowUnknownJobTypes: true))
        _ = try lenient.enqueue(contentsOf: [NewJob(queue: "billing", type: "send-invoce")])
        #expect(try producer.queue.stats().mapValues(\.ready) == ["email": 1, "billing": 1])
    }

    @Test("a file that does not exist is refused and not created, unless create is asked for")
    func missingFile() throws {
        let folder = TemporaryFolder()
        let typo = folder.path("job.db")
        #expect(throws: ProducerRefusal.missingFile(path: typo)) { try SQLiteJobProducer(path: typo) }
        #expect(!FileManager.default.fileExists(atPath: typo))
        let created = try SQLiteJobProducer(path: typo, create: true)
        _ = try created.enqueue(contentsOf: [NewJob(queue: "anything", type: "noop")])
        #expect(
            try created.queue.stats()["anything"]?.ready == 1,
            "a new file with nothing declared takes any queue from its creator")
    }

    @Test("a file no consumer has declared queues in is refused, unless the caller allows any queue")
    func nothingDeclared() throws {
        let folder = TemporaryFolder()
        let path = folder.path("q.db")
        _ = try SQLiteQueue(path: path)
        let producer = try SQLiteJobProducer(path: path)
        #expect(throws: ProducerRefusal.nothingDeclared(path: path)) {
            try producer.enqueue(contentsOf: [NewJob(queue: "q", type: "noop")])
        }
        let lenient = try SQLiteJobProducer(path: path, checks: ProducerChecks(allowUndeclaredQueues: true))
        _ = try lenient.enqueue(contentsOf: [NewJob(queue: "q", type: "noop")])
    }

    @Test("a queue declared after the producer opened the file is accepted at once")
    func declarationsAreReadAgain() throws {
        let folder = TemporaryFolder()
        let path = try declaredFile(folder)
        let producer = try SQLiteJobProducer(path: path)
        _ = try producer.enqueue(contentsOf: [NewJob(queue: "billing", type: "noop")])
        try SQLiteQueue(path: path).declareQueues([QueueDeclaration(queue: "new-tenant", jobTypes: ["noop"])])
        _ = try producer.enqueue(contentsOf: [NewJob(queue: "new-tenant", type: "noop")])
        #expect(try producer.queue.stats()["new-tenant"]?.ready == 1)
    }

    @Test("enqueues from many threads and from async tasks all land, each id once")
    func concurrentProducers() async throws {
        let folder = TemporaryFolder()
        let producer = try SQLiteJobProducer(path: try declaredFile(folder))
        let ids = Shared<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for index in 0..<50 {
                let id = try! producer.enqueue(
                    Self.sendInvoice, Invoice(customer: "t\(thread)", cents: index, lines: []), queue: "billing")
                ids.update { $0.append(id) }
            }
        }
        try await withThrowingTaskGroup(of: [String].self) { group in
            for task in 0..<4 {
                group.addTask {
                    try await producer.enqueue(
                        Self.sendInvoice, batch: (0..<25).map { Invoice(customer: "a\(task)", cents: $0, lines: []) },
                        queue: "billing")
                }
            }
            for try await batch in group { ids.update { $0 += batch } }
        }
        #expect(ids.read().count == 500 && Set(ids.read()).count == 500)
        #expect(try producer.queue.stats()["billing"]?.ready == 500)
    }
}

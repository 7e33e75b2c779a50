import FairwayJobs
import FairwayRuntime
import FairwayScheduling
import FairwayTestSupport
import Foundation
import Testing

/// Invariants 8 (bounded memory) and 9 (graceful shutdown) on the real engine.
@Suite("Engine lifecycle", .timeLimit(.minutes(2)))
struct EngineLifecycleTests {
    @Test("deliveries held locally never exceed the queue's credit, whatever the backlog")
    func heldBoundedByCredit() throws {
        let harness = try EngineHarness(
            workers: 2,
            queues: [
                QueueDefinition(name: "deep", credit: 8),
                QueueDefinition(name: "deeper", credit: 3),
            ]
        )
        harness.source.enqueue(
            queue: "deep", jobType: "sleep", payloads: Array(repeating: Array(#"{"ms":0.2}"#.utf8), count: 2_000))
        harness.source.enqueue(queue: "deeper", jobType: "noop", payloads: Array(repeating: [], count: 20_000))
        try harness.start()
        defer { harness.stop() }
        var samples = 0
        while harness.snapshot("deep").succeeded < 1_000 {
            let snapshot = harness.engine.snapshot()
            for queue in snapshot.queues {
                let credit = queue.name == "deep" ? 8 : 3
                // Held (delivered, not started) is bounded by credit; a job being settled may briefly
                // count as in flight while its credit already let the next one through.
                #expect(queue.held <= credit)
                #expect(queue.held + queue.inFlight <= credit + snapshot.workers)
            }
            samples += 1
            Thread.sleep(forTimeInterval: 0.001)
        }
        #expect(samples > 10)
        // The source never had more than the credit unsettled: held, running and settling together.
        #expect(harness.source.maxOutstandingCount(queue: "deep") == 8)
        #expect(harness.source.maxOutstandingCount(queue: "deeper") == 3)
    }

    @Test("the engine reports starting until every source has started, while the first source already delivers")
    func startingUntilSourcesStarted() throws {
        let fast = InMemorySource()
        let slow = GatedSource()
        let engine = try Engine(
            configuration: EngineConfiguration(workers: 1, queues: [QueueDefinition(name: "q", credit: 4)]),
            registry: {
                var registry = JobRegistry()
                BuiltinJobs.register(in: &registry)
                return registry
            }(),
            sources: [fast, slow]
        )
        #expect(engine.snapshot().starting)
        fast.enqueue(queue: "q", jobType: "noop", payloads: [[]])
        let started = DispatchSemaphore(value: 0)
        Thread { [engine] in
            try? engine.start()
            started.signal()
        }.start()
        // The first source's job runs while the second is still setting up (a broker's thousand queues).
        #expect(eventually { engine.snapshot().queues[0].succeeded == 1 })
        #expect(engine.snapshot().starting)
        slow.open.signal()
        #expect(started.wait(timeout: .now() + 10) == .success)
        #expect(!engine.snapshot().starting)
        engine.shutdown(drainTimeout: .seconds(5))
        #expect(!engine.snapshot().starting)
    }

    /// A source whose `start` returns only when the test opens it.
    final class GatedSource: JobSource, @unchecked Sendable {
        let name = "gated"
        let open = DispatchSemaphore(value: 0)
        func start(queues: [QueueBinding], sink: any DeliverySink) throws { open.wait() }
        func settle(_ delivery: Delivery, _ settlement: Settlement) {}
        func stopDelivering() {}
        func close() {}
    }

    @Test("shutdown releases held jobs at once, lets running jobs finish, and loses nothing")
    func gracefulShutdown() throws {
        let harness = try EngineHarness(workers: 2, queues: [QueueDefinition(name: "q", credit: 10)])
        harness.source.enqueue(
            queue: "q", jobType: "sleep", payloads: Array(repeating: Array(#"{"ms":300}"#.utf8), count: 10))
        try harness.start()
        #expect(eventually { harness.engine.snapshot().busyWorkers == 2 })
        #expect(harness.snapshot("q").held == 8)
        let began = Date()
        harness.engine.shutdown(drainTimeout: .seconds(5))
        let took = Date().timeIntervalSince(began)
        // The two running jobs finished (about 300 ms); the eight held ones went back without running.
        #expect(took < 2)
        #expect(harness.source.ackedCount == 2)
        #expect(harness.source.pendingCount(queue: "q") == 8)
        #expect(harness.source.outstandingCount(queue: "q") == 0)
        #expect(harness.engine.snapshot().draining)
    }

    @Test("shutdown past the drain deadline releases running jobs too")
    func drainDeadline() throws {
        let harness = try EngineHarness(workers: 1, queues: [QueueDefinition(name: "q")])
        harness.source.enqueue(queue: "q", jobType: "sleep", payload: Array(#"{"ms":2000}"#.utf8))
        try harness.start()
        #expect(eventually { harness.engine.snapshot().busyWorkers == 1 })
        let began = Date()
        harness.engine.shutdown(drainTimeout: .milliseconds(100))
        #expect(Date().timeIntervalSince(began) < 1.5)
        #expect(harness.source.ackedCount == 0)
        #expect(harness.source.pendingCount(queue: "q") == 1, "the abandoned job is back at its source")
        #expect(harness.source.settlements.values.first == [.release])
    }

    @Test(
        "endDrainNow cuts a drain short, also when it comes before the shutdown (a second signal overtaking the first)",
        arguments: [false, true])
    func drainCutShort(cutFirst: Bool) throws {
        let harness = try EngineHarness(workers: 1, queues: [QueueDefinition(name: "q")])
        harness.source.enqueue(queue: "q", jobType: "sleep", payload: Array(#"{"ms":2000}"#.utf8))
        try harness.start()
        #expect(eventually { harness.engine.snapshot().busyWorkers == 1 })
        let began = Date()
        if cutFirst {
            harness.engine.endDrainNow()
        } else {
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: 0.1)
                harness.engine.endDrainNow()
            }
        }
        harness.engine.shutdown(drainTimeout: .seconds(3600))
        // Without the cut the drain would wait for the 2 s job (or the hour); with it the job goes back now.
        #expect(Date().timeIntervalSince(began) < 1.5)
        #expect(harness.source.ackedCount == 0)
        #expect(harness.source.settlements.values.first == [.release])
    }

    @Test("two queues with the same name are refused")
    func duplicateQueues() {
        #expect(throws: EngineError.duplicateQueue("a")) {
            _ = try EngineHarness(queues: [QueueDefinition(name: "a"), QueueDefinition(name: "a")])
        }
    }

    @Test("a process-isolated queue without a process isolation is refused, naming the queue")
    func processQueueNeedsIsolation() {
        let error = #expect(throws: EngineError.noProcessIsolation(queue: "pdf")) {
            _ = try EngineHarness(
                queues: [QueueDefinition(name: "a"), QueueDefinition(name: "pdf", isolation: .process(.init()))])
        }
        #expect(error?.description.contains("'pdf'") == true)
    }
}

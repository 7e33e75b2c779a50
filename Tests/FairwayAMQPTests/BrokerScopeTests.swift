import FairwayTestSupport
import Foundation
import Testing

/// The lock that keeps tests which restart the broker apart from tests which use it (`.restartsBroker`,
/// `.usesBroker`): a restart must not wait for as long as tests that use the broker keep overlapping.
@Suite("Broker test lock")
struct BrokerScopeTests {
    @Test("a restart is not kept waiting by a steady stream of overlapping users: later users wait behind it")
    func restartIsNotStarved() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("broker-scope-\(UUID()).lock").path
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: path + ".turnstile")
        }
        // Counted in turns, not seconds: the test runs beside others that keep the threads busy.
        let turns = Shared(0)
        let restarted = Shared(false)
        let enough = 100
        let stop: @Sendable () -> Bool = { restarted.read() || turns.read() >= enough }
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Two users, each taking the lock again at once: one of them holds it whenever the other lets go.
            for user in 0..<2 {
                group.addTask {
                    if user == 1 {
                        while turns.read() == 0 { try await Task.sleep(for: .milliseconds(5)) }
                    }
                    while !stop() {
                        try await BrokerScope.withLock(path: path, exclusive: false) {
                            turns.update { $0 += 1 }
                            try await Task.sleep(for: .milliseconds(50))
                        }
                    }
                }
            }
            group.addTask {
                while turns.read() < 2 { try await Task.sleep(for: .milliseconds(5)) }
                try await BrokerScope.withLock(path: path, exclusive: true) {
                    restarted.update { $0 = true }
                }
            }
            try await group.waitForAll()
        }
        // Without the turnstile the restart gets in only once the users give up, after `enough` turns.
        #expect(restarted.read() && turns.read() < enough, "the restart got in after \(turns.read()) turns")
    }

    @Test("a waiting restart closes no circle: a user that holds the machine's lock goes past it to the broker")
    func noCircleWithTheMachineLock() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("broker-scope-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let broker = folder + "/broker.lock"
        let machine = folder + "/machine.lock"
        let finished = Shared<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Uses the broker, then wants the machine.
            group.addTask {
                try await BrokerScope.withLock(path: broker, exclusive: false) {
                    try await Task.sleep(for: .milliseconds(300))
                    try await BrokerScope.withLock(path: machine, exclusive: true) {}
                }
                finished.update { $0.append("broker, then machine") }
            }
            // Holds the machine, then wants the broker (shared) while a restart waits for it.
            group.addTask {
                try await BrokerScope.withLock(path: machine, exclusive: true) {
                    try await Task.sleep(for: .milliseconds(300))
                    try await BrokerScope.withLock(path: broker, exclusive: false) {}
                }
                finished.update { $0.append("machine, then broker") }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(100))
                try await BrokerScope.withLock(path: broker, exclusive: true) {}
                finished.update { $0.append("restart") }
            }
            // A circle never ends: give up after 60 s (the test shares the threads with others).
            group.addTask {
                try await Task.sleep(for: .seconds(60))
                finished.update { $0.append("gave up") }
            }
            while finished.read().count < 3 && !finished.read().contains("gave up") {
                try await Task.sleep(for: .milliseconds(20))
            }
            group.cancelAll()
        }
        #expect(
            Set(finished.read().prefix(3)) == ["broker, then machine", "machine, then broker", "restart"],
            "\(finished.read())")
    }
}

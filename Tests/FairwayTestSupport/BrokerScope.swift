import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Keeps tests that stop or restart the shared RabbitMQ broker from running while other tests use it.
/// Test suites run side by side, and `.serialized` only orders the tests of one suite: this trait orders
/// them across suites and targets, with a file lock (shared to use the broker, exclusive to restart it).
/// It waits without blocking a thread, so the tests holding the lock always get to run.
public struct BrokerScope: TestTrait, SuiteTrait, TestScoping {
    public let exclusive: Bool
    /// The lock file: one per shared resource.
    public var path = "/tmp/fairway-tests-broker.lock"

    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // Lock once per test case: a suite's or a test's own scope would hold the lock while its cases
        // wait for theirs.
        guard testCase != nil, !test.isSuite else {
            try await function()
            return
        }
        // A test that restarts the broker inside a suite that uses it: the exclusive lock alone is taken.
        if !exclusive
            && test.traits.contains(where: { ($0 as? BrokerScope).map { $0.exclusive && $0.path == path } == true })
        {
            try await function()
            return
        }
        let descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else {
            try await function()
            return
        }
        defer { close(descriptor) }
        while flock(descriptor, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            try await Task.sleep(for: .milliseconds(20))
        }
        defer { flock(descriptor, LOCK_UN) }
        try await function()
    }
}

extension Trait where Self == BrokerScope {
    /// The test talks to the broker; it must not run while another test restarts it.
    public static var usesBroker: Self { BrokerScope(exclusive: false) }
    /// The test stops or restarts the broker; it runs while no other test uses it.
    public static var restartsBroker: Self { BrokerScope(exclusive: true) }
    /// The test loads both cores (many processes, crashes, kill -9) or measures throughput, fairness or
    /// idle CPU: it runs while no other such test does. A test that uses the broker may take it too; a test
    /// that restarts the broker must not (it would hold the broker exclusively while waiting for this lock,
    /// and a holder of this lock could be waiting for the broker).
    public static var loadsMachine: Self {
        BrokerScope(exclusive: true, path: "/tmp/fairway-tests-machine.lock")
    }
}

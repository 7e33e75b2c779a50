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
        // A time limit counts the wait for the lock too: behind a restart that waits for the longest test
        // using the broker, that wait has reached three minutes in CI, and a two-minute limit failed so.
        if let limit = test.timeLimit, limit < Self.leastTimeLimit {
            Issue.record(
                """
                '\(test.displayName ?? test.name)' waits for \(path) with a time limit of \(limit): \
                give it at least \(Self.leastTimeLimit), since the wait counts toward the limit
                """)
        }
        try await Self.withLock(path: path, exclusive: exclusive, function)
    }

    /// The least time limit of a test that waits for one of these locks: the wait counts toward it.
    public static let leastTimeLimit = Duration.seconds(600)

    /// Runs `body` holding the lock file at `path`, shared or exclusive.
    public static func withLock(
        path: String, exclusive: Bool, _ body: @Sendable () async throws -> Void
    ) async throws {
        let descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o666)
        let turnstile = open(path + ".turnstile", O_CREAT | O_RDWR | O_CLOEXEC, 0o666)
        defer {
            if descriptor >= 0 { close(descriptor) }
            if turnstile >= 0 { close(turnstile) }
        }
        guard descriptor >= 0, turnstile >= 0 else {
            try await body()
            return
        }
        if exclusive {
            // Holding the turnstile while waiting: tests that want the lock shared after this one wait behind
            // it, so a steady stream of them cannot keep it waiting (it once waited out its time limit so).
            try await acquire(turnstile, LOCK_EX)
            try await acquire(descriptor, LOCK_EX)
        } else {
            // A test that holds another of these locks (the machine's) goes past the turnstile: a test that
            // holds this lock shared may be waiting for that one, and a restart waiting at the turnstile for
            // it to end would close the circle.
            if held.isEmpty { try await acquire(turnstile, LOCK_SH) }
            try await acquire(descriptor, LOCK_SH)
        }
        flock(turnstile, LOCK_UN)
        defer { flock(descriptor, LOCK_UN) }
        try await $held.withValue(held + [path]) {
            try await body()
        }
    }

    /// The lock files the current task holds.
    @TaskLocal static var held: [String] = []

    /// Takes `lock` in `mode`, polling.
    static func acquire(_ lock: Int32, _ mode: Int32) async throws {
        while flock(lock, mode | LOCK_NB) != 0 {
            try await Task.sleep(for: .milliseconds(20))
        }
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

import Foundation

/// The RabbitMQ node the tests share, on 127.0.0.1:5672.
public enum TestBroker {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Starts the broker through `.ci/start-broker` when it does not answer: a test that needs it never
    /// skips. True once it answers.
    public static let ready: Bool = {
        spawnAndWait("/bin/bash", [packageRoot.appendingPathComponent(".ci/start-broker").path]) == 0
    }()

    /// Runs rabbitmqctl against the test node and returns its exit status.
    @discardableResult
    public static func control(_ arguments: [String]) -> Int32 {
        spawnAndWait("/usr/sbin/rabbitmqctl", ["-q", "-n", "rabbit@localhost"] + arguments, quiet: true)
    }
}

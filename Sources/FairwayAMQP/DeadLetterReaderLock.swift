import Foundation

/// The lock that every Fairway process on one broker holds while it reads `<queue>.dead` queues: an exclusive
/// queue, which the broker lets one connection at a time declare and deletes when that connection closes.
///
/// A read takes the messages it looks at until it ends, so without this lock one replica's dashboard,
/// refreshing, hid dead letters from another replica's requeue, which then requeued fewer than it was asked
/// to. Within one process ``AMQPSource/deadLetterLock`` orders the calls; this orders the processes.
struct DeadLetterReaderLock {
    /// The exclusive queue's name; it exists only while some process holds the lock.
    static let queueName = "fairway.dead-letters.reading"
    /// How long a call waits for another process's read to end before it gives up.
    static let patience = Duration.seconds(30)

    private let connection: AMQPConnection

    /// Waits for the lock and holds it until ``release()``. Throws when another process held it for all of
    /// `patience`, or when the broker cannot be reached. Nil when the broker refuses the queue for another
    /// reason (a user without permission to declare it: 403): the call then reads without the lock, as
    /// before it existed.
    static func acquire(url: AMQPURL, caCertificate: String?, patience: Duration = patience) throws -> Self? {
        let connection = try AMQPConnection(url: url, heartbeat: 0, caCertificate: caCertificate)
        let deadline = ContinuousClock.now + patience
        do {
            while true {
                try connection.openChannel(1)
                do {
                    try connection.declareQueue(1, queueName, passive: false, durable: false, exclusive: true)
                    return Self(connection: connection)
                } catch let error as AMQPError where !error.connectionLost && error.code == 405 {
                    // RESOURCE_LOCKED: another connection holds it. The broker closed the channel.
                    connection.acknowledgeChannelClose(1)
                    guard ContinuousClock.now < deadline else {
                        throw AMQPError(
                            message:
                                "another Fairway process has been reading the dead letters on \(url) for \(patience); try again",
                            code: 405, connectionLost: false)
                    }
                    Thread.sleep(forTimeInterval: 0.02)
                }
            }
        } catch let error as AMQPError where !error.connectionLost && error.code == 403 {
            connection.close()
            return nil
        } catch {
            connection.close()
            throw error
        }
    }

    /// Closes the connection, and so deletes the queue: the next process waiting takes the lock.
    func release() {
        connection.close()
    }
}

/// The arguments a job queue is declared with, by its consumers and by producers that create it: every
/// declaration of a queue must give the same ones, or the broker refuses it (PRECONDITION_FAILED).
enum QueueDeclaration {
    /// A queue of `type`; a globally capped queue (`globalConcurrency`) also gets a single active
    /// consumer, so that only one consumer at a time, with a prefetch of the cap, holds its messages.
    static func arguments(type: AMQPSource.QueueType, singleActiveConsumer: Bool)
        -> [(String, AMQPConnection.QueueArgument)]
    {
        var arguments: [(String, AMQPConnection.QueueArgument)] = [("x-queue-type", .string(type.rawValue))]
        if singleActiveConsumer { arguments.append(("x-single-active-consumer", .bool(true))) }
        return arguments
    }

    /// What to tell the operator when the broker refused a declaration because the queue exists with
    /// other arguments.
    static func mismatch(_ queue: String, singleActiveConsumer: Bool, broker: String) -> String {
        singleActiveConsumer
            ? "queue '\(queue)' exists without a single active consumer, which its globalConcurrency needs; "
                + "the broker cannot change a queue's arguments: once it is empty, delete it (rabbitmqctl "
                + "delete_queue \(queue)) and fairway declares it anew (\(broker))"
            : "queue '\(queue)' exists with other arguments than fairway declares (a single active consumer, "
                + "or another queue type): give it the same globalConcurrency and queueType as whoever "
                + "declared it, or delete it once empty (\(broker))"
    }
}

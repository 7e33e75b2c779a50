import FairwayRuntime

/// What the store thread needs of a settled job: its row, its queue, its run, and how it ended.
///
/// Kept instead of the whole delivery, so that the delivery's payload and strings are freed by the worker
/// that ran it, not by the store thread, the file's one writer and the bound of a drain.
struct SettledJob {
    /// The job's row id (the delivery's receipt).
    let id: Int64
    /// The queue's index among the source's bindings.
    let queue: Int
    /// Which run this was, 1 for the first.
    let attempt: Int
    let settlement: Settlement

    init(_ delivery: Delivery, _ settlement: Settlement) {
        id = Int64(delivery.receipt)
        queue = delivery.queue.index
        attempt = delivery.attempt
        self.settlement = settlement
    }
}

/// A group of queues that competes as one by its weight: its share of the workers is split among its
/// backlogged queues by theirs, whatever their number (docs/scheduling.md, "Groups"). "All 1,000 free-tier
/// tenants together get weight 1" is a group of weight 1 holding the 1,000 tenant queues.
public struct QueueGroup: Sendable, Hashable {
    public var name: String
    /// The group's weight against the queues outside any group and the other groups; above zero.
    public var weight: Double

    public init(name: String, weight: Double = 1) {
        precondition(weight > 0 && weight.isFinite, "a group's weight must be above zero")
        self.name = name
        self.weight = weight
    }
}

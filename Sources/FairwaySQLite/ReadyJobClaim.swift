import CSQLite

/// Leases the first ready jobs of one queue to an owner: reads them in the order they run, then leases
/// them, a run of consecutive ids with one statement.
///
/// One `UPDATE … RETURNING` would do both, but SQLite keeps every returned row in a temporary table before
/// the first is read; a read and an id-range lease cost it a sixth less for a backlog enqueued queue by queue
/// (docs/benchmarks.md). Where the ids are scattered (producers of many queues at once), the lease is one
/// statement for the whole claim instead of one per job. Both run in the caller's write transaction, so the
/// lease changes exactly the jobs read.
struct ReadyJobClaim {
    private let connection: SQLiteConnection
    private let select: Statement
    private let leaseRange: Statement
    private let leaseFirst: Statement

    /// The first ?2 ready jobs of queue ?1, in the order they run.
    static let selectFirst = """
        SELECT \(SQLiteSource.claimedColumns) FROM jobs WHERE state = 0 AND queue = ?1
        ORDER BY priority DESC, id LIMIT ?2
        """
    /// Leases the ready jobs ?1 … ?2 to owner ?3 until ?4. `+state` keeps the planner on the id range.
    static let leaseIDs = """
        UPDATE OR IGNORE jobs SET state = 2, lease_owner = ?3, lease_expires_at = ?4
        WHERE id BETWEEN ?1 AND ?2 AND +state = 0
        """
    /// Leases the first ?2 ready jobs of queue ?1 to owner ?3 until ?4: those ``selectFirst`` read.
    static let leaseFirstReady = """
        UPDATE OR IGNORE jobs SET state = 2, lease_owner = ?3, lease_expires_at = ?4
        WHERE id IN (SELECT id FROM jobs WHERE state = 0 AND queue = ?1 ORDER BY priority DESC, id LIMIT ?2)
        """

    init(connection: SQLiteConnection, owner: String) throws {
        self.connection = connection
        select = try connection.prepare(Self.selectFirst, persistent: true)
        leaseRange = try connection.prepare(Self.leaseIDs, persistent: true)
        leaseFirst = try connection.prepare(Self.leaseFirstReady, persistent: true)
        try leaseRange.bind(.text(owner), at: 3)
        try leaseFirst.bind(.text(owner), at: 3)
    }

    /// Reads up to `count` ready jobs of `queue`, each through `row` (columns as
    /// ``SQLiteSource/claimedColumns``), then leases them until `expires`. Returns how many it leased.
    @discardableResult
    func claim(queue: String, count: Int, expires: Int64, row: (Statement) throws -> Void) throws -> Int {
        try select.bind(.text(queue), at: 1)
        try select.bind(Int64(count), at: 2)
        var ids: [Int64] = []
        var runs = 0
        do {
            defer { select.reset() }
            while try select.step() {
                let id = select.int64(0)
                if ids.last.map({ $0 + 1 != id }) ?? true { runs += 1 }
                ids.append(id)
                try row(select)
            }
        }
        guard !ids.isEmpty else { return 0 }
        var leased = 0
        if runs * 4 > ids.count {
            try leaseFirst.bind(.text(queue), at: 1)
            try leaseFirst.bind(Int64(ids.count), at: 2)
            try leaseFirst.bind(expires, at: 4)
            try leaseFirst.execute()
            leased = connection.changes
        } else {
            try leaseRange.bind(expires, at: 4)
            for run in ConsecutiveIDRuns(ids) {
                try leaseRange.bind(run.lowerBound, at: 1)
                try leaseRange.bind(run.upperBound, at: 2)
                try leaseRange.execute()
                leased += connection.changes
            }
        }
        // Nothing else writes inside the transaction; a difference is a fault, and rolls the claim back.
        guard leased == ids.count else {
            throw SQLiteError(
                path: connection.path, code: SQLITE_INTERNAL,
                message: "claimed \(ids.count) ready jobs of queue '\(queue)' but leased \(leased)")
        }
        return leased
    }
}

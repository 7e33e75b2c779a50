/// Deletes the jobs one owner completed, a run of consecutive ids with one statement.
///
/// Jobs enqueued together have consecutive ids, and a drain completes them a batch at a time: deleting such a
/// run as one id range costs SQLite a fifth less than one `DELETE` per job (docs/benchmarks.md). A range
/// deletes only jobs still leased by the owner, and only when every job of the run still is: otherwise each
/// job of that run is deleted alone, so that the jobs whose leases were lost are known by id.
struct CompletedJobs {
    private let connection: SQLiteConnection
    /// Deletes job ?1 if the owner still holds it.
    private let one: Statement
    /// How many of the jobs ?1 … ?2 the owner still holds.
    private let held: Statement
    /// Deletes the jobs ?1 … ?2 the owner still holds.
    private let range: Statement

    /// `+` keeps the planner on the id range: given the chance it walks the owner's whole lease index
    /// (`jobs_leased`), twice the cost of the per-job deletes this replaces.
    static let deleteOne = "DELETE FROM jobs WHERE id = ?1 AND lease_owner = ?3 AND state = 2"
    static let countRange = "SELECT count(*) FROM jobs WHERE id BETWEEN ?1 AND ?2 AND +lease_owner = ?3 AND +state = 2"
    static let deleteRange = "DELETE FROM jobs WHERE id BETWEEN ?1 AND ?2 AND +lease_owner = ?3 AND +state = 2"

    init(connection: SQLiteConnection, owner: String) throws {
        self.connection = connection
        one = try connection.prepare(Self.deleteOne, persistent: true)
        held = try connection.prepare(Self.countRange, persistent: true)
        range = try connection.prepare(Self.deleteRange, persistent: true)
        for statement in [one, held, range] {
            try statement.bind(.text(owner), at: 3)
        }
    }

    /// Deletes those of `ids` the owner still holds, inside the caller's transaction. Returns the others:
    /// jobs whose lease was lost (another process may run them again).
    func delete(_ ids: [Int64]) throws -> [Int64] {
        var lost: [Int64] = []
        for run in ConsecutiveIDRuns(ids.sorted()) {
            if run.count > 1 {
                try held.bind(run.lowerBound, at: 1)
                try held.bind(run.upperBound, at: 2)
                if try held.scalar() == Int64(run.count) {
                    try range.bind(run.lowerBound, at: 1)
                    try range.bind(run.upperBound, at: 2)
                    try range.execute()
                    continue
                }
            }
            for id in run {
                try one.bind(id, at: 1)
                try one.execute()
                if connection.changes != 1 { lost.append(id) }
            }
        }
        return lost
    }
}

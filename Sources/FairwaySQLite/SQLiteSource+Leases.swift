import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging

/// Leases: renewed while this process lives, freed when their consumer died or stopped renewing them.
extension SQLiteSource {
    // MARK: - Leases

    func registerConsumer(now: Int64) throws {
        try connection?.cached(
            "INSERT OR REPLACE INTO consumers(identity, host, pid, heartbeat_at) VALUES (?1, ?2, ?3, ?4)"
        ).run([.text(identity), .text(host), .int(Int64(getpid())), .int(now)])
    }

    /// Runs `body` with the run journals of consumers that died, discarding them once `body` charged them
    /// (committed), keeping them for the next process when it threw.
    func reclaimingOrphans(_ body: ([RunJournal.Orphan]) throws -> Void) throws {
        let orphans = RunJournal.orphans(withPrefix: Self.journalPrefix(path))
        do {
            try body(orphans)
        } catch {
            orphans.forEach(RunJournal.keep)
            throw error
        }
        orphans.forEach(RunJournal.discard)
    }

    /// Charges one attempt to each job a dead consumer's journal shows running, then frees its leases;
    /// frees the leases of other consumers that died on this host (without a journal: nothing is charged).
    /// A restart does not wait for its own old leases to expire.
    func reclaimFromDeadConsumers(now: Int64, orphans: [RunJournal.Orphan]) throws {
        guard let connection else { return }
        for orphan in orphans {
            var charged = 0
            for key in orphan.keys {
                try connection.cached(
                    "UPDATE jobs SET attempts = attempts + 1, last_error = ?3 WHERE id = ?1 AND state = 2 AND lease_owner = ?2"
                ).run([.int(Int64(bitPattern: key)), .text(orphan.owner), .text(RunCharge.reason)])
                charged += connection.changes
            }
            try connection.cached(
                "UPDATE jobs SET state = 0, lease_owner = NULL, lease_expires_at = NULL WHERE state = 2 AND lease_owner = ?1"
            ).run([.text(orphan.owner)])
            let released = connection.changes
            try connection.cached("DELETE FROM consumers WHERE identity = ?1").run([.text(orphan.owner)])
            if released > 0 {
                for index in mayHaveWork.indices { mayHaveWork[index] = true }
                logger.info(
                    "reclaimed the jobs of a consumer that ended; those it was running were charged an attempt",
                    metadata: ["consumer": "\(orphan.owner)", "jobs": "\(released)", "charged": "\(charged)"])
            }
        }
        let consumers = try connection.query(
            "SELECT identity, pid FROM consumers WHERE host = ?1 AND identity != ?2",
            [
                .text(host), .text(identity),
            ]
        ) { ($0.text(0) ?? "", $0.int(1)) }
        let dead = consumers.filter { !Self.processIsAlive($0.1) || $0.1 == Int(getpid()) }
        guard !dead.isEmpty else { return }
        // A dead consumer's journal that another process holds is being charged by it: freeing the leases
        // here first would run its jobs again uncharged (a crash nobody is charged for). Journals are read
        // only when some consumer died, not at every lease renewal.
        let journaled = RunJournal.owners(withPrefix: Self.journalPrefix(path)).subtracting(orphans.map(\.owner))
        for (other, _) in dead where !journaled.contains(other) {
            try connection.cached(
                "UPDATE jobs SET state = 0, lease_owner = NULL, lease_expires_at = NULL WHERE state = 2 AND lease_owner = ?1"
            ).run([.text(other)])
            let released = connection.changes
            try connection.cached("DELETE FROM consumers WHERE identity = ?1").run([.text(other)])
            if released > 0 {
                for index in mayHaveWork.indices { mayHaveWork[index] = true }
                logger.info(
                    "reclaimed jobs of a consumer that ended",
                    metadata: ["consumer": "\(other)", "jobs": "\(released)"])
            }
        }
    }

    static func processIsAlive(_ pid: Int) -> Bool {
        kill(pid_t(pid), 0) == 0 || errno == EPERM
    }

    /// Renews this process's leases, and frees those of consumers whose leases expired.
    func maintainLeases() throws {
        guard let connection else { return }
        let now = Milliseconds.now
        guard now >= nextLeaseRenewal else { return }
        nextLeaseRenewal = now + max(1, leaseMilliseconds / 3)
        try reclaimingOrphans { orphans in
            try connection.transaction {
                try connection.cached(
                    "UPDATE jobs SET lease_expires_at = ?2 WHERE state = 2 AND lease_owner = ?1"
                ).run([.text(identity), .int(now + leaseMilliseconds)])
                try registerConsumer(now: now)
                // Dead consumers' journals first: their running jobs are charged before expiry frees them.
                try reclaimFromDeadConsumers(now: now, orphans: orphans)
                try freeExpiredLeases(now: now)
                try connection.cached("DELETE FROM consumers WHERE heartbeat_at < ?1").run([
                    .int(now - 10 * leaseMilliseconds)
                ])
            }
        }
        // Leases freed above may have been under a global cap: count again at the next claim.
        for index in capFull.indices { capFull[index] = false }
    }

    /// Frees the leases of consumers that stopped renewing them (hung, or on another host), uncharged.
    func freeExpiredLeases(now: Int64) throws {
        guard let connection else { return }
        let freed = try connection.query(
            """
            UPDATE jobs SET state = 0, lease_owner = NULL, lease_expires_at = NULL
            WHERE state = 2 AND lease_expires_at < ?1 AND lease_owner != ?2 RETURNING queue
            """,
            [.int(now), .text(identity)]
        ) { $0.text(0) ?? "" }
        for name in Set(freed) {
            if let index = bindingIndex(named: name) { mayHaveWork[index] = true }
        }
    }
}

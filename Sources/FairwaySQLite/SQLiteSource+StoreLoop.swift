import FairwayRuntime
import FairwayScheduling
import Foundation
import Logging

/// The store thread: waits for settlements, enqueues and file changes, and commits them.
extension SQLiteSource {
    // MARK: - The store thread

    var leaseMilliseconds: Int64 { Int64(options.leaseDuration.seconds * 1000) }

    func storeLoop() {
        while true {
            monitor.lock()
            storeTurns &+= 1
            if idleLocked && !watchArmed { armWatchLocked() }
            let wakeAt = nextWake()
            while idleLocked && MonotonicClock.now < wakeAt {
                monitor.wait(untilMonotonic: wakeAt)
            }
            let noticed = fileChanged
            fileChanged = false
            let settlements = pending
            pending.removeAll(keepingCapacity: true)
            let requests = enqueues
            enqueues.removeAll()
            let hints = hinted
            hinted.removeAll()
            let mayDeliver = storeState == .delivering
            let finishing = storeState == .closing
            monitor.unlock()

            for name in hints {
                if let index = bindingIndex(named: name) { mayHaveWork[index] = true }
            }
            if !hints.isEmpty { refreshNextDelayedDue(now: Milliseconds.now) }
            checkFileIdentity()
            do {
                let changed = try checkForOtherWriters()
                runFullProbeIfDue()
                // A write can be seen before its commit is: look again shortly, a few times.
                if changed {
                    rechecksLeft = 0
                    recheckAt = nil
                } else if noticed {
                    rechecksLeft = Self.recheckDelays.count
                }
                if !changed && rechecksLeft > 0
                    && (noticed || (recheckAt.map { Date().timeIntervalSince1970 >= $0 } ?? false))
                {
                    let delay = Self.recheckDelays[Self.recheckDelays.count - rechecksLeft]
                    rechecksLeft -= 1
                    recheckAt = Date().timeIntervalSince1970 + delay
                } else if rechecksLeft == 0 {
                    recheckAt = nil
                }
                let claimed = try commit(settlements, requests, claim: mayDeliver)
                failureBackoff = .zero
                if let sink, !claimed.isEmpty {
                    sink.deliver(contentsOf: claimed)
                }
                try maintainLeases()
            } catch {
                for request in requests {
                    request.finish(.failure(error))
                }
                // Nothing is lost: the settlements stay pending and their jobs stay leased in the file.
                logger.error("queue file write failed; retrying", metadata: ["error": "\(error)"])
                monitor.withLock { pending.insert(contentsOf: settlements, at: 0) }
                failureBackoff = min(.seconds(5), max(.milliseconds(50), failureBackoff * 2))
                Thread.sleep(forTimeInterval: failureBackoff.seconds)
                if finishing && monitor.withLock({ pending.count }) > 0 && failureBackoff >= .seconds(5) {
                    logger.critical("giving up on settlements at close; their jobs stay leased and will run again")
                    monitor.withLock { pending.removeAll() }
                }
                if !finishing { continue }
            }
            if finishing && monitor.withLock({ pending.isEmpty }) { break }
        }
        monitor.withLock {
            storeState = .stopped
            monitor.broadcast()
        }
    }

    /// Nothing to do until something wakes the store thread. Called with `monitor` held.
    var idleLocked: Bool {
        pending.isEmpty && enqueues.isEmpty && hinted.isEmpty && !fileChanged && storeState != .closing
            && !claimsUnfinished
    }

    /// Arms the file watch before the store thread waits, then looks for a commit that came before the
    /// watch was armed, which it would not report. Called with `monitor` held; releases it meanwhile.
    func armWatchLocked() {
        guard let watcher else { return }
        watchArmed = true
        monitor.unlock()
        let armed = watcher.arm()
        let version = try? connection?.dataVersion()
        monitor.lock()
        if !armed { watchArmed = false }
        if version != lastDataVersion { fileChanged = true }
    }

    /// When the store thread must look again even if nothing wakes it, on the monotonic clock. The plan
    /// is made in wall-clock time (due times are stored in the file, shared with other processes) and
    /// turned into a monotonic deadline here, so a stepped system clock cannot stall or spin the wait.
    func nextWake() -> UInt64 {
        let now = Milliseconds.now
        // A lost file cannot be watched, and nobody else can write to it: no short tick for it.
        let tick =
            (watcher == nil || !watchArmed) && !fileLost ? options.changeCheckInterval : options.watchedCheckInterval
        var wake = now + max(1, Int64(tick.seconds * 1000))
        if let due = nextDelayedDue { wake = min(wake, due) }
        wake = min(wake, nextLeaseRenewal)
        var planned = Double(max(wake, now)) / 1000
        if let recheckAt { planned = min(planned, recheckAt) }
        if let fullProbeDue { planned = min(planned, fullProbeDue) }
        let wait = max(0, planned - Date().timeIntervalSince1970)
        return MonotonicClock.after(seconds: min(wait, 3_600))
    }

    /// Notices commits by other processes (and other connections of this one); true when there were some.
    ///
    /// New jobs are found by id (ids only grow), which touches only the new rows; jobs made ready again by
    /// other processes (released, or leases that expired) are found by probing every queue, at most every
    /// `fullProbeInterval`.
    func checkForOtherWriters() throws -> Bool {
        guard let connection else { return false }
        let version = try connection.dataVersion()
        guard version != lastDataVersion else { return false }
        lastDataVersion = version
        // Another process may have settled a job of a capped queue, freeing a permit.
        for index in capFull.indices { capFull[index] = false }
        // `+state` keeps the planner on the id range: given the chance it walks the whole ready index
        // instead (for DISTINCT's order), 4 ms at 100,000 ready jobs on every commit of another process.
        let fresh = try connection.query(
            "SELECT DISTINCT queue FROM jobs WHERE id > ?1 AND +state = 0", [.int(highestSeenID)]
        ) {
            $0.text(0) ?? ""
        }
        for name in fresh {
            guard let index = bindingIndex(named: name) else { continue }
            mayHaveWork[index] = true
            // Another producer may have left a keyed queue's jobs without a key: the next transaction gives
            // them '' (a write, so inside the store thread's transaction, not here).
            if keyedQueues.contains(index) { unkeyedAfter = min(unkeyedAfter ?? highestSeenID, highestSeenID) }
        }
        highestSeenID = max(highestSeenID, try highestJobID())
        fullProbeDue = min(fullProbeDue ?? .infinity, lastFullProbe + Self.fullProbeInterval)
        runFullProbeIfDue()
        nextDelayedDue = try earliestDelayed()
        return true
    }

    /// Marks every queue as worth a claim, when a probe is due.
    func runFullProbeIfDue() {
        let now = Date().timeIntervalSince1970
        guard let due = fullProbeDue, now >= due else { return }
        fullProbeDue = nil
        lastFullProbe = now
        for index in mayHaveWork.indices { mayHaveWork[index] = true }
    }

    /// How often a change by another process makes every queue be looked at, not only those with new jobs.
    static let fullProbeInterval = 0.25

    func highestJobID() throws -> Int64 {
        try connection?.query("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'") { $0.int64(0) }.first ?? 0
    }
}

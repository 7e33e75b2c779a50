import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import FairwayProcessWorkers

/// Forks asked for from many threads at once all run on the spawner's one thread, each caller getting its
/// own child back (run under ThreadSanitizer by `.ci/tsan`).
@Suite("worker spawner")
struct WorkerSpawnerTests {
    @Test("forks from eight threads at once each return their own child, forked on the spawner's thread")
    func concurrentForks() {
        let forkers = NIOLockedValueBox<Set<UInt>>([])
        let callers = NIOLockedValueBox<Set<UInt>>([])
        let children = NIOLockedValueBox<[pid_t]>([])
        let group = DispatchGroup()
        for _ in 0..<8 {
            group.enter()
            Thread {
                callers.withLockedValue { _ = $0.insert(UInt(pthread_self())) }
                let pid = WorkerSpawner.run {
                    forkers.withLockedValue { _ = $0.insert(UInt(pthread_self())) }
                    let pid = fork()
                    if pid == 0 { _exit(7) }
                    return pid
                }
                children.withLockedValue { $0.append(pid) }
                group.leave()
            }.start()
        }
        group.wait()
        let pids = children.withLockedValue { $0 }
        #expect(pids.count == 8 && Set(pids).count == 8 && pids.allSatisfy { $0 > 0 })
        let forker = forkers.withLockedValue { $0 }
        #expect(forker.count == 1, "every fork on one thread")
        #expect(forker.isDisjoint(with: callers.withLockedValue { $0 }), "not a caller's thread")
        for pid in pids {
            var status: Int32 = 0
            #expect(waitpid(pid, &status, 0) == pid)
            #expect((status >> 8) & 0xff == 7, "each child is the one its caller got")
        }
    }
}

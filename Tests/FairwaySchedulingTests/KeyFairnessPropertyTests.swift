import FairwayScheduling
import FairwayTestSupport
import PropertyBased
import Testing

/// Fairness between keys within a queue (``KeyFairBuffer``), checked at every step of random runs: keys
/// with random weights and an optional cap, jobs arriving, starting and finishing in random order.
@Suite("Fairness between keys of a queue (property-based)")
struct KeyFairnessPropertyTests {
    struct Job: Sendable, Equatable {
        var key: Int
        var sequence: Int
    }

    /// Key 0 stands for the jobs without a key, which weigh 1.
    static let weights = Gen.element(of: [0.5, 1, 1, 1, 2, 3, 4]).map { $0 ?? 1 }.array(of: 2...8).map { weights in
        [1] + weights.dropFirst()
    }
    static let cap = Gen.element(of: [nil, nil, 1, 2, 3] as [Int?]).map { $0 ?? nil }

    static func name(_ key: Int) -> String? { key == 0 ? nil : "tenant-\(key)" }

    @Test("nothing is lost or reordered within a key, caps hold, and ready counts are exact")
    func bookkeeping() async {
        await propertyCheck(count: 200, input: Self.weights, Self.cap, Gen.uint64()) { weights, cap, seed in
            var rng = SplitMix64(seed: seed)
            var buffer = KeyFairBuffer<Job>(keyWeights: Self.table(weights), keyConcurrency: cap)
            var held = Array(repeating: [Int](), count: weights.count)
            var running = Array(repeating: 0, count: weights.count)
            var sequence = 0
            for _ in 0..<2000 {
                let roll = rng.next() % 100
                if roll < 45 {
                    let key = Int(rng.next() % UInt64(weights.count))
                    buffer.append(Job(key: key, sequence: sequence), key: Self.name(key))
                    held[key].append(sequence)
                    sequence += 1
                } else if roll < 80 {
                    let popped = buffer.popNext()
                    let expectedReady = held.indices.filter { running[$0] < (cap ?? .max) }.map { held[$0].count }
                        .reduce(0, +)
                    guard let (job, key) = popped else {
                        #expect(expectedReady == 0, "nothing popped while \(expectedReady) jobs may start")
                        continue
                    }
                    #expect(key == Self.name(job.key))
                    #expect(held[job.key].first == job.sequence, "key \(job.key) served out of order")
                    #expect(running[job.key] < (cap ?? .max), "key \(job.key) started past its cap")
                    held[job.key].removeFirst()
                    running[job.key] += 1
                } else {
                    Self.finishOne(&buffer, running: &running, using: &rng)
                }
                let total = held.map(\.count).reduce(0, +)
                let ready = held.indices.filter { running[$0] < (cap ?? .max) }.map { held[$0].count }.reduce(0, +)
                #expect(buffer.count == total)
                #expect(buffer.readyCount == ready)
                let active = held.indices.filter { !held[$0].isEmpty || running[$0] > 0 }.count
                #expect(buffer.activeKeys == active, "state kept for keys with nothing held or running")
            }
        }
    }

    @Test("a key with work waits for at most one job per weight ratio of each other key (start-time fair queueing)")
    func waitBound() async {
        await propertyCheck(count: 200, input: Self.weights, Self.cap, Gen.uint64()) { weights, cap, seed in
            var rng = SplitMix64(seed: seed)
            var buffer = KeyFairBuffer<Job>(keyWeights: Self.table(weights), keyConcurrency: cap)
            var held = Array(repeating: 0, count: weights.count)
            var running = Array(repeating: 0, count: weights.count)
            // For each key waiting to be served: the jobs each other key started since it began to wait.
            var servedWhileWaiting: [Int: [Int]] = [:]
            let mayRun = { (key: Int) in held[key] > 0 && running[key] < (cap ?? .max) }
            for _ in 0..<3000 {
                let before = (0..<weights.count).map(mayRun)
                let roll = rng.next() % 100
                if roll < 40 {
                    // Uneven arrivals: key 1 floods.
                    let key = rng.next() % 3 == 0 ? 1 % weights.count : Int(rng.next() % UInt64(weights.count))
                    buffer.append(Job(key: key, sequence: 0), key: Self.name(key))
                    held[key] += 1
                } else if roll < 80 {
                    guard let (job, _) = buffer.popNext() else { continue }
                    held[job.key] -= 1
                    running[job.key] += 1
                    if let served = servedWhileWaiting[job.key] {
                        for other in served.indices where other != job.key {
                            let bound = weights[other] / weights[job.key] + 1
                            #expect(
                                Double(served[other]) <= bound + 1e-9,
                                "key \(job.key) (weight \(weights[job.key])) waited while key \(other) (weight \(weights[other])) started \(served[other]) jobs"
                            )
                        }
                    }
                    servedWhileWaiting[job.key] = nil
                    for key in servedWhileWaiting.keys {
                        servedWhileWaiting[key]![job.key] += 1
                    }
                } else {
                    Self.finishOne(&buffer, running: &running, using: &rng)
                }
                for key in 0..<weights.count where mayRun(key) && !before[key] && servedWhileWaiting[key] == nil {
                    servedWhileWaiting[key] = Array(repeating: 0, count: weights.count)
                }
                for key in 0..<weights.count where !mayRun(key) {
                    servedWhileWaiting[key] = nil
                }
            }
        }
    }

    @Test("backlogged keys receive service in proportion to their weights, within one job each")
    func backloggedShares() async {
        await propertyCheck(count: 200, input: Self.weights) { weights in
            var buffer = KeyFairBuffer<Job>(keyWeights: Self.table(weights))
            for key in weights.indices {
                for _ in 0..<2000 { buffer.append(Job(key: key, sequence: 0), key: Self.name(key)) }
            }
            var served = Array(repeating: 0.0, count: weights.count)
            for _ in 0..<1000 {
                guard let (job, key) = buffer.popNext() else { break }
                served[job.key] += 1
                buffer.finished(key: key)
                for i in weights.indices {
                    for j in weights.indices where i < j {
                        let lag = abs(served[i] / weights[i] - served[j] / weights[j])
                        #expect(
                            lag <= 1 / weights[i] + 1 / weights[j] + 1e-9,
                            "keys \(i) and \(j) (weights \(weights[i]), \(weights[j])) apart by \(lag)")
                    }
                }
            }
        }
    }

    /// Ends one running job of a random key, if any runs.
    static func finishOne(_ buffer: inout KeyFairBuffer<Job>, running: inout [Int], using rng: inout SplitMix64) {
        let busy = running.indices.filter { running[$0] > 0 }
        guard !busy.isEmpty else { return }
        let key = busy[Int(rng.next() % UInt64(busy.count))]
        running[key] -= 1
        buffer.finished(key: name(key))
    }

    static func table(_ weights: [Double]) -> [String: Double] {
        var table: [String: Double] = [:]
        for (key, weight) in weights.enumerated() where key > 0 {
            table[name(key)!] = weight
        }
        return table
    }
}

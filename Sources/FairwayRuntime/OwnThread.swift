import Foundation

/// Runs blocking work (an engine's start or drain, a producer's commit or confirm wait) on a thread of its
/// own, and awaits it without holding a thread of Swift's cooperative pool.
public enum OwnThread {
    public static func run<Result: Sendable>(
        _ name: String, _ body: @escaping @Sendable () throws -> Result
    ) async throws -> Result {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
            let thread = Thread { continuation.resume(with: Swift.Result { try body() }) }
            thread.name = name
            thread.start()
        }
    }
}

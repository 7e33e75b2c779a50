import Fairway
import Foundation
import Synchronization

/// A mail server's temporary refusal: retried with backoff, as the queue's retry policy says.
struct Greylisted: Error, CustomStringConvertible {
    var email: String
    var description: String { "451 greylisted, try again later: \(email)" }
}

/// The handlers of the application. Rendering fans out: each rendered letter enqueues its own send job,
/// through the producer of the running service (set once the service exists).
final class Handlers: Sendable {
    let producer = Mutex<(any JobProducer)?>(nil)

    func registry() -> JobRegistry {
        var registry = JobRegistry()
        registry.register(Letters.render) { job, context in
            let text = job.template
                .replacingOccurrences(of: "{{name}}", with: job.recipient.name)
                .replacingOccurrences(of: "{{email}}", with: job.recipient.email)
            let folder = URL(fileURLWithPath: job.outbox).appendingPathComponent(job.campaign)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let letter = folder.appendingPathComponent("\(context.jobID).txt")
            try Data(text.utf8).write(to: letter)
            guard let producer = self.producer.withLock({ $0 }) else {
                throw JobError.permanent("the application has no producer")
            }
            try producer.enqueue(
                Letters.send,
                SendLetter(campaign: job.campaign, letter: letter.path, email: job.recipient.email, outbox: job.outbox),
                queue: Letters.sendQueue)
        }
        registry.register(
            Letters.send,
            executeAsync: { job, context in
                guard job.email.contains("@") else {
                    throw JobError.permanent("not an email address: '\(job.email)'")
                }
                if job.email.hasSuffix("@greylist.example") && context.attempt == 1 {
                    throw Greylisted(email: job.email)
                }
                try await Task.sleep(for: .milliseconds(5))  // the mail server's round trip
                let size = try Data(contentsOf: URL(fileURLWithPath: job.letter)).count
                try Outbox.append(
                    "sent \(job.campaign) \(job.email) \(size) bytes attempt \(context.attempt)", in: job.outbox)
            })
        return registry
    }
}

/// The log of sent mail, one line a letter.
enum Outbox {
    static let lock = Mutex(())

    static func append(_ line: String, in outbox: String) throws {
        try lock.withLock { _ in
            let url = URL(fileURLWithPath: outbox).appendingPathComponent("sent.log")
            if !FileManager.default.fileExists(atPath: url.path) {
                _ = FileManager.default.createFile(atPath: url.path, contents: nil)
            }
            let handle = try FileHandle(forWritingTo: url)
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data((line + "\n").utf8))
        }
    }
}

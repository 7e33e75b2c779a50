/// Errors with a meaning for the runtime. Any other error a handler throws is an ordinary failure:
/// the job is retried with backoff until its queue's attempts are used up, then dead-lettered.
public enum JobError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No handler is registered for the job type. Dead-lettered at once: retrying cannot help.
    case unknownJobType(String)
    /// The payload could not be decoded into the handler's parameters. Dead-lettered at once.
    case undecodablePayload(jobType: String, detail: String)
    /// The handler says the job can never succeed. Dead-lettered at once, without further attempts.
    case permanent(String)

    public var description: String {
        switch self {
        case .unknownJobType(let type):
            return "unknown job type '\(type)': no handler is registered for it"
        case .undecodablePayload(let type, let detail):
            return "undecodable payload for job type '\(type)': \(detail)"
        case .permanent(let reason):
            return reason
        }
    }
}

extension JobError {
    /// How any error a handler threw reads to the runtime: permanent (a ``JobError``, dead-lettered at once)
    /// or not (retried), and its text for the job's last error. Threads and worker processes use the same.
    public static func classify(_ error: any Error) -> (permanent: Bool, reason: String) {
        if let error = error as? JobError {
            return (true, error.description)
        }
        let text = String(describing: error)
        return (false, text.isEmpty ? "\(type(of: error))" : text)
    }
}

import CProcess
import FairwayJobs
import FairwayRuntime
import Foundation
import Logging

/// The worker-process side of the protocol, for programs that register Swift handlers: the supervisor
/// re-executes the program with `FAIRWAY_PROCESS_WORKER=1`, and the program, first thing in `main`, calls
/// ``serveIfRequested(registry:)``, which then serves jobs until the supervisor closes the pipe.
public enum ProcessWorkerMain {
    /// True when this process was started as a worker process.
    public static var isRequested: Bool {
        isRequested(in: ProcessInfo.processInfo.environment)
    }

    /// True when a process with this environment is a worker process.
    public static func isRequested(in environment: [String: String]) -> Bool {
        environment[WorkerProcess.environmentKey] == "1"
    }

    /// Serves jobs from stdin and exits when this process is a worker process; returns at once otherwise.
    public static func serveIfRequested(registry: JobRegistry) {
        guard isRequested else { return }
        exit(serve(registry: registry))
    }

    /// Serves jobs from stdin, results to stdout, until stdin ends. Returns the exit status.
    ///
    /// The protocol moves to descriptors of its own that close on exec, and stdin becomes /dev/null and
    /// stdout a copy of stderr: a handler's own output, and a program it starts (`ffmpeg` reads stdin,
    /// `ls` writes stdout), can neither take the jobs sent ahead nor corrupt a result. SIGTERM asks
    /// the running job to stop (its context reports cancelled); the supervisor kills the process if it does
    /// not end within the grace. SIGINT is ignored: the supervisor decides when workers stop.
    public static func serve(registry: JobRegistry) -> Int32 {
        _ = fw_die_with_parent()
        let protocolInput = fcntl(0, F_DUPFD_CLOEXEC, 3)
        let protocolOutput = fcntl(1, F_DUPFD_CLOEXEC, 3)
        let nothing = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard protocolInput >= 0, protocolOutput >= 0, nothing >= 0, dup2(nothing, 0) >= 0, dup2(2, 1) >= 0 else {
            return 70
        }
        close(nothing)
        let channel = WorkerChannel(input: protocolInput, output: protocolOutput)
        channel.makeInputNonBlocking()
        channel.yieldsBeforeSleeping = WorkerChannel.standardYields
        let logger = Logger(label: "fairway.worker") { StreamLogHandler.standardError(label: $0) }

        // Every job's cancellation flag, set by SIGTERM and never cleared: the job running then sees it, and no
        // job sent ahead starts after it.
        let stop = CancellationFlag()
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let terminate = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
        terminate.setEventHandler { stop.cancel() }
        terminate.resume()
        defer { terminate.cancel() }

        do {
            // Jobs are only buffered here until their turn, so any pipeline the supervisor wants is fine.
            try channel.send(.hello(pid: getpid(), pipeline: ProcessWorkerSettings.maxPipelineDepth))
            // The last job type's handler: a worker mostly runs one type after another, and comparing two
            // short strings costs less than hashing one.
            var last: (jobType: String, body: JobBody?)?
            while true {
                let (job, payload) = try channel.receive()
                guard job.kind == .job, let id = job.id, let jobType = job.jobType else {
                    logger.error("expected a job message", metadata: ["kind": "\(job.kind.rawValue)"])
                    return 65
                }
                // Asked to stop: jobs sent ahead are not started; the supervisor releases them.
                if stop.isCancelled { return 0 }
                var context = JobContext(
                    queue: job.queue ?? "",
                    jobType: jobType,
                    jobID: id,
                    attempt: job.attempt ?? 1,
                    maxAttempts: job.maxAttempts ?? 1,
                    deadline: .now + .milliseconds(Int64(min(max(job.timeoutSeconds ?? 1800, 0), 1e9) * 1000)),
                    cancellation: stop,
                    logger: logger
                )
                context.fairnessKey = job.key
                let body: JobBody?
                if let last, last.jobType == jobType {
                    body = last.body
                } else {
                    body = registry.body(for: jobType)
                    last = (jobType, body)
                }
                let (outcome, reason) = run(body, jobType: jobType, payload, context)
                // At once, even when the next job already waits: holding the result back until that job
                // ended would make this one look as long as both, and time it out behind a long one.
                try channel.sendResult(id: id, outcome: outcome, reason: reason)
            }
        } catch .closed {
            return 0
        } catch {
            logger.error("worker protocol failed", metadata: ["error": "\(error)"])
            return 74
        }
    }

    private static func run(
        _ body: JobBody?, jobType: String, _ payload: [UInt8], _ context: JobContext
    ) -> (WorkerMessage.Outcome, String?) {
        guard let body else {
            return (.rejected, JobError.unknownJobType(jobType).description)
        }
        switch body {
        case .blocking(let handler):
            do {
                try handler(payload, context)
                return (.success, nil)
            } catch {
                return outcome(of: error)
            }
        case .async(let handler):
            let result = OneShot<(WorkerMessage.Outcome, String?)>()
            Task {
                do {
                    try await handler(payload, context)
                    result.fulfil((.success, nil))
                } catch {
                    result.fulfil(outcome(of: error))
                }
            }
            return result.wait()
        }
    }

    private static func outcome(of error: any Error) -> (WorkerMessage.Outcome, String?) {
        let (permanent, reason) = JobError.classify(error)
        return (permanent ? .rejected : .failure, reason)
    }
}

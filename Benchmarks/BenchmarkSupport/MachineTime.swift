import Foundation

/// Processor time spent so far by this process and by its child processes (the worker processes), in
/// seconds: what a run costs the machine, whatever else the machine was doing.
///
/// On a shared, noisy machine jobs per second swing with the neighbours' load (time stolen from this
/// guest is nobody's processor time here); processor time per job does not, so two builds can be
/// compared by it in far fewer runs.
public struct MachineTime: Sendable {
    /// This process's user and system time, every thread's.
    public var supervisor: Double
    /// The running time of every thread of every live child process, from `/proc/<pid>/task/*/schedstat`
    /// (nanoseconds, unlike the clock ticks of `/proc/<pid>/stat`). A child that already exited is not in it.
    public var children: Double

    public static func now() -> MachineTime {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let own =
            Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
        return MachineTime(supervisor: own, children: childrenSeconds())
    }

    public static func - (left: MachineTime, right: MachineTime) -> MachineTime {
        MachineTime(supervisor: left.supervisor - right.supervisor, children: left.children - right.children)
    }

    private static func childrenSeconds() -> Double {
        let me = getpid()
        let files = FileManager.default
        var nanoseconds = 0
        for entry in (try? files.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let stat = read("/proc/\(pid)/stat"),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // After "pid (comm) ": state, then the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, Int32(fields[1]) == me else { continue }
            for task in (try? files.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? [] {
                if let line = read("/proc/\(pid)/task/\(task)/schedstat"),
                    let first = line.split(separator: " ").first, let value = Int(first)
                {
                    nanoseconds += value
                }
            }
        }
        return Double(nanoseconds) / 1e9
    }

    private static func read(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        return (try? handle.readToEnd()).map { String(decoding: $0, as: UTF8.self) }
    }
}

import Foundation

/// Runs a program to its end and returns its exit status (or 128 + the signal that ended it), through
/// posix_spawn and a blocking waitpid on that one child.
///
/// Not Foundation's `Process`: its `waitUntilExit` was seen waiting forever on a child that had already
/// exited (a zombie nobody reaped) while the suite's other tests started processes of their own.
public func spawnAndWait(_ path: String, _ arguments: [String], quiet: Bool = false) -> Int32 {
    var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if quiet {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    }
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, path, &actions, nil, argv, environ) == 0 else { return 127 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { return 127 }
    }
    let signal = status & 0x7F
    return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
}

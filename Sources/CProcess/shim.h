// Process helpers Swift cannot express safely: what runs between fork and exec must be async-signal-safe
// C, and prctl is variadic.
#ifndef FAIRWAY_CPROCESS_SHIM_H
#define FAIRWAY_CPROCESS_SHIM_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/// Starts the program at `file` (a path: the caller searches PATH) with `argv` and `envp`, its stdin and stdout the
/// given descriptors, its stderr `stderr_fd` (-1: shared with the caller), in the folder `directory` (NULL:
/// the caller's; a relative `file` is then relative to it), and with `data_limit` > 0 that many bytes of data
/// (RLIMIT_DATA: heap and private writable mappings), so that a job that balloons fails its allocation
/// there instead of growing until the kernel's OOM killer picks a process. The child gets default signal handling, an empty
/// signal mask, its own process group (a terminal's Ctrl-C reaches the supervisor only), no other open
/// descriptors, and SIGKILL when the calling *thread* ends (PR_SET_PDEATHSIG follows the forking thread: call it
/// from one that lives as long as the supervisor, as WorkerSpawner does). Returns the child's pid, or -errno.
static inline pid_t fw_spawn_worker(const char *file, char *const argv[], char *const envp[], int stdin_fd,
                                    int stdout_fd, int stderr_fd, const char *directory, int64_t data_limit) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid > 0) return pid;

    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int signo = 1; signo < NSIG; signo++) {
        if (signo == SIGKILL || signo == SIGSTOP) continue;
        signal(signo, SIG_DFL);
    }
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent) _exit(125);
    if (stdin_fd != 0 && dup2(stdin_fd, 0) < 0) _exit(126);
    if (stdout_fd != 1 && dup2(stdout_fd, 1) < 0) _exit(126);
    if (stderr_fd >= 0 && stderr_fd != 2 && dup2(stderr_fd, 2) < 0) _exit(126);
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
#endif
    {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = 3; fd < (max > 0 ? max : 65536); fd++) close((int)fd);
    }
    if (directory != NULL && chdir(directory) != 0) _exit(126);
    if (data_limit > 0) {
        struct rlimit limit = {(rlim_t)data_limit, (rlim_t)data_limit};
        if (setrlimit(RLIMIT_DATA, &limit) != 0) _exit(126);
    }
    execve(file, argv, envp);
    _exit(127);
}

/// A descriptor that becomes readable when process `pid` ends, close-on-exec (pidfd_open, Linux 5.3); -1 when
/// the kernel has none.
static inline int fw_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

/// pipe2(fds, O_CLOEXEC), which glibc declares only under _GNU_SOURCE. Returns 0, or -1 with errno set.
static inline int fw_pipe_cloexec(int fds[2]) { return (int)syscall(SYS_pipe2, fds, O_CLOEXEC); }

/// Asks the kernel to SIGKILL the calling process when its parent dies.
static inline int fw_die_with_parent(void) { return prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); }

#endif

// The floor under any synchronous pipe protocol on this machine: a process sends 8 bytes down a pipe and
// waits; another answers with 8 bytes. PAIRS such pairs run at once; SPIN_NS is how long a read polls
// before it blocks (0: block at once, as Fairway does).
//
//   gcc -O2 Benchmarks/scripts/pipe-round-trip.c -o /tmp/rt && /tmp/rt 0 1 && /tmp/rt 0 2
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

// Reads what is there, polling without sleeping for up to `spin` ns first; 0 at end of input.
static long receive(int fd, char *buffer, long spin) {
    long end = now() + spin;
    for (;;) {
        long count = read(fd, buffer, 64);
        if (count >= 0) return count;
        if (errno != EAGAIN) return -1;
        if (now() > end) {
            struct pollfd descriptor = {fd, POLLIN, 0};
            poll(&descriptor, 1, -1);
        }
    }
}

static void pair(long spin, int pairs) {
    int jobs[2], results[2];
    if (pipe(jobs) != 0 || pipe(results) != 0) _exit(1);
    fcntl(jobs[0], F_SETFL, O_NONBLOCK);
    fcntl(results[0], F_SETFL, O_NONBLOCK);
    char buffer[64] = {0};
    if (fork() == 0) {
        close(jobs[1]);
        close(results[0]);
        while (receive(jobs[0], buffer, spin) > 0) write(results[1], buffer, 8);
        _exit(0);
    }
    close(jobs[0]);
    close(results[1]);
    const int rounds = 50000;
    long started = now();
    for (int i = 0; i < rounds; i++) {
        write(jobs[1], buffer, 8);
        receive(results[0], buffer, spin);
    }
    printf("spin %ld ns, %d pairs: %.2f us per round trip\n", spin, pairs, (now() - started) / (double)rounds / 1000.0);
    fflush(stdout);
    close(jobs[1]);
    wait(NULL);
    _exit(0);
}

int main(int argc, char **argv) {
    long spin = argc > 1 ? atol(argv[1]) : 0;
    int pairs = argc > 2 ? atoi(argv[2]) : 1;
    for (int k = 0; k < pairs; k++) {
        if (fork() == 0) pair(spin, pairs);
    }
    for (int k = 0; k < pairs; k++) wait(NULL);
    return 0;
}

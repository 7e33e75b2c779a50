// A worker that costs nothing but its system calls: it speaks the worker protocol (docs/worker-protocol.md),
// offers a pipeline of 64, and answers every job `success` with one write per result, yielding up to 4 times
// before it sleeps on an empty pipe, as the Swift worker does. In place of `fairway` it shows how much of a
// no-op job's cost in a worker process is the worker's own:
//
//   gcc -O2 -D_GNU_SOURCE Benchmarks/scripts/null-worker.c -o /tmp/null-worker/fairway
//   FAIRWAY_WORKER_BINARY=/tmp/null-worker/fairway .build-benchmarks/release/EngineBenchmarks
//       --filter "no-op jobs, 8 workers, 8 queues, swift worker processes, pipeline 32$"    (one line)
//
// A benchmark tool only: it trusts its input and ignores everything in a job but its id.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char buffer[1 << 20];
static size_t have = 0, at = 0;

// Reads more input; 0 at the end of it.
static int fill(void) {
    if (at > 0) {
        memmove(buffer, buffer + at, have - at);
        have -= at;
        at = 0;
    }
    for (int yields = 0;; yields++) {
        ssize_t n = read(0, buffer + have, sizeof buffer - have);
        if (n > 0) {
            have += (size_t)n;
            return 1;
        }
        if (n == 0) return 0;
        if (yields < 4) {
            sched_yield();
            continue;
        }
        struct pollfd input = {0, POLLIN, 0};
        poll(&input, 1, -1);
    }
}

static uint32_t length(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

// One message with an empty body, in one write.
static void send(const char *header) {
    size_t n = strlen(header), total = n + 8, written = 0;
    unsigned char frame[512];
    frame[0] = n >> 24, frame[1] = n >> 16, frame[2] = n >> 8, frame[3] = n;
    memcpy(frame + 4, header, n);
    memset(frame + 4 + n, 0, 4);
    while (written < total) {
        ssize_t k = write(1, frame + written, total - written);
        if (k <= 0) exit(1);
        written += (size_t)k;
    }
}

int main(void) {
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    char header[256];
    snprintf(header, sizeof header, "{\"kind\":\"hello\",\"protocol\":1,\"pid\":%d,\"pipeline\":64}", getpid());
    send(header);
    for (;;) {
        while (have - at < 4)
            if (!fill()) return 0;
        uint32_t headerLength = length(buffer + at);
        while (have - at < 8 + headerLength)
            if (!fill()) return 0;
        uint32_t bodyLength = length(buffer + at + 4 + headerLength);
        while (have - at < 8 + headerLength + bodyLength)
            if (!fill()) return 0;
        char *text = (char *)buffer + at + 4, *id = memmem(text, headerLength, "\"id\":\"", 6);
        char value[128] = "?";
        if (id) {
            id += 6;
            char *end = memchr(id, '"', text + headerLength - id);
            size_t n = end ? (size_t)(end - id) : 0;
            if (n > 100) n = 100;
            memcpy(value, id, n);
            value[n] = 0;
        }
        at += 8 + headerLength + bodyLength;
        snprintf(header, sizeof header, "{\"kind\":\"result\",\"id\":\"%s\",\"outcome\":\"success\"}", value);
        send(header);
    }
}

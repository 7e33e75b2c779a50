#!/usr/bin/env python3
"""One worker, jobs sent ahead: frames jobs of one type in batches of 200 (as Fairway's pipeline sends them),
reads the results, and prints the mean time a job and the worker's processor time a job (all its threads,
from /proc), measured after as many jobs again as warm-up. A worker library's own per-job cost under
pipelining, without Fairway.

    python3 Benchmarks/scripts/worker-pipelined.py --type block --ms 1 --jobs 1000 -- node Workers/node/example-worker.js
"""
import argparse
import json
import os
import struct
import subprocess
import time

parser = argparse.ArgumentParser()
parser.add_argument("--type", default="sleep", help="the job type (the examples' sleep, block, noop)")
parser.add_argument("--ms", default="0", help='the payload\'s "ms"')
parser.add_argument("--jobs", type=int, default=1000)
parser.add_argument("--ahead", type=int, default=None,
                    help="keep this many jobs sent behind the running one, one more sent as each result comes "
                         "(as Fairway does for jobs near its 25 ms pipeline budget); default: batches of 200")
parser.add_argument("command", nargs=argparse.REMAINDER)
arguments = parser.parse_args()
command = arguments.command[1:] if arguments.command[:1] == ["--"] else arguments.command
BATCH = 200
worker = subprocess.Popen(
    command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    env={"FAIRWAY_PROCESS_WORKER": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin")})


def read_exactly(count):
    data = b""
    while len(data) < count:
        chunk = worker.stdout.read(count - len(data))
        if not chunk:
            raise SystemExit(f"the worker closed its output (exit status {worker.wait()})")
        data += chunk
    return data


def receive():
    header = json.loads(read_exactly(struct.unpack(">I", read_exactly(4))[0]))
    read_exactly(struct.unpack(">I", read_exactly(4))[0])
    return header


def frame(header, body):
    encoded = json.dumps(header).encode()
    return struct.pack(">I", len(encoded)) + encoded + struct.pack(">I", len(body)) + body


def processor_seconds():
    ticks = 0
    for task in os.listdir(f"/proc/{worker.pid}/task"):
        try:
            with open(f"/proc/{worker.pid}/task/{task}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except FileNotFoundError:
            pass  # a thread that ended
    return ticks / os.sysconf("SC_CLK_TCK")


receive()  # hello
body = b'{"ms":%s}' % arguments.ms.encode()


def send(index):
    header = {"kind": "job", "id": str(index), "queue": "q", "jobType": arguments.type, "attempt": 1,
              "maxAttempts": 1, "timeoutSeconds": 30}
    worker.stdin.write(frame(header, body))


def check(result):
    if result.get("outcome") != "success":
        raise SystemExit(f"job {result.get('id')}: {result.get('outcome')} {result.get('reason', '')}")


for measured in (False, True):
    processor, started = processor_seconds(), time.perf_counter()
    if arguments.ahead is None:
        for first in range(0, arguments.jobs, BATCH):
            count = min(BATCH, arguments.jobs - first)
            for index in range(first, first + count):
                send(index)
            worker.stdin.flush()
            for _ in range(count):
                check(receive())
    else:
        sent = min(arguments.ahead + 1, arguments.jobs)
        for index in range(sent):
            send(index)
        worker.stdin.flush()
        for _ in range(arguments.jobs):
            check(receive())
            if sent < arguments.jobs:
                send(sent)
                worker.stdin.flush()
                sent += 1
    if measured:
        elapsed = (time.perf_counter() - started) / arguments.jobs
        spent = (processor_seconds() - processor) / arguments.jobs
        print(f"{arguments.type} {arguments.ms} ms, {arguments.jobs} jobs: {elapsed * 1e3:.3f} ms a job, "
              f"worker processor time {spent * 1e6:.1f} µs a job ({' '.join(command)})")
worker.stdin.close()
worker.wait()

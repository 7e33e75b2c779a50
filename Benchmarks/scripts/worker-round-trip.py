#!/usr/bin/env python3
"""One worker, sequential round trips: frame a `sleep` {"ms":0} job, send it, read the result; prints the
mean time per job. A worker library's own per-job cost, without Fairway.

    python3 Benchmarks/scripts/worker-round-trip.py [--jobs N] -- php Workers/php/examples/example_worker.php
"""
import argparse
import json
import struct
import subprocess
import time

parser = argparse.ArgumentParser()
parser.add_argument("--jobs", type=int, default=200)
parser.add_argument("command", nargs=argparse.REMAINDER)
arguments = parser.parse_args()
command = arguments.command[1:] if arguments.command[:1] == ["--"] else arguments.command
worker = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def receive():
    header = json.loads(worker.stdout.read(struct.unpack(">I", worker.stdout.read(4))[0]))
    worker.stdout.read(struct.unpack(">I", worker.stdout.read(4))[0])
    return header


def send(header, body=b""):
    encoded = json.dumps(header).encode()
    worker.stdin.write(struct.pack(">I", len(encoded)) + encoded + struct.pack(">I", len(body)) + body)
    worker.stdin.flush()


receive()  # hello
started = time.monotonic()
for index in range(arguments.jobs):
    send({"kind": "job", "id": str(index), "queue": "q", "jobType": "sleep", "attempt": 1, "maxAttempts": 1,
          "timeoutSeconds": 30}, b'{"ms":0}')
    receive()
print(f"{command[0]}: {(time.monotonic() - started) / arguments.jobs * 1e6:.0f} µs a job over {arguments.jobs} jobs")
worker.stdin.close()
worker.wait()

#!/usr/bin/env python3
"""Seconds a worker takes to answer one job whose body is SIZE bytes (a JSON object holding a string of that
many x's): the time to read a large frame, which must grow with the size, not with its square.

    python3 Benchmarks/scripts/worker-large-body.py 32000000 node Workers/node/example-worker.js
    python3 Benchmarks/scripts/worker-large-body.py 32000000 --type sleep .build-benchmarks/release/fairway

The examples' `echo-size` job answers with the size it read; `--type sleep` sends {"ms": 0, "data": …}
instead, for the Swift worker, which has no `echo-size`.
"""
import json
import os
import struct
import subprocess
import sys
import time

size = int(sys.argv[1])
command = sys.argv[2:]
job_type = "echo-size"
if command[:1] == ["--type"]:
    job_type, command = command[1], command[2:]
worker = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          env={**os.environ, "FAIRWAY_PROCESS_WORKER": "1"})


def read(count):
    data = b""
    while len(data) < count:
        chunk = worker.stdout.read(count - len(data))
        if not chunk:
            raise SystemExit("the worker closed its stdout")
        data += chunk
    return data


def receive():
    header = read(struct.unpack(">I", read(4))[0])
    read(struct.unpack(">I", read(4))[0])
    return json.loads(header)


receive()  # hello
payload = {"data": "x" * size} if job_type == "echo-size" else {"ms": 0, "data": "x" * size}
body = json.dumps(payload).encode()
header = json.dumps({"kind": "job", "id": "1", "queue": "q", "jobType": job_type, "attempt": 1, "maxAttempts": 1,
                     "timeoutSeconds": 600}, separators=(",", ":")).encode()
started = time.monotonic()
worker.stdin.write(struct.pack(">I", len(header)) + header + struct.pack(">I", len(body)) + body)
worker.stdin.flush()
result = receive()
elapsed = time.monotonic() - started
print(f"{' '.join(command)}: a {size / 1e6:.0f} MB body answered in {elapsed:.2f} s "
      f"({result.get('outcome')}{': ' + result['reason'] if result.get('reason') else ''})")
worker.stdin.close()
worker.wait()

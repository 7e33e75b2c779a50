#!/usr/bin/env python3
"""A Fairway worker process written in Python: the protocol of docs/worker-protocol.md, standard library only.

Point a process-isolated queue at it:

    queues:
      - name: reports
        isolation: process
        command: ["python3", "docs/examples/python_worker.py"]

Fairway starts as many of these as the queue has jobs running, sends each one job at a time on stdin, and
reads the result on stdout. Print logs to stderr: stdout belongs to the protocol.
"""

import json
import os
import signal
import struct
import sys
import time

PROTOCOL = 1

# Set by SIGTERM: Fairway's way of saying the running job is past its timeout (or the drain deadline).
cancelled = False


def on_sigterm(_signo, _frame):
    global cancelled
    cancelled = True


class Rejected(Exception):
    """A job that can never succeed: dead-lettered at once instead of retried."""


def append(payload):
    """Appends a line to a file: {"path": "...", "line": "..."}."""
    try:
        path, line = payload["path"], payload["line"]
    except (TypeError, KeyError) as missing:
        raise Rejected(f"append: missing field {missing}")
    with open(path, "a") as out:
        out.write(f"{line} pid={os.getpid()}\n")


def sleep(payload):
    """Sleeps {"ms": N} milliseconds, stopping early when cancelled."""
    end = time.monotonic() + float(payload.get("ms", 0)) / 1000
    while not cancelled and time.monotonic() < end:
        time.sleep(min(0.01, max(0, end - time.monotonic())))


def fail(payload):
    """Fails on purpose: retried, then dead-lettered with the message."""
    raise RuntimeError(payload.get("message", "python worker failed on purpose"))


def crash(_payload):
    """Dies mid-job: Fairway counts a crash and starts another worker."""
    os._exit(3)


HANDLERS = {"append": append, "sleep": sleep, "fail": fail, "crash": crash}


def read_exactly(stream, count):
    data = b""
    while len(data) < count:
        chunk = stream.read(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def receive(stream):
    """The next (header, body), or None when Fairway closed the pipe: time to exit."""
    length = read_exactly(stream, 4)
    if length is None:
        return None
    header = json.loads(read_exactly(stream, struct.unpack(">I", length)[0]))
    body = read_exactly(stream, struct.unpack(">I", read_exactly(stream, 4))[0])
    return header, body


def send(stream, header, body=b""):
    encoded = json.dumps(header).encode()
    stream.write(struct.pack(">I", len(encoded)) + encoded + struct.pack(">I", len(body)) + body)
    stream.flush()


def run(header, body):
    handler = HANDLERS.get(header.get("jobType"))
    if handler is None:
        return "rejected", f"unknown job type '{header.get('jobType')}' (python worker)"
    try:
        payload = json.loads(body or b"{}")
    except ValueError as error:
        return "rejected", f"payload is not JSON: {error}"
    try:
        handler(payload)
        return "success", None
    except Rejected as error:
        return "rejected", str(error)
    except Exception as error:  # a failed job, never a dead worker
        return "failure", f"{type(error).__name__}: {error}"


def main():
    global cancelled
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    jobs, results = sys.stdin.buffer, sys.stdout.buffer
    send(results, {"kind": "hello", "protocol": PROTOCOL, "pid": os.getpid()})
    while True:
        message = receive(jobs)
        if message is None:
            return 0
        header, body = message
        cancelled = False
        outcome, reason = run(header, body)
        result = {"kind": "result", "id": header["id"], "outcome": outcome}
        if reason:
            result["reason"] = reason
        send(results, result)


if __name__ == "__main__":
    sys.exit(main())

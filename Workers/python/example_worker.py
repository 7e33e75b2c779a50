#!/usr/bin/env python3
"""A worker built on fairway_worker: the job types Fairway's tests and the docs use.

    queues:
      - { name: reports, isolation: process, command: ["python3", "Workers/python/example_worker.py"] }
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fairway_worker import PermanentError, Worker  # noqa: E402

worker = Worker()


@worker.handler("append")
def append(payload, context):
    """Appends "LINE pid=PID attempt=N" to a file: {"path": "...", "line": "..."}."""
    if not isinstance(payload, dict) or "path" not in payload or "line" not in payload:
        raise PermanentError("append: the payload needs 'path' and 'line'")
    with open(payload["path"], "a") as out:
        key = f" key={context.key}" if context.key is not None else ""
        out.write(f"{payload['line']} pid={os.getpid()} attempt={context.attempt}{key}\n")


@worker.handler("append-later")
async def append_later(payload, context):
    """`append` after awaiting {"ms": N}, and with the event loop's id; {"fail": "why"} raises after the wait."""
    import asyncio  # here, not above: it costs a start 35 ms that the other job types do not need

    await asyncio.sleep(float(payload.get("ms", 0)) / 1000)
    if "fail" in payload:
        raise RuntimeError(payload["fail"])
    with open(payload["path"], "a") as out:
        out.write(f"{payload['line']} attempt={context.attempt} loop={id(asyncio.get_running_loop())}\n")


@worker.handler("sleep")
def sleep(payload):
    """Sleeps {"ms": N}; Fairway's SIGTERM at the timeout interrupts it."""
    ms = float((payload or {}).get("ms", 0))
    if ms > 0:  # time.sleep(0) still waits out the kernel's timer slack (about 0.1 ms here)
        time.sleep(ms / 1000)


@worker.handler("fail")
def fail(payload, context):
    message = (payload or {}).get("message", "failed on purpose")
    print(f"failing on purpose: {message}")  # to stderr: stdout is the protocol's
    raise RuntimeError(message)


@worker.handler("reject")
def reject(payload, context):
    raise PermanentError((payload or {}).get("message", "rejected on purpose"))


@worker.handler("crash")
def crash(payload, context):
    os._exit(3)


@worker.handler("spawn")
def spawn(payload, context):
    """Starts a program that reads stdin and writes stdout, as a job that shells out might (a fixed one)."""
    subprocess.run(["sh", "-c", "cat; echo from a child of job $0", context.id], timeout=5, check=True)


@worker.handler("echo-size")
def echo_size(payload, context):
    """Fails with the payload's size, so a test can see a large body arrived whole."""
    raise PermanentError(f"size {len(payload.get('data', ''))}")


if __name__ == "__main__":
    sys.exit(worker.run())

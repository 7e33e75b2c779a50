#!/usr/bin/env python3
"""Seconds from spawning `fairway run` to its first and its last completed job, SQLite queues of no-op
jobs run on threads and in worker processes (the Swift worker), alternating round by round.

    python3 Benchmarks/scripts/isolation-from-start.py --fairway .build/release/fairway [--jobs 20000] [--rounds 3]
        [--queues 1]     (more: the jobs spread evenly over that many queues, each defined in the config)
        [--prefetch 32]  (each queue's credit: with one queue of no-op jobs it bounds the rate, see
                          docs/operations.md, "Prefetch bounds one queue's rate")

The queue file is written once (`fairway enqueue --jsonl -`) and copied fresh for every run; `queue_stats`
is polled every 2 ms.
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--fairway", required=True)
parser.add_argument("--jobs", type=int, default=20000)
parser.add_argument("--workers", type=int, default=8)
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--queues", type=int, default=1)
parser.add_argument("--prefetch", type=int, default=32)
options = parser.parse_args()
fairway = os.path.abspath(options.fairway)

folder = tempfile.mkdtemp(prefix="isolation-from-start-")
base = os.path.join(folder, "base.db")
names = ["q"] if options.queues == 1 else [f"q{index}" for index in range(options.queues)]
lines = "".join(json.dumps({"queue": names[job % len(names)], "type": "noop"}) + "\n" for job in range(options.jobs))
subprocess.run([fairway, "enqueue", "--db", base, "--jsonl", "-", "--create", "--any-queue", "--any-type"],
               input=lines.encode(), check=True, stdout=subprocess.DEVNULL)
with sqlite3.connect(base) as db:
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the copies below take the file alone


def run(isolation):
    directory = os.path.join(folder, isolation)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    shutil.copy(base, os.path.join(directory, "q.db"))
    with open(os.path.join(directory, "fairway.yaml"), "w") as config:
        config.write(f"workers: {options.workers}\nsources: [{{ kind: sqlite, path: q.db }}]\n"
                     f"defaults: {{ isolation: {isolation} }}\n"
                     "queues:\n" + "".join(f"  - {{ name: {name}, prefetch: {options.prefetch} }}\n" for name in names))
    start = time.monotonic()
    process = subprocess.Popen([fairway, "run", "--config", "fairway.yaml"], cwd=directory,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = None
    database = None
    try:
        while time.monotonic() - start < 300:
            time.sleep(0.002)
            try:
                database = database or sqlite3.connect(os.path.join(directory, "q.db"), timeout=0.1)
                row = database.execute("SELECT SUM(completed) FROM queue_stats").fetchone()
            except sqlite3.Error:
                continue
            done = (row[0] or 0) if row else 0
            if done and first is None:
                first = time.monotonic() - start
            if done >= options.jobs:
                break
        return first, time.monotonic() - start
    finally:
        process.terminate()
        process.wait()


for _ in range(options.rounds):
    cells = []
    for isolation in ["thread", "process"]:
        first, total = run(isolation)
        cells.append(f"{isolation}: first {first:.3f} s, all {total:.2f} s ({options.jobs / total:,.0f} jobs/s)")
    print(" | ".join(cells), flush=True)
shutil.rmtree(folder, ignore_errors=True)

#!/usr/bin/env python3
"""Seconds from spawning `fairway run` to its first and its last completed job, against a backlog of no-op
jobs run on threads and in worker processes (the Swift worker), alternating round by round.

    python3 Benchmarks/scripts/isolation-from-start.py --fairway .build/release/fairway [--jobs 20000] [--rounds 3]
        [--queues 1]     (more: the jobs spread evenly over that many queues, each defined in the config)
        [--prefetch 32]  (each queue's credit: with one queue of no-op jobs it bounds the rate, see
                          docs/operations.md, "Prefetch bounds one queue's rate")
        [--amqp amqp://guest:guest@127.0.0.1:5672/]
                         (a RabbitMQ backlog instead of a SQLite file: a restart against a deep broker queue)
        [--worker "php Workers/php/examples/example_worker.php" ...]
                         (worker programs, one row each beside the threads: the jobs are then `sleep` with
                          `{"ms":0}`, the no-op every bundled example has, and these rows replace the
                          Swift worker's)

SQLite: the queue file is written once (`fairway enqueue --jsonl -`) and copied fresh for every run;
`queue_stats` is polled every 2 ms. RabbitMQ: the backlog is published before every run (`fairway enqueue
--amqp`, to queues named `isolation-<random>-…`, deleted at the end with `rabbitmqctl`), and `/metrics` is
polled every 10 ms for `fairway_jobs_completed_total`.
"""
import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("--fairway", required=True)
parser.add_argument("--jobs", type=int, default=20000)
parser.add_argument("--workers", type=int, default=8)
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--queues", type=int, default=1)
parser.add_argument("--prefetch", type=int, default=32)
parser.add_argument("--amqp", help="a broker URL: measure against a RabbitMQ backlog instead of SQLite")
parser.add_argument("--worker", action="append", default=[],
                    help="a worker program's command line (repeatable): rows for it instead of the Swift worker")
options = parser.parse_args()
fairway = os.path.abspath(options.fairway)

folder = tempfile.mkdtemp(prefix="isolation-from-start-")
base = os.path.join(folder, "base.db")
prefix = f"isolation-{secrets.token_hex(3)}-" if options.amqp else ""
names = [f"{prefix}q"] if options.queues == 1 else [f"{prefix}q{index}" for index in range(options.queues)]
job = {"type": "sleep", "payload": {"ms": 0}} if options.worker else {"type": "noop"}
lines = "".join(json.dumps({"queue": names[index % len(names)], **job}) + "\n" for index in range(options.jobs))
port = 19000 + secrets.randbelow(1000)
if not options.amqp:
    subprocess.run([fairway, "enqueue", "--db", base, "--jsonl", "-", "--create", "--any-queue", "--any-type"],
                   input=lines.encode(), check=True, stdout=subprocess.DEVNULL)
    with sqlite3.connect(base) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the copies below take the file alone


def completed_sqlite(directory, state):
    try:
        state["db"] = state.get("db") or sqlite3.connect(os.path.join(directory, "q.db"), timeout=0.1)
        row = state["db"].execute("SELECT SUM(completed) FROM queue_stats").fetchone()
    except sqlite3.Error:
        return 0
    return (row[0] or 0) if row else 0


def completed_amqp(directory, state):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
            text = response.read().decode()
    except OSError:
        return 0
    pattern = r'^fairway_jobs_completed_total\{[^}]*outcome="success"[^}]*\} ([0-9.e+]+)$'
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


def run(isolation, command=None):
    directory = os.path.join(folder, f"{isolation}-{secrets.token_hex(2)}")
    os.makedirs(directory)
    if options.amqp:
        subprocess.run([fairway, "enqueue", "--amqp", options.amqp, "--jsonl", "-", "--any-queue"],
                       input=lines.encode(), check=True, stdout=subprocess.DEVNULL)
        source = f"{{ kind: amqp, url: \"{options.amqp}\" }}"
    else:
        shutil.copy(base, os.path.join(directory, "q.db"))
        source = "{ kind: sqlite, path: q.db }"
    program = ""
    if command:  # the program by its full path, and its files too: the worker starts in the config's folder
        full = [shutil.which(command[0]) or command[0]] + [os.path.abspath(part) if os.path.exists(part) else part
                                                            for part in command[1:]]
        program = f", command: {json.dumps(full)}"
    with open(os.path.join(directory, "fairway.yaml"), "w") as config:
        config.write(f"workers: {options.workers}\nsources: [{source}]\n"
                     f"http: {{ listen: \"127.0.0.1:{port}\" }}\n"
                     f"defaults: {{ isolation: {isolation} }}\n"
                     "queues:\n" + "".join(f"  - {{ name: {name}, prefetch: {options.prefetch}{program} }}\n" for name in names))
    completed = completed_amqp if options.amqp else completed_sqlite
    interval = 0.01 if options.amqp else 0.002
    start = time.monotonic()
    process = subprocess.Popen([fairway, "run", "--config", "fairway.yaml"], cwd=directory,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = None
    state = {}
    try:
        while time.monotonic() - start < 300:
            time.sleep(interval)
            done = completed(directory, state)
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
    variants = [("thread", None, "thread")] + (
        [("process", shlex.split(worker), worker) for worker in options.worker] or [("process", None, "process")])
    for isolation, command, name in variants:
        first, total = run(isolation, command)
        cells.append(f"{name}: first {first:.3f} s, all {total:.2f} s ({options.jobs / total:,.0f} jobs/s)")
    print(" | ".join(cells), flush=True)
shutil.rmtree(folder, ignore_errors=True)
if options.amqp and shutil.which("rabbitmqctl"):
    listed = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name"], capture_output=True, text=True).stdout
    for name in listed.split():
        if name.startswith(prefix):
            subprocess.run(["rabbitmqctl", "-q", "delete_queue", name], capture_output=True)

#!/usr/bin/env python3
"""Seconds from spawning `fairway run` to its first completed job, on a fresh copy of a queue file.

    python3 Benchmarks/scripts/first-job.py --fairway .build/release/fairway --file BASE.db \
        --queues 'q.{0..119}' [--keyed] [--rounds 5]

Each round copies FILE beside a generated fairway.yaml (2 workers, one SQLite source, the queues given,
keyed with --keyed), spawns `fairway run`, polls `queue_stats` every 2 ms until a job more than the file
already counted has completed, prints the seconds and stops the process. A file that an earlier run of
the same configuration has declared (and, for keyed queues, marked) measures a restart.
"""
import argparse
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--fairway", required=True)
parser.add_argument("--file", required=True)
parser.add_argument("--queues", default="q.{0..119}")
parser.add_argument("--keyed", action="store_true")
parser.add_argument("--rounds", type=int, default=5)
options = parser.parse_args()

folder = tempfile.mkdtemp(prefix="first-job-")
keys = ", keys: true" if options.keyed else ""
with open(os.path.join(folder, "fairway.yaml"), "w") as config:
    config.write('workers: 2\nhttp: { listen: "127.0.0.1:0" }\nsources: [{ kind: sqlite, path: q.db }]\n'
                 f'queues: [{{ name: "{options.queues}"{keys} }}]\n')
database = os.path.join(folder, "q.db")
for _ in range(options.rounds):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(database + suffix):
            os.remove(database + suffix)
    shutil.copy(options.file, database)
    before = sqlite3.connect(database).execute("SELECT coalesce(sum(completed), 0) FROM queue_stats").fetchone()[0]
    started = time.time()
    process = subprocess.Popen([os.path.abspath(options.fairway), "run", "--config", "fairway.yaml"], cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reader = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    while True:
        time.sleep(0.002)
        try:
            done = reader.execute("SELECT coalesce(sum(completed), 0) FROM queue_stats").fetchone()[0]
        except sqlite3.OperationalError:
            continue
        if done > before:
            break
    print(f"{time.time() - started:.3f}", flush=True)
    process.terminate()
    process.wait()
shutil.rmtree(folder)

#!/usr/bin/env python3
"""What recycling workers costs a queue, through `fairway run` on SQLite: the time from the jobs' enqueue to
the queue's emptying, with workers recycled every N jobs, against no recycling in the same sitting.

    python3 Benchmarks/scripts/recycle-run.py --fairway .build-benchmarks/release/fairway \
        --recycle 25 --jobs 800 --ms 5 -- php Workers/php/examples/example_worker.php

The worker command must handle `sleep` with {"ms": N} (every bundled example does).
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time


def drain(fairway, command, recycle, jobs, ms, workers):
    folder = tempfile.mkdtemp(prefix="fairway-recycle-")
    try:
        config = os.path.join(folder, "fairway.yaml")
        with open(config, "w") as file:
            file.write(
                f"workers: {workers}\n"
                'sources: [{ kind: sqlite, path: "q.db" }]\n'
                "queues:\n"
                f"  - {{ name: p, isolation: process, command: {json.dumps(command)}, recycleAfterJobs: {recycle} }}\n"
            )
        run = subprocess.Popen([fairway, "run", "--config", config, "--log-level", "warning"], cwd=folder)
        try:
            database = os.path.join(folder, "q.db")
            while not os.path.exists(database):
                time.sleep(0.05)
            time.sleep(0.5)  # the first worker is up: its start is not what this measures
            subprocess.run(
                [fairway, "enqueue", "--db", database, "--queue", "p", "--type", "sleep",
                 "--payload", json.dumps({"ms": ms}), "--count", str(jobs)],
                check=True, capture_output=True)
            started = time.time()
            while True:
                stats = subprocess.run([fairway, "stats", "--db", database, "--json"], capture_output=True, text=True)
                queue = json.loads(stats.stdout)["queues"]["p"]
                if queue["ready"] + queue["leased"] + queue["delayed"] == 0:
                    break
                time.sleep(0.02)
            return time.time() - started, queue["dead"]
        finally:
            run.terminate()
            run.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fairway", required=True)
    parser.add_argument("--recycle", type=int, default=25)
    parser.add_argument("--jobs", type=int, default=800)
    parser.add_argument("--ms", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("command", nargs="+")
    arguments = parser.parse_args()
    command = [os.path.abspath(part) if os.path.exists(part) else part for part in arguments.command]
    ideal = arguments.jobs * arguments.ms / 1000 / arguments.workers
    print(f"{arguments.jobs} jobs of {arguments.ms} ms on {arguments.workers} workers: {ideal:.2f} s at best")
    for round in range(arguments.rounds):
        for recycle in (0, arguments.recycle):
            seconds, dead = drain(arguments.fairway, command, recycle, arguments.jobs, arguments.ms, arguments.workers)
            print(f"round {round + 1}  recycleAfterJobs {recycle:>5}  {seconds:.2f} s  dead {dead}")


if __name__ == "__main__":
    main()

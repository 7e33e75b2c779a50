#!/usr/bin/env python3
"""Instructions a job costs a worker in user space, counted by valgrind (callgrind), not timed: the one figure
of a worker's per-job cost that does not move with the machine's other tenants. The worker is fed N and then
2N no-op job frames from a file (its results go to /dev/null), and the difference is divided by N, so its
start-up cancels out. The system calls' kernel time is not counted.

    python3 Benchmarks/scripts/worker-instructions.py --jobs 20000 -- .build-benchmarks/release/fairway
    python3 Benchmarks/scripts/worker-instructions.py --type sleep --payload '{"ms":0}' -- python3 Workers/python/example_worker.py

Needs valgrind (`apt-get install valgrind`; not installed by .ci/install, since no test uses it).
A program with debug information is copied without it first (valgrind 3.19 cannot read Swift 6.3's DWARF 5).
--top prints the functions with the most instructions a job (callgrind_annotate, inclusive).
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile

parser = argparse.ArgumentParser()
parser.add_argument("--jobs", type=int, default=20000)
parser.add_argument("--type", default="noop")
parser.add_argument("--payload", default="{}")
parser.add_argument("--top", type=int, default=0)
parser.add_argument("command", nargs=argparse.REMAINDER)
arguments = parser.parse_args()
command = arguments.command[1:] if arguments.command[:1] == ["--"] else arguments.command
folder = tempfile.mkdtemp(prefix="worker-instructions-")
program = shutil.which(command[0]) or command[0]
sections = subprocess.run(["readelf", "-S", "-W", program], capture_output=True, text=True).stdout
if ".debug_info" in sections:
    stripped = os.path.join(folder, os.path.basename(program))
    subprocess.run(["strip", "-g", "-o", stripped, program], check=True)
    command = [stripped] + command[1:]
shown = " ".join(arguments.command[1:] if arguments.command[:1] == ["--"] else arguments.command)


def frames(count):
    path = os.path.join(folder, f"jobs-{count}")
    body = arguments.payload.encode()
    with open(path, "wb") as out:
        for index in range(count):
            header = json.dumps({"kind": "job", "id": str(1_000_000 + index), "queue": f"q{index % 8}",
                                 "jobType": arguments.type, "attempt": 1, "maxAttempts": 3, "timeoutSeconds": 30},
                                separators=(",", ":")).encode()
            out.write(struct.pack(">I", len(header)) + header + struct.pack(">I", len(body)) + body)
    return path


def instructions(count):
    output = os.path.join(folder, f"callgrind-{count}")
    with open(frames(count), "rb") as jobs:
        run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={output}"] + command,
                             stdin=jobs, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, FAIRWAY_PROCESS_WORKER="1"))
    total = re.search(r"Collected : (\d+)", run.stderr)
    if not total:
        raise SystemExit(run.stderr[-2000:])
    return int(total.group(1)), output


first, _ = instructions(arguments.jobs)
second, profile = instructions(2 * arguments.jobs)
print(f"{(second - first) / arguments.jobs:,.0f} instructions a job ({shown})")
if arguments.top:
    annotated = subprocess.run(["callgrind_annotate", "--inclusive=yes", profile], capture_output=True, text=True)
    rows = [line for line in annotated.stdout.splitlines() if re.match(r"\s*[\d,]+ \(", line)]
    for line in rows[:arguments.top]:
        count = int(line.split()[0].replace(",", ""))
        print(f"{count / (2 * arguments.jobs):10,.0f}  {line.split(None, 2)[2][:140]}")
shutil.rmtree(folder)

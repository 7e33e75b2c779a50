#!/usr/bin/env bash
# From `fairway run`'s start against a deep RabbitMQ backlog: seconds to the first completed job, to the
# HTTP listener answering, and to the whole drain. QUEUES queues × PER no-op messages, PREFETCH, 2 workers, the broker on 127.0.0.1.
#   bash Benchmarks/scripts/amqp-start.sh [path/to/fairway]        (default .build/release/fairway)
#   QUEUES=120 PER=1000 PREFETCH=64 (defaults); FAIRWAY_AMQP_URL overrides the broker.
# The queues live in a vhost of their own, deleted at the end with all of them: a thousand queues left on
# the test broker slow every later restart of it (it recovers each one).
set -euo pipefail
bin=${1:-.build/release/fairway}
queues=${QUEUES:-120}
per=${PER:-1000}
prefetch=${PREFETCH:-64}
vhost=fairway-start-bench
rabbitmqctl -q -n rabbit@localhost add_vhost "$vhost" >/dev/null 2>&1 || true
rabbitmqctl -q -n rabbit@localhost set_permissions -p "$vhost" guest ".*" ".*" ".*" >/dev/null
url=${FAIRWAY_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/$vhost}
dir=$(mktemp -d)
trap 'rm -rf "$dir"; rabbitmqctl -q -n rabbit@localhost delete_vhost "$vhost" >/dev/null 2>&1 || true' EXIT
cat >"$dir/fairway.yaml" <<CONF
workers: 2
http: { listen: "127.0.0.1:0" }
sources: [{ kind: amqp, url: "$url", prefetch: $prefetch }]
queues: [{ name: "amqp-start-{1..$queues}" }]
CONF
# Each queue's first message appends a line to first.log, so the first completion is seen the moment it
# happens, even before the HTTP listener is up; the rest are no-ops.
for i in $(seq 1 "$queues"); do
    "$bin" enqueue --amqp "$url" --queue "amqp-start-$i" --type append \
        --payload "{\"path\":\"$dir/first.log\",\"line\":\"q$i\"}" >/dev/null
    "$bin" enqueue --amqp "$url" --queue "amqp-start-$i" --type noop --count "$((per - 1))" >/dev/null
done
python3 - "$bin" "$dir" "$((queues * per))" <<'PY'
import os, re, signal, subprocess, sys, time, urllib.request
binary, folder, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = open(folder + "/run.log", "w+")
began = time.monotonic()
run = subprocess.Popen([binary, "run", "--config", folder + "/fairway.yaml"], stdout=log, stderr=log)
port, first, done, http = None, None, None, None
while time.monotonic() - began < 300 and done is None:
    time.sleep(0.005)
    if first is None and os.path.exists(folder + "/first.log"):
        first = time.monotonic() - began
    if port is None:
        log.seek(0)
        found = re.search(r"http=[0-9.]+:(\d+)", log.read())
        if not found:
            continue
        port = found.group(1)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        continue
    completed = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("fairway_jobs_completed_total{"))
    now = time.monotonic() - began
    if http is None:
        http = now
    if completed >= total:
        done = now
run.send_signal(signal.SIGTERM)
run.wait(60)
print(f"first completion {first:.2f} s, /metrics up {http:.2f} s, all {total} done {done:.2f} s after start"
      if done else f"not drained within 300 s (first completion {first}, /metrics up {http})")
PY

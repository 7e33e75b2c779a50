#!/usr/bin/env bash
# Runs WorkerLibraryTests.underFairway's job mix (30 appends, a failure, a rejection, an unknown type, a crash,
# and a 20 s sleep past its 2 s timeout) through `fairway run` with the Node example worker, PARALLEL at a
# time, ROUNDS times, and checks each run ends with nothing counted busy or stuck, every job settled, and an
# exit within 10 s of SIGTERM. It found the watchdog's race of the thirty-first session (docs/benchmarks.md):
# 2 failures in about 520 runs before the fix.
#   bash Benchmarks/scripts/timeout-race-loop.sh [path/to/fairway]   (default .build/debug/fairway)
#   ROUNDS=100 PARALLEL=4 (defaults). Prints one line a run; a failed run's folder is kept and named.
set -uo pipefail
repository=$(cd "$(dirname "$0")/../.." && pwd)
fairway=$(realpath "${1:-$repository/.build/debug/fairway}")
rounds=${ROUNDS:-100}
parallel=${PARALLEL:-4}
top=$(mktemp -d /tmp/timeout-race-XXXXXX)

one_run() {
    local folder=$1
    rm -rf "$folder" && mkdir -p "$folder" && cd "$folder" || return
    cat > fairway.yaml <<YAML
workers: 2
http: { listen: "127.0.0.1:0" }
sources: [{ kind: sqlite, path: "q.db" }]
queues:
  - { name: "py", isolation: process, command: ["node", "$repository/Workers/node/example-worker.js"], attempts: 2, backoff: 0s, timeout: 2s, killGrace: 500ms }
YAML
    {
        for index in $(seq 0 29); do
            echo '{"queue":"py","type":"append","payload":{"path":"'"$folder"'/out.log","line":"job-'"$index"'"}}'
        done
        echo '{"queue":"py","type":"fail","payload":{"message":"upstream 503"}}'
        echo '{"queue":"py","type":"reject","payload":{"message":"no customer"}}'
        echo '{"queue":"py","type":"resize"}'
        echo '{"queue":"py","type":"crash"}'
        echo '{"queue":"py","type":"sleep","payload":{"ms":20000}}'
    } | "$fairway" enqueue --db q.db --jsonl - --create --any-queue --any-type > /dev/null
    "$fairway" run --config fairway.yaml > run.log 2>&1 &
    local pid=$! settled=""
    for _ in $(seq 1 200); do
        # dead and completed: 5 and 30 once every job is settled.
        settled=$("$fairway" stats --db q.db 2>/dev/null | awk '$1=="py"{print $5" "$6}')
        [ "$settled" = "5 30" ] && break
        sleep 0.2
    done
    local port counts
    port=$(grep -o 'http=127.0.0.1:[0-9]*' run.log | head -1 | cut -d: -f2)
    counts=$(curl -s "127.0.0.1:$port/metrics" | grep -E '^fairway_workers_(busy|stuck)_threads' | sort | tr '\n' ' ')
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    local hung=""
    if kill -0 "$pid" 2>/dev/null; then hung="no exit within 10 s of SIGTERM"; kill -9 "$pid"; fi
    if [ "$settled" = "5 30" ] && [ -z "$hung" ] && [[ $counts == *"busy_threads 0.0 "*"stuck_threads 0.0 "* ]]; then
        echo "ok"
    else
        echo "FAILED (dead/completed: $settled; $counts$hung): $folder"
        return 1
    fi
}

failures=0
for round in $(seq 1 "$rounds"); do
    for slot in $(seq 1 "$parallel"); do
        (one_run "$top/run-$round-$slot" > "$top/result-$slot") &
    done
    wait
    for slot in $(seq 1 "$parallel"); do
        result=$(cat "$top/result-$slot")
        echo "round $round.$slot: $result"
        if [[ $result == ok ]]; then rm -rf "$top/run-$round-$slot"; else failures=$((failures + 1)); fi
    done
done
echo "$failures failed of $((rounds * parallel)) runs"
[ "$failures" = 0 ]

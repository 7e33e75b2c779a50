#!/usr/bin/env bash
# Does scraping /metrics every second slow job throughput? Drains the same SQLite backlog of no-op jobs
# (120 queues, 2 workers) with and without a 1 s scrape, alternating, and prints jobs/s and the ratio.
#   bash Benchmarks/scripts/scrape-cost.sh [jobs] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=${1:-600000}
rounds=${2:-3}
swift build -c release --product fairway >/dev/null
fairway=.build/release/fairway
work=$(mktemp -d)
trap 'pkill -f "$work/fairway.yaml" 2>/dev/null || true; rm -rf "$work"' EXIT

python3 - "$jobs" > "$work/jobs.jsonl" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print('{"queue":"q%d","type":"noop"}' % (i % 120))
PY
cat > "$work/fairway.yaml" <<YAML
workers: 2
http: { listen: "127.0.0.1:0" }
sources: [{ kind: sqlite, path: "q.db" }]
queues: [{ name: "q{0..119}" }]
YAML

drain() { # $1 = scrape | none; prints jobs/s
    rm -f "$work"/q.db*
    $fairway enqueue --create --db "$work/q.db" --jsonl "$work/jobs.jsonl" >/dev/null
    $fairway run --config "$work/fairway.yaml" > "$work/run.log" 2>&1 &
    local pid=$!
    until grep -q "fairway running" "$work/run.log"; do sleep 0.05; done
    local port
    port=$(grep -o 'http=[0-9.]*:[0-9]*' "$work/run.log" | head -1 | cut -d: -f2)
    local began
    began=$(date +%s.%N)
    local scraper=""
    if [[ "$1" == scrape ]]; then
        (while true; do curl -s "http://127.0.0.1:$port/metrics" >/dev/null; sleep 1; done) &
        scraper=$!
    fi
    until [[ "$(sqlite3 "$work/q.db" 'SELECT count(*) FROM jobs')" == 0 ]]; do sleep 0.2; done
    local ended
    ended=$(date +%s.%N)
    [[ -n "$scraper" ]] && kill "$scraper"
    kill -TERM "$pid"
    wait "$pid" || true
    python3 -c "print(round($jobs / ($ended - $began)))"
}

none=()
scrape=()
for _ in $(seq 1 "$rounds"); do
    none+=("$(drain none)")
    scrape+=("$(drain scrape)")
done
echo "no scrape (jobs/s): ${none[*]}"
echo "1 s scrape (jobs/s): ${scrape[*]}"
python3 - "${none[*]}" "${scrape[*]}" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
print("median ratio scrape/no scrape: %.3f" % (statistics.median(b) / statistics.median(a)))
PY

#!/usr/bin/env bash
# Builds the mail-merge example, runs it against a temporary SQLite file, enqueues a campaign through its
# HTTP route and another through its producer (a second process), and exits 0 only when every job ended
# as expected: letters sent (one after a greylisting retry), a bad address dead-lettered with its reason,
# a typo in a queue name refused, and a clean shutdown.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/opt/swift/usr/bin:$PATH"

# The example builds in the repository's own build folder, where `swift build` of Fairway left every
# module it shares with it (about 10 s then, against minutes from nothing).
scratch="${MAIL_MERGE_SCRATCH:-../../.build}"
swift build --scratch-path "$scratch" --product MailMerge
binary="$(swift build --scratch-path "$scratch" --product MailMerge --show-bin-path)/MailMerge"
[[ -x "$binary" ]] || { echo "smoke: the build produced no $binary" >&2; exit 1; }

work="$(mktemp -d)"
app=""
cleanup() { [[ -n "$app" ]] && kill -9 "$app" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
fail() { echo "smoke: FAILED: $*" >&2; echo "--- application log" >&2; cat "$work/app.log" >&2; exit 1; }

port="$(free_port)"
export MAIL_MERGE_DB="$work/mail-merge.db" MAIL_MERGE_FAIRWAY_HTTP="127.0.0.1:$(free_port)"
"$binary" serve --config fairway.yaml --outbox "$work/outbox" --port "$port" >"$work/app.log" 2>&1 &
app=$!
for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 "$app" 2>/dev/null || fail "the application exited at start"
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/health" >/dev/null || fail "the HTTP route never answered"

# 1. Through the HTTP route: three recipients, one greylisted once, one with no address.
answer="$(curl -fsS -X POST "http://127.0.0.1:$port/campaigns" -H 'content-type: application/json' -d '{
  "campaign": "spring", "template": "Dear {{name}}, spring is here. ({{email}})",
  "recipients": [{"name": "Ada", "email": "ada@example.com"}, {"name": "Grey", "email": "grey@greylist.example"},
                 {"name": "Nobody", "email": "nobody"}]}')"
echo "route: $answer"
[[ "$answer" == *'"enqueued":3'* ]] || fail "the route did not enqueue three jobs: $answer"

# 2. Through the producer, from another process, on the same file.
"$binary" enqueue --db "$MAIL_MERGE_DB" --outbox "$work/outbox" --campaign autumn --template "Hello {{name}}" \
    Bob=bob@example.com Eve=eve@example.com || fail "the producer refused a valid campaign"

# 3. A typo in the queue name is refused, naming the queue it meant; nothing is written.
if "$binary" enqueue --db "$MAIL_MERGE_DB" --queue leters --campaign typo Zed=zed@example.com 2>"$work/refused"; then
    fail "a queue no consumer serves was accepted"
fi
grep -q "did you mean 'letters'" "$work/refused" || fail "the refusal did not name the queue: $(cat "$work/refused")"
# … and so is a queue file that does not exist.
if "$binary" enqueue --db "$work/mail-merg.db" --campaign typo Zed=zed@example.com 2>"$work/refused"; then
    fail "a missing queue file was accepted"
fi
grep -q "no queue file at $work/mail-merg.db" "$work/refused" || fail "the refusal did not name the file: $(cat "$work/refused")"
[[ ! -e "$work/mail-merg.db" ]] || fail "the producer created the mistyped file"

# Every letter ends: four sent (grey on its second attempt), one dead-lettered with its reason.
sent() { grep -c '^sent ' "$work/outbox/sent.log" 2>/dev/null || true; }
dead() { sqlite3 "$MAIL_MERGE_DB" "SELECT count(*) FROM dead_jobs" 2>/dev/null || echo 0; }
for _ in $(seq 1 300); do
    [[ "$(sent)" == 4 && "$(dead)" == 1 ]] && break
    sleep 0.1
done
cat "$work/outbox/sent.log" 2>/dev/null || true
[[ "$(sent)" == 4 ]] || fail "expected 4 letters sent, found $(sent)"
[[ "$(dead)" == 1 ]] || fail "expected 1 dead letter, found $(dead)"
grep -q '^sent spring grey@greylist.example .* attempt 2$' "$work/outbox/sent.log" || fail "the greylisted letter was not retried"
grep -q '^sent autumn bob@example.com ' "$work/outbox/sent.log" || fail "the producer's campaign was not sent"
reason="$(sqlite3 "$MAIL_MERGE_DB" "SELECT reason FROM dead_jobs")"
[[ "$reason" == "not an email address: 'nobody'" ]] || fail "the dead letter's reason is '$reason'"
[[ "$(sqlite3 "$MAIL_MERGE_DB" "SELECT count(*) FROM jobs")" == 0 ]] || fail "jobs are left in the file"
[[ "$(sqlite3 "$MAIL_MERGE_DB" "SELECT count(*) FROM jobs WHERE queue = 'leters'")" == 0 ]] || fail "the refused job was written"

kill -TERM "$app"
status=0
wait "$app" || status=$?
app=""
[[ "$status" == 0 ]] || fail "the application exited with $status after SIGTERM"
echo "smoke: mail-merge OK: 4 letters sent (1 after a retry), 1 dead-lettered, 2 refusals, clean shutdown"

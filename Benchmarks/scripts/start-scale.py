#!/usr/bin/env python3
"""Start-up at scale, measured from process start: `fairway run` against a backlog of N queues × PER
no-op jobs, beside a raw C loop started the same way on the same backlog, alternating, ROUNDS times.

  start-scale.py sqlite --queues 120,1000,10000 --per 10
  start-scale.py amqp --queues 120,1000 --per 100 --prefetch 64
  start-scale.py amqp-restart --queues 1000 --per 100        (rabbitmqctl stop_app/start_app under backlog)

For each run: seconds to the first completed job, to HTTP answering (Fairway), to the last job; peak and
after-drain resident memory; /metrics size and scrape time after the drain; and, with no jobs at all,
resident memory of an idle process. Medians go to stdout and, one CSV line per queue count, to --csv.
Needs the binaries built by start-scale.sh (the raw loops) and a release `fairway`."""
import argparse, contextlib, os, re, shutil, signal, socket, sqlite3, statistics, subprocess, sys, tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kb(pid, field="VmRSS"):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def get(port, path, timeout=5):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout).read()


class Fairway:
    """A `fairway run` process; the clock starts just before it is spawned."""

    def __init__(self, binary, folder, config):
        self.folder = folder
        path = os.path.join(folder, "fairway.yaml")
        open(path, "w").write(config)
        self.log = open(os.path.join(folder, "run.log"), "w+")
        self.began = time.monotonic()
        self.process = subprocess.Popen([binary, "run", "--config", path], stdout=self.log, stderr=self.log)
        self.port = None

    def elapsed(self):
        return time.monotonic() - self.began

    def wait_port(self, limit=120):
        """The HTTP port once the process has logged it; with limit 0, only looks once."""
        while self.port is None:
            self.log.seek(0)
            found = re.search(r"http=[0-9.]+:(\d+)", self.log.read())
            if found:
                self.port = int(found.group(1))
            elif self.process.poll() is not None:
                raise SystemExit("fairway exited:\n" + open(self.log.name).read())
            elif self.elapsed() >= limit:
                break
            else:
                time.sleep(0.002)
        return self.port

    def completed(self):
        text = get(self.port, "/metrics").decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("fairway_jobs_completed_total{"))

    def scrape_figures(self, times=5):
        durations, size = [], 0
        for _ in range(times):
            began = time.monotonic()
            size = len(get(self.port, "/metrics"))
            durations.append(time.monotonic() - began)
        return size, statistics.median(durations)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def raw_run(command):
    """Runs a raw loop; seconds from spawn to its "first" line and to its exit."""
    began = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    first = None
    for line in process.stdout:
        if line.startswith("first") and first is None:
            first = time.monotonic() - began
    process.wait()
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} failed")
    return dict(first=first, done=time.monotonic() - began)


def marker_jobs(queues, per, marker, name, interleaved=False):
    """JSON lines: the first job of each of the first 120 queues appends to the marker file, so the first
    completion is seen the moment it happens; every other job is a no-op. Queue by queue (all of q.0's
    jobs, then q.1's: each queue's jobs side by side in the file, the order a FIFO loop reads best), or
    interleaved (q.0, q.1, …, then round again: the order producers writing to every queue at once leave)."""
    order = ([(q, j) for j in range(per) for q in range(queues)] if interleaved
             else [(q, j) for q in range(queues) for j in range(per)])
    lines = []
    for q, j in order:
        if j == 0 and q < 120:
            lines.append('{"queue":"%s","type":"append","payload":{"path":"%s","line":"%d"}}' % (name(q), marker, q))
        else:
            lines.append('{"queue":"%s","type":"noop"}' % name(q))
    return "\n".join(lines) + "\n"


def config(source, queues):
    """The configuration every run uses: 2 workers, a free HTTP port, queues q.0 … q.<QUEUES-1>."""
    return f"""workers: 2
http: {{ listen: "127.0.0.1:0" }}
sources: [{source}]
queues: [{{ name: "q.{{0..{queues - 1}}}" }}]
"""


def idle_memory(binary, folder, source, queues):
    """Resident memory of a process serving QUEUES empty queues, 3 s after start."""
    run = Fairway(binary, folder, config(source, queues))
    run.wait_port()
    while run.elapsed() < 3:
        time.sleep(0.05)
    kb = rss_kb(run.process.pid)
    run.stop()
    return kb


def drain_fairway(run, finished, marker, poll):
    """Seconds from spawn to the first completion (the marker file), HTTP answering and `finished(run)`."""
    first = http = done = None
    peak = 0
    while run.elapsed() < 600 and done is None:
        time.sleep(poll)
        peak = max(peak, rss_kb(run.process.pid))
        if first is None and os.path.exists(marker):
            first = run.elapsed()
        if run.wait_port(limit=0) is None:
            continue
        try:
            if http is None:
                get(run.port, "/healthz")
                http = run.elapsed()
            if done is None and finished(run):
                done = run.elapsed()
        except OSError:
            continue
    time.sleep(1)
    after = rss_kb(run.process.pid)
    peak = max(peak, rss_kb(run.process.pid, "VmHWM"))
    size, scrape = run.scrape_figures()
    return dict(first=first, http=http, done=done, peak_mb=peak / 1024, after_mb=after / 1024,
                metrics_bytes=size, scrape_ms=scrape * 1000)


def alternate(args, work, queues, marker, backlog, raw_command, source, finished, poll, idle_source):
    """ROUNDS pairs on the same backlog: `fairway run` then the raw loop, each after `backlog(folder)` has
    laid it out again; then an idle process. Returns the summary of the medians."""
    rows, raws = [], []
    for round in range(args.rounds):
        for which in ("fairway", "raw"):
            folder = os.path.join(work, f"{which}{round}")
            os.mkdir(folder)
            if os.path.exists(marker):
                os.remove(marker)
            backlog(folder)
            if which == "raw":
                raws.append(raw_run(raw_command(folder)))
                continue
            run = Fairway(args.fairway, folder, config(source, queues))
            try:
                rows.append(drain_fairway(run, finished, marker, poll))
            finally:
                run.stop()
    folder = os.path.join(work, "idle")
    os.mkdir(folder)
    idle = idle_memory(args.fairway, folder, idle_source, queues)
    return summarise(args.mode, queues, args.per, rows, raws, idle)


def sqlite_figures(args, queues):
    work = tempfile.mkdtemp(prefix="start-scale-")
    try:
        base = os.path.join(work, "base.db")
        marker = os.path.join(work, "first.log")
        jsonl = os.path.join(work, "jobs.jsonl")
        open(jsonl, "w").write(marker_jobs(queues, args.per, marker, lambda q: f"q.{q}",
                                            interleaved=args.layout == "interleaved"))
        subprocess.run([args.fairway, "enqueue", "--create", "--db", base, "--jsonl", jsonl], check=True, stdout=subprocess.DEVNULL)
        sqlite3.connect(base).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
        total = queues * args.per
        readers = {}

        def finished(run):
            # One reader connection per run, kept open: opening one every poll cost the process under test.
            if run not in readers:
                readers[run] = sqlite3.connect(f"file:{run.folder}/q.db?mode=ro", uri=True, timeout=5)
            done = readers[run].execute("SELECT coalesce(sum(completed), 0) FROM queue_stats").fetchone()[0]
            return (done or 0) >= total

        return alternate(
            args, work, queues, marker,
            backlog=lambda folder: shutil.copy(base, os.path.join(folder, "q.db")),
            raw_command=lambda folder: [args.raw_sqlite, os.path.join(folder, "q.db"), "q.", str(queues)],
            source="{ kind: sqlite, path: q.db }", finished=finished, poll=0.01,
            idle_source="{ kind: sqlite, path: idle.db }")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rabbitmqctl(*words, timeout=300):
    subprocess.run(["rabbitmqctl", "-q", "-n", "rabbit@localhost", *words], check=True, stdout=subprocess.DEVNULL,
                   timeout=timeout)


VHOST = "fairway-start-scale"


@contextlib.contextmanager
def scratch_vhost():
    """A vhost of the script's own, deleted with all its queues at the end: a thousand queues left on the
    test broker slow every later restart of it. Yields its URL."""
    rabbitmqctl("add_vhost", VHOST)
    rabbitmqctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "-n", "rabbit@localhost", "delete_vhost", VHOST], stdout=subprocess.DEVNULL)


def amqp_publish(args, url, queues, marker, work, kind="noop"):
    jsonl = os.path.join(work, "jobs.jsonl")
    text = marker_jobs(queues, args.per, marker, lambda q: f"q.{q}")
    if kind != "noop":
        text = text.replace('"type":"noop"', '"type":"sleep","payload":{"ms":1}')
    open(jsonl, "w").write(text)
    subprocess.run([args.fairway, "enqueue", "--create", "--amqp", url, "--jsonl", jsonl], check=True, stdout=subprocess.DEVNULL)


def amqp_source(url, prefetch):
    return f'{{ kind: amqp, url: "{url}", prefetch: {prefetch} }}'


def amqp_figures(args, queues):
    work = tempfile.mkdtemp(prefix="start-scale-")
    marker = os.path.join(work, "first.log")
    total = queues * args.per

    def backlog(url):
        amqp_publish(args, url, queues, marker, work)
        time.sleep(1)

    try:
        with scratch_vhost() as url:
            return alternate(
                args, work, queues, marker, backlog=lambda folder: backlog(url),
                raw_command=lambda folder: [args.raw_amqp, "127.0.0.1", "5672", VHOST, str(args.prefetch),
                                            str(total), "q.", "0", str(queues - 1)],
                source=amqp_source(url, args.prefetch), finished=lambda run: run.completed() >= total, poll=0.02,
                idle_source=amqp_source(url, args.prefetch))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def amqp_restart(args, queues):
    """Fairway serves QUEUES queues with a backlog of 1 ms jobs; the broker drops it (`--restart`); seconds
    from the broker being back to every connection consuming again and to the next completed job."""
    with scratch_vhost() as url:
        return restart_rounds(args, queues, url)


def restart_rounds(args, queues, url):
    work = tempfile.mkdtemp(prefix="start-scale-")
    results = []
    try:
        amqp_publish(args, url, queues, os.path.join(work, "first.log"), work, kind="sleep")
        run = Fairway(args.fairway, work, config(amqp_source(url, args.prefetch), queues))
        try:
            run.wait_port()
            for round in range(args.rounds):
                while True:
                    try:
                        if run.completed() >= 1000 * (round + 1):
                            break
                    except OSError:
                        if run.process.poll() is not None:
                            raise SystemExit("fairway exited:\n" + open(run.log.name).read()[-3000:])
                    time.sleep(0.05)
                text = open(run.log.name).read()
                consuming, failures = text.count("consuming from the broker"), text.count("connection failed")
                if args.restart == "stop_app":
                    rabbitmqctl("stop_app")
                    time.sleep(2)
                    command = subprocess.Popen(["rabbitmqctl", "-q", "-n", "rabbit@localhost", "start_app"],
                                               stdout=subprocess.DEVNULL)
                else:
                    command = subprocess.Popen(["rabbitmqctl", "-q", "-n", "rabbit@localhost",
                                                "close_all_connections", "-p", VHOST, "restart test"],
                                               stdout=subprocess.DEVNULL)
                # The clock starts when the broker takes connections again (stop_app) or when Fairway has
                # seen its connections closed (close_all_connections); then: every connection consuming
                # again, and the first job completed after the first connection was back.
                began = connected = first = back = before = None
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline and (first is None or connected is None):
                    time.sleep(0.005)
                    text = open(run.log.name).read()
                    if began is None:
                        if args.restart == "stop_app":
                            try:
                                socket.create_connection(("127.0.0.1", 5672), timeout=0.05).close()
                                began = time.monotonic()
                            except OSError:
                                continue
                        elif text.count("connection failed") > failures:
                            began = time.monotonic()
                        else:
                            continue
                    again = text.count("consuming from the broker") - consuming
                    if again > 0 and back is None:
                        back, before = time.monotonic() - began, run.completed()
                    if connected is None and again >= (queues + 199) // 200:
                        connected = time.monotonic() - began
                    if first is None and back is not None and run.completed() > before:
                        first = time.monotonic() - began
                command.wait()
                if first is None:
                    shutil.copy(run.log.name, "/tmp/start-scale-failed.log")
                    raise SystemExit(f"no completion after the restart (began {began}, back {back}); "
                                     "its log: /tmp/start-scale-failed.log")
                results.append((connected, first))
                print(f"{args.restart} {round + 1} ({queues} queues): first connection back {back:.2f} s, all "
                      f"{connected if connected is None else round_(connected)} s, first completion {first:.2f} s "
                      f"after the broker was back", flush=True)
        finally:
            run.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def round_(value):
    return f"{value:.2f}"


def median(rows, key):
    values = [row[key] for row in rows if row.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def summarise(backend, queues, per, rows, raws, idle):
    figures = dict(backend=backend, queues=queues, per=per,
                   first=median(rows, "first"), http=median(rows, "http"), done=median(rows, "done"),
                   raw_first=median(raws, "first"), raw_done=median(raws, "done"),
                   peak_mb=median(rows, "peak_mb"), after_mb=median(rows, "after_mb"), idle_mb=idle / 1024,
                   metrics_bytes=median(rows, "metrics_bytes"), scrape_ms=median(rows, "scrape_ms"))
    figures["ratio"] = figures["raw_done"] / figures["done"]
    print(f"{backend} {queues} queues × {per}: first {figures['first']:.2f} s (raw {figures['raw_first']:.2f}), "
          f"http {figures['http']:.2f} s, all done {figures['done']:.2f} s (raw {figures['raw_done']:.2f}; "
          f"rate vs raw {figures['ratio']:.2f}), RSS idle {figures['idle_mb']:.0f} MB, peak {figures['peak_mb']:.0f}, "
          f"after {figures['after_mb']:.0f}; /metrics {figures['metrics_bytes'] / 1e6:.2f} MB in "
          f"{figures['scrape_ms']:.0f} ms", flush=True)
    for row, raw in zip(rows, raws):
        print(f"    run: first {row['first']:.2f} / done {row['done']:.2f} s; raw {raw['first']:.2f} / {raw['done']:.2f} s")
    return figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["sqlite", "amqp", "amqp-restart"])
    parser.add_argument("--queues", default="120,1000,10000")
    parser.add_argument("--per", default="10", help="jobs per queue: one number, or one per --queues entry")
    parser.add_argument("--prefetch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fairway", default=".build/release/fairway")
    parser.add_argument("--raw-sqlite", default=os.path.join(HERE, ".build", "raw-sqlite-drain"))
    parser.add_argument("--raw-amqp", default=os.path.join(HERE, ".build", "raw-amqp-drain"))
    parser.add_argument("--layout", choices=["queue", "interleaved"], default="queue",
                        help="sqlite: the backlog's order in the file, queue by queue (default) or interleaved")
    parser.add_argument("--csv")
    parser.add_argument("--restart", choices=["stop_app", "close_all_connections"], default="stop_app",
                        help="amqp-restart: how the broker drops Fairway")
    args = parser.parse_args()
    counts = [int(q) for q in args.queues.split(",")]
    pers = [int(p) for p in args.per.split(",")]
    pers = pers * len(counts) if len(pers) == 1 else pers
    for queues, per in zip(counts, pers):
        args.per = per
        if args.mode == "amqp-restart":
            amqp_restart(args, queues)
            continue
        figures = (sqlite_figures if args.mode == "sqlite" else amqp_figures)(args, queues)
        if args.csv:
            new = not os.path.exists(args.csv)
            with open(args.csv, "a") as out:
                if new:
                    out.write(",".join(figures) + "\n")
                out.write(",".join(str(value) for value in figures.values()) + "\n")


if __name__ == "__main__":
    main()

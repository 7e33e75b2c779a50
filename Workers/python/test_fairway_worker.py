"""Tests of fairway_worker against a real worker process, speaking the pipe protocol from the test.

    cd Workers/python && python3 -m unittest -v
"""
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class WorkerProcess:
    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "example_worker.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "FAIRWAY_PROCESS_WORKER": "1"})

    def send(self, header, body=b""):
        encoded = json.dumps(header).encode()
        self.process.stdin.write(struct.pack(">I", len(encoded)) + encoded + struct.pack(">I", len(body)) + body)
        self.process.stdin.flush()

    def receive(self):
        length = struct.unpack(">I", self.process.stdout.read(4))[0]
        header = json.loads(self.process.stdout.read(length))
        body_length = struct.unpack(">I", self.process.stdout.read(4))[0]
        self.process.stdout.read(body_length)
        return header

    def job(self, job_type, payload, job_id="1", timeout=30, attempt=1, key=None):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        header = {"kind": "job", "id": job_id, "queue": "q", "jobType": job_type, "attempt": attempt,
                  "maxAttempts": 3, "timeoutSeconds": timeout}
        if key is not None:
            header["key"] = key
        self.send(header, body)
        return self.receive()

    def close(self):
        self.process.stdin.close()
        return self.process.wait(timeout=10)


class WorkerTests(unittest.TestCase):
    def setUp(self):
        self.worker = WorkerProcess()
        self.hello = self.worker.receive()

    def tearDown(self):
        if self.worker.process.poll() is None:
            self.worker.process.kill()
            self.worker.process.wait()
        for stream in (self.worker.process.stdin, self.worker.process.stdout, self.worker.process.stderr):
            if not stream.closed:
                stream.close()

    def test_hello_then_success_with_context(self):
        self.assertEqual(self.hello, {"kind": "hello", "protocol": 1, "pid": self.worker.process.pid, "pipeline": 64})
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "out")
            result = self.worker.job("append", {"path": path, "line": "hi"}, job_id="7", attempt=2)
            self.assertEqual(result, {"kind": "result", "id": "7", "outcome": "success"})
            with open(path) as file:
                self.assertEqual(file.read(), f"hi pid={self.worker.process.pid} attempt=2\n")
        self.assertEqual(self.worker.close(), 0, "stdin closed: exit 0")

    def test_a_success_is_written_in_the_compact_layout_whatever_the_id(self):
        # Fairway reads a result's header by its layout: compact, in this order, the id escaped as JSON does.
        for job_id in ["42", 'quote " and \\ backslash', "caf\u00e9 \u2028 \U0001F600", "tab\tnewline\n"]:
            self.worker.send({"kind": "job", "id": job_id, "queue": "q", "jobType": "sleep", "attempt": 1,
                              "maxAttempts": 3, "timeoutSeconds": 30}, b'{"ms":0}')
            length = struct.unpack(">I", self.worker.process.stdout.read(4))[0]
            raw = self.worker.process.stdout.read(length)
            self.assertEqual(self.worker.process.stdout.read(4), b"\0\0\0\0")
            expected = json.dumps({"kind": "result", "id": job_id, "outcome": "success"}, separators=(",", ":"))
            self.assertEqual(raw, expected.encode())
            self.assertEqual(json.loads(raw)["id"], job_id)

    def test_a_payload_with_a_byte_order_mark_is_json_still(self):
        result = self.worker.job("sleep", b'\xef\xbb\xbf{"ms":0}')
        self.assertEqual(result, {"kind": "result", "id": "1", "outcome": "success"})

    def test_the_fairness_key_reaches_the_handler(self):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "out")
            self.worker.job("append", {"path": path, "line": "a"}, key="acme")
            self.worker.job("append", {"path": path, "line": "b"})
            with open(path) as file:
                pid = self.worker.process.pid
                self.assertEqual(file.read(), f"a pid={pid} attempt=1 key=acme\nb pid={pid} attempt=1\n")

    def test_jobs_sent_ahead_run_one_at_a_time_in_order(self):
        jobs = [("sleep", {"ms": 30}), ("fail", {"message": "second"}), ("sleep", {"ms": 0}), ("reject", {"message": "x"})]
        for index, (job_type, payload) in enumerate(jobs):
            self.worker.send({"kind": "job", "id": f"p{index}", "queue": "q", "jobType": job_type, "attempt": 1,
                              "maxAttempts": 3, "timeoutSeconds": 30}, json.dumps(payload).encode())
        results = [self.worker.receive() for _ in jobs]
        self.assertEqual([(r["id"], r["outcome"]) for r in results],
                         [("p0", "success"), ("p1", "failure"), ("p2", "success"), ("p3", "rejected")])
        self.assertEqual(self.worker.close(), 0)

    def test_an_async_handler_runs_to_its_end_on_one_loop_for_every_job(self):
        # An async def handler only called returns a coroutine that never runs: that job was reported a success.
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "out")
            first = self.worker.job("append-later", {"path": path, "line": "a", "ms": 20}, job_id="1", attempt=2)
            self.assertEqual(first, {"kind": "result", "id": "1", "outcome": "success"})
            self.worker.job("append-later", {"path": path, "line": "b", "ms": 0}, job_id="2")
            with open(path) as file:
                lines = file.read().splitlines()
            self.assertEqual([line.split(" loop=")[0] for line in lines], ["a attempt=2", "b attempt=1"])
            self.assertEqual(len({line.split(" loop=")[1] for line in lines}), 1, "one event loop for the worker")
        failed = self.worker.job("append-later", {"fail": "after the await", "ms": 5}, job_id="3")
        self.assertEqual((failed["outcome"], failed["reason"]), ("failure", "RuntimeError: after the await"))
        self.assertEqual(self.worker.job("sleep", {"ms": 0}, job_id="4")["outcome"], "success", "still serving")

    def test_sigterm_stops_an_async_handler_awaiting(self):
        self.assert_sigterm_stops("append-later", b'{"ms": 20000, "path": "/nonexistent"}')

    def test_exception_is_a_failure_with_its_message(self):
        result = self.worker.job("fail", {"message": "upstream 503"})
        self.assertEqual(result["outcome"], "failure")
        self.assertEqual(result["reason"], "RuntimeError: upstream 503")
        self.assertEqual(self.worker.job("sleep", {"ms": 1}, job_id="2")["outcome"], "success", "still serving")

    def test_permanent_error_unknown_type_and_bad_json_are_rejected(self):
        self.assertEqual(self.worker.job("reject", {"message": "no customer"}),
                         {"kind": "result", "id": "1", "outcome": "rejected", "reason": "no customer"})
        unknown = self.worker.job("resize", {})
        self.assertEqual(unknown["outcome"], "rejected")
        self.assertIn("unknown job type 'resize'", unknown["reason"])
        self.assertIn("append", unknown["reason"], "names what it handles")
        bad = self.worker.job("append", b"{not json")
        self.assertEqual(bad["outcome"], "rejected")
        self.assertIn("not JSON", bad["reason"])

    def test_a_payload_nested_past_pythons_recursion_limit_is_rejected_and_the_worker_serves_on(self):
        # Valid JSON Python's decoder cannot take: it raised RecursionError, which ended the worker.
        for depth in (5_000, 1_000_000):
            deep = self.worker.job("sleep", b"[" * depth + b"]" * depth, job_id=str(depth))
            self.assertEqual(deep["outcome"], "rejected", deep)
            self.assertIn("nested too deeply", deep["reason"])
        self.assertEqual(self.worker.job("sleep", {"ms": 0})["outcome"], "success")

    def test_sigterm_stops_the_running_job_then_the_worker_exits(self):
        self.assert_sigterm_stops("sleep", b'{"ms": 20000}')

    def assert_sigterm_stops(self, job_type, twenty_second_job):
        self.worker.send({"kind": "job", "id": "9", "queue": "q", "jobType": job_type, "attempt": 1,
                          "maxAttempts": 1, "timeoutSeconds": 0.1}, twenty_second_job)
        time.sleep(0.3)
        started = time.monotonic()
        self.worker.process.send_signal(signal.SIGTERM)
        result = self.worker.receive()
        self.assertEqual((result["id"], result["outcome"]), ("9", "failure"))
        self.assertIn("SIGTERM", result["reason"])
        self.assertEqual(self.worker.process.wait(timeout=5), 0, "exits once the job is answered")
        self.assertLess(time.monotonic() - started, 2, "did not wait out the 20 s")

    def test_large_body_arrives_whole(self):
        data = "x" * (8 << 20)
        result = self.worker.job("echo-size", {"data": data})
        self.assertEqual(result["reason"], f"size {len(data)}")

    def test_a_crash_is_the_process_ending(self):
        self.worker.send({"kind": "job", "id": "1", "queue": "q", "jobType": "crash", "attempt": 1,
                          "maxAttempts": 1, "timeoutSeconds": 5})
        self.assertEqual(self.worker.process.wait(timeout=5), 3)

    def test_print_goes_to_stderr_not_the_protocol(self):
        # A handler that prints must not corrupt stdout: the next result still parses.
        self.worker.job("fail", {"message": "x"})
        self.assertEqual(self.worker.job("sleep", {"ms": 0}, job_id="3")["id"], "3")

    def test_programs_a_job_starts_cannot_touch_the_protocol(self):
        # `cat` reads stdin and `echo` writes stdout: with the job behind already sent, neither may take it
        # or write into the results.
        self.worker.send({"kind": "job", "id": "1", "queue": "q", "jobType": "spawn", "attempt": 1,
                          "maxAttempts": 1, "timeoutSeconds": 10})
        self.worker.send({"kind": "job", "id": "2", "queue": "q", "jobType": "sleep", "attempt": 1,
                          "maxAttempts": 1, "timeoutSeconds": 10}, json.dumps({"ms": 0}).encode())
        self.assertEqual(self.worker.receive(), {"kind": "result", "id": "1", "outcome": "success"})
        self.assertEqual(self.worker.receive(), {"kind": "result", "id": "2", "outcome": "success"})
        self.assertEqual(self.worker.close(), 0)
        self.assertIn(b"from a child of job 1", self.worker.process.stderr.read())

    def test_a_malformed_frame_ends_the_worker_with_a_message(self):
        self.worker.process.stdin.write(struct.pack(">I", 5) + b"nope!" + struct.pack(">I", 0))
        self.worker.process.stdin.flush()
        self.assertEqual(self.worker.process.wait(timeout=5), 2)
        self.assertIn(b"not JSON", self.worker.process.stderr.read())

    def test_a_frame_that_is_not_a_job_ends_the_worker_with_a_message(self):
        self.worker.send({"kind": "result", "id": "1", "outcome": "success"})
        self.assertEqual(self.worker.process.wait(timeout=5), 2)
        self.assertIn(b"expected a job, got 'result'", self.worker.process.stderr.read())

    def test_a_header_that_is_not_utf8_ends_the_worker_with_a_message(self):
        header = b'{"kind":"job","id":"\xff","queue":"q","jobType":"sleep","attempt":1,"maxAttempts":1}'
        self.worker.process.stdin.write(struct.pack(">I", len(header)) + header + struct.pack(">I", 0))
        self.worker.process.stdin.flush()
        self.assertEqual(self.worker.process.wait(timeout=5), 2)
        self.assertIn(b"the header is not JSON: 'utf-8' codec can't decode", self.worker.process.stderr.read())


class RegistryTests(unittest.TestCase):
    def test_registering_twice_or_an_empty_type_is_refused(self):
        sys.path.insert(0, HERE)
        from fairway_worker import Worker
        worker = Worker()
        worker.register("a", lambda payload, context: None)
        with self.assertRaises(ValueError):
            worker.register("a", lambda payload, context: None)
        with self.assertRaises(ValueError):
            worker.register("", lambda payload, context: None)
        self.assertEqual(worker.job_types, ["a"])

    def test_a_frame_whose_write_a_signal_cuts_short_is_written_whole(self):
        # Results go to the pipe with os.write, which returns early when a signal arrives after some bytes
        # went in: the writer must send the rest.
        sys.path.insert(0, HERE)
        import threading
        from unittest import mock
        from fairway_worker import _PipeWriter

        reading, writing = os.pipe()
        received = bytearray()

        def read_slowly():
            while chunk := os.read(reading, 65536):
                received.extend(chunk)
                time.sleep(0.0002)

        reader = threading.Thread(target=read_slowly)
        reader.start()
        data = bytes(range(256)) * (8 << 12)  # 8 MiB
        real_write = os.write
        previous = signal.signal(signal.SIGALRM, lambda *_: None)
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
        try:
            with mock.patch("os.write", side_effect=real_write) as write:
                _PipeWriter(writing).send(data)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            os.close(writing)
            reader.join()
            os.close(reading)
        self.assertGreater(write.call_count, 1, "no write was cut short: the test did not try the rest")
        self.assertEqual(bytes(received), data)

    def test_json_is_read_as_the_decoder_reads_it_whatever_surrounds_or_breaks_it(self):
        # The scanner called directly for the usual case, decode() for everything else: the same values and
        # the same errors either way.
        sys.path.insert(0, HERE)
        import random
        from fairway_worker import _decode_json

        decoder = json.JSONDecoder()
        values = [{}, [], {"ms": 0}, {"a": [1, 2.5, -3e2, None, True, False], "b": {"c": "d\u00e9\n\"x"}}, "text",
                  12, [[[]]], {"kind": "job", "id": "7", "queue": "q", "attempt": 1}]
        pieces = ["", " ", "\n", "\ufeff", "x", "]", "}", ",", "\ud800", "NaN"]
        rng = random.Random(13)
        for _ in range(3000):
            text = json.dumps(rng.choice(values), separators=rng.choice([(",", ":"), (", ", ": ")]))
            if rng.random() < 0.5:
                cut = rng.randrange(len(text) + 1)
                text = text[:cut] + rng.choice(pieces) + text[cut:]
            if rng.random() < 0.3:
                text = rng.choice(pieces) + text + rng.choice(pieces)
            data = text.encode("utf-8", "surrogatepass")
            reference = text[1:] if text[:1] == "\ufeff" else text
            try:
                expected = ("value", decoder.decode(reference))
            except ValueError as error:
                expected = ("error", str(error))
            try:
                actual = ("value", _decode_json(data))
            except ValueError as error:
                actual = ("error", str(error))
            self.assertEqual(actual, expected, repr(text))

    def test_what_a_handler_raises_fails_its_job_and_never_ends_the_worker(self):
        # Each of these ended the worker (its job charged a crash) before: a message that cannot be read, and
        # BaseExceptions that are not Exceptions, asyncio's CancelledError among them.
        sys.path.insert(0, HERE)
        import asyncio
        from fairway_worker import PermanentError

        class Unprintable(Exception):
            def __str__(self):
                raise ValueError("no text")

        class UnprintablePermanent(PermanentError):
            def __str__(self):
                raise ValueError("no text")

        class Base(BaseException):
            pass

        def raise_(error):
            raise error

        async def cancelled(payload):
            task = asyncio.ensure_future(asyncio.sleep(10))
            asyncio.get_running_loop().call_soon(task.cancel)
            await task

        reasons = run_in_process({
            "unprintable": lambda payload: raise_(Unprintable()),
            "unprintable-permanent": lambda payload: raise_(UnprintablePermanent()),
            "base": lambda payload: raise_(Base("below Exception")),
            "cancelled": cancelled,
            "after": lambda payload: None,
        })
        self.assertEqual(reasons, {
            "unprintable": "Unprintable: (its message could not be read: ValueError)",
            "unprintable-permanent": "(its message could not be read: ValueError)",
            "base": "Base: below Exception",
            "cancelled": "CancelledError: ",
            "after": "success",
        })
        with self.assertRaises(SystemExit, msg="sys.exit() in a handler still ends the worker"):
            run_in_process({"exits": lambda payload: sys.exit(4)})

    def test_a_generator_handler_fails_its_job_instead_of_succeeding_unrun(self):
        ran = []

        def generator(payload):
            ran.append("generator")
            yield

        async def async_generator(payload):
            ran.append("async generator")
            yield

        reasons = run_in_process({"generator": generator, "async-generator": async_generator,
                                  "returns-an-iterator": lambda payload: iter([1]), "after": lambda payload: None})
        self.assertIn("generator function (it yields): calling it ran none of its body", reasons["generator"])
        self.assertEqual(reasons["async-generator"], reasons["generator"])
        self.assertEqual((reasons["returns-an-iterator"], reasons["after"]), ("success", "success"))
        self.assertEqual(ran, [], "neither body ran")

    def test_a_job_header_in_fairways_layout_reads_as_the_same_header_as_json(self):
        # Fairway's own layout is matched by its text, any other read as JSON: the two must give a handler the
        # same job. Each header is sent twice, in Fairway's layout and spaced (which only JSON reads).
        sys.path.insert(0, HERE)
        import io
        from fairway_worker import Worker, _job_layout

        def fairways_layout(header):
            text = '{"kind":"job"'
            for name in ("id", "queue", "key", "jobType", "attempt", "maxAttempts", "timeoutSeconds"):
                if name in header:
                    value = header[name]
                    if isinstance(value, float) and value.is_integer():
                        value = int(value)
                    text += f',"{name}":' + (json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value))
            return text + "}"

        plain = {"id": "1", "queue": "q", "jobType": "record", "attempt": 2, "maxAttempts": 5, "timeoutSeconds": 30}
        cases = [
            plain,
            {**plain, "key": "acme"},
            {key: value for key, value in plain.items() if key != "timeoutSeconds"},
            {**plain, "timeoutSeconds": 0.25},
            {**plain, "timeoutSeconds": 1e-05},  # as Swift writes it: 1e-05
            {**plain, "id": "caf\u00e9 \u2603 \u2028 \U0001F600", "queue": "tenant/\u00fcber", "key": "\u00e9"},
            {**plain, "id": 'a "quoted" id'},  # escaped: read as JSON either way
            {**plain, "queue": "tab\there"},
        ]
        frames, textual = b"", 0
        for case in cases:
            for text in (fairways_layout(case), json.dumps({"kind": "job", **case})):
                textual += _job_layout(text) is not None
                encoded = text.encode()
                frames += struct.pack(">I", len(encoded)) + encoded + struct.pack(">I", 2) + b"{}"
        self.assertEqual(textual, 6, "the six unescaped cases in Fairway's layout take the text path")
        seen = []
        worker = Worker(jobs=io.BytesIO(frames), results=io.BytesIO())
        worker.register("record", lambda payload, context: seen.append(
            (context.id, context.queue, context.key, context.job_type, context.attempt, context.max_attempts,
             context.timeout_seconds, context.deadline == float("inf"))))
        previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        try:
            self.assertEqual(worker.run(), 0)
        finally:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])
        self.assertEqual(len(seen), 2 * len(cases))
        for index, case in enumerate(cases):
            self.assertEqual(seen[2 * index], seen[2 * index + 1], case)
            self.assertEqual(seen[2 * index][:2], (case["id"], case["queue"]))
            self.assertEqual(seen[2 * index][6], case.get("timeoutSeconds", 0))

    def test_the_context_is_passed_only_to_handlers_that_take_it(self):
        sys.path.insert(0, HERE)
        import functools
        import io
        from fairway_worker import PermanentError

        def report(*arguments):
            kinds = [type(argument).__name__ for argument in arguments]
            raise PermanentError(" ".join(kinds) + (f" {arguments[1].queue}" if len(arguments) > 1 else ""))

        def logged(function):
            @functools.wraps(function)
            def wrapper(*arguments):
                return function(*arguments)

            return wrapper

        class Jobs:
            def method(self, payload, context):
                report(payload, context)

            def __call__(self, payload):
                report(payload)

        handlers = {
            "payload-only": lambda payload: report(payload),
            "both": lambda payload, context: report(payload, context),
            "defaulted": lambda payload, context=None: report(payload, context),
            "rest": lambda *arguments: report(*arguments),
            "keyword-only": lambda payload, *, extra=1: report(payload),
            "bound-method": Jobs().method,
            "callable-object": Jobs(),
            "partial": functools.partial(lambda prefix, payload, context: report(payload, context), "p"),
            "decorated": logged(lambda payload: report(payload)),
            "builtin": max,  # no signature Python can read: given both, and fails comparing them
        }
        reasons = run_in_process(handlers)
        self.assertEqual(reasons, {
            "payload-only": "dict",
            "both": "dict Context q-both",
            "defaulted": "dict Context q-defaulted",
            "rest": "dict Context q-rest",
            "keyword-only": "dict",
            "bound-method": "dict Context q-bound-method",
            "callable-object": "dict",
            "partial": "dict Context q-partial",
            "decorated": "dict",
            "builtin": "TypeError: '>' not supported between instances of 'Context' and 'dict'",
        })


def run_in_process(handlers):
    """Runs one job of each type in `handlers` (its id the type) through a Worker in this process, over
    in-memory streams; returns each job's reason, or its outcome when it has none."""
    sys.path.insert(0, HERE)
    import io
    from fairway_worker import Worker

    frames = b""
    for job_type in handlers:
        header = json.dumps({"kind": "job", "id": job_type, "queue": f"q-{job_type}", "jobType": job_type,
                             "attempt": 1, "maxAttempts": 1}).encode()
        frames += struct.pack(">I", len(header)) + header + struct.pack(">I", 2) + b"{}"
    results = io.BytesIO()
    worker = Worker(jobs=io.BytesIO(frames), results=results)
    for job_type, function in handlers.items():
        worker.register(job_type, function)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        status = worker.run()
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    if status != 0:
        raise AssertionError(f"the worker returned {status}")
    output, offset, reasons = results.getvalue(), 0, {}
    while offset < len(output):
        length = struct.unpack_from(">I", output, offset)[0]
        header = json.loads(output[offset + 4:offset + 4 + length])
        offset += 8 + length + struct.unpack_from(">I", output, offset + 4 + length)[0]
        if header["kind"] == "result":
            reasons[header["id"]] = header.get("reason", header["outcome"])
    return reasons


if __name__ == "__main__":
    unittest.main()

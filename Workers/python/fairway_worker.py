"""Fairway worker processes in Python: handlers by job type, the pipe protocol hidden.

    from fairway_worker import Worker, PermanentError

    worker = Worker()

    @worker.handler("send-invoice")
    def send_invoice(payload, context):
        if "customer" not in payload:
            raise PermanentError("no customer")      # dead-lettered at once
        mail(payload["customer"])                    # any other exception: retried, then dead-lettered

    raise SystemExit(worker.run())

Standard library only (Python 3.8+). The protocol is docs/worker-protocol.md: Fairway writes jobs to the
worker's stdin and reads results from its stdout, so handlers must not print to stdout: `print()` is sent
to stderr while a worker runs, and Fairway puts stderr lines in its log with the queue and pid.
"""

import json
import json.scanner
import os
import re
import signal
import struct
import sys
import time
import types

__all__ = ["Worker", "Context", "PermanentError", "Stopped", "PROTOCOL"]

PROTOCOL = 1
MAX_HEADER = 1 << 20
MAX_BODY = 256 << 20
_NO_DEADLINE = float("inf")


class PermanentError(Exception):
    """Raised by a handler for a job that can never succeed: dead-lettered at once, not retried."""


class Stopped(BaseException):
    """Raised inside a handler when Fairway sends SIGTERM: the job is past its timeout or the drain ended.

    A BaseException, so that a handler's `except Exception` does not swallow it; the worker reports the
    job as failed and exits, as the protocol asks of a worker that was sent SIGTERM."""


class Context:
    """What a handler knows of its job besides the payload."""

    __slots__ = ("id", "queue", "key", "job_type", "attempt", "max_attempts", "timeout_seconds", "deadline")

    def __init__(self, header):
        if type(header) is not dict:  # Fairway's own layout, matched by its text (_receive)
            self.id, self.queue, self.key, self.job_type, attempt, max_attempts, timeout = header.groups()
            self.attempt = int(attempt) or 1
            self.max_attempts = int(max_attempts) or 1
            self.timeout_seconds = timeout = float(timeout) if timeout else 0.0
        else:
            get = header.get
            self.id = str(get("id", ""))
            self.queue = str(get("queue", ""))
            # The job's fairness key (its tenant), or None.
            key = get("key")
            self.key = key if isinstance(key, str) else None
            self.job_type = str(get("jobType", ""))
            self.attempt = int(get("attempt") or 1)
            self.max_attempts = int(get("maxAttempts") or 1)
            self.timeout_seconds = timeout = float(get("timeoutSeconds") or 0)
        # time.monotonic() value past which Fairway counts the job as timed out (inf without a timeout).
        self.deadline = time.monotonic() + timeout if timeout > 0 else _NO_DEADLINE

    @property
    def remaining(self):
        """Seconds left before the timeout."""
        return max(0.0, self.deadline - time.monotonic())

    @property
    def last_attempt(self):
        return self.attempt >= self.max_attempts


class ProtocolError(Exception):
    pass


class Worker:
    """A registry of handlers and the loop that serves Fairway's jobs with them."""

    def __init__(self, jobs=None, results=None, pipeline=64):
        """`pipeline`: how many jobs Fairway may send before this worker answers the first (they wait in
        the pipe and run one at a time, in order); 1 turns pipelining off. Fairway uses the smaller of
        this and the queue's `pipeline`."""
        if not isinstance(pipeline, int) or pipeline < 1:
            raise ValueError("pipeline is a whole number of jobs, at least 1")
        self._handlers = {}
        self._jobs = jobs
        self._results = results
        self._pipeline = pipeline
        self._running = False
        self._loop = None

    def handler(self, job_type):
        """Decorator: `@worker.handler("resize")` over `def resize(payload, context)`."""

        def register(function):
            self.register(job_type, function)
            return function

        return register

    def register(self, job_type, function):
        """`function(payload, context)`, or `function(payload)`: a function that takes no second positional
        argument is called with the payload alone, and no Context is built for its jobs. An `async def`
        handler (or one that returns any awaitable) is run to its end on the worker's event loop."""
        if not isinstance(job_type, str) or not job_type:
            raise ValueError("a job type is a non-empty string")
        if job_type in self._handlers:
            raise ValueError(f"job type '{job_type}' already has a handler")
        self._handlers[job_type] = (function, _takes_context(function))

    @property
    def job_types(self):
        return sorted(self._handlers)

    # The loop.

    def run(self):
        """Serves jobs until Fairway closes stdin (exit 0) or stops a running job with SIGTERM."""
        jobs = self._jobs or _private_stream(0, "rb")
        results = _StreamWriter(self._results) if self._results is not None else _PipeWriter(_private_fd(1))
        # stdout is the protocol's: a stray print() goes to stderr, and so to Fairway's log.
        if self._results is None:
            sys.stdout = sys.stderr
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _send(results, {"kind": "hello", "protocol": PROTOCOL, "pid": os.getpid(), "pipeline": self._pipeline})
        while True:
            try:
                message = _receive(jobs)
            except ProtocolError as error:
                print(f"fairway_worker: {error}; exiting", file=sys.stderr)
                return 2
            if message is None:
                return 0
            job_id, job_type, header, body = message
            outcome, reason, stopped = self._run_one(job_type, header, body)
            _send_result(results, job_id, outcome, reason)
            if stopped:
                return 0

    def _on_sigterm(self, _signo, _frame):
        if self._running:
            raise Stopped()
        # Between jobs: leave as if stdin had closed, starting none of the jobs sent ahead.
        sys.exit(0)

    def _run_one(self, job_type, header, body):
        handler = self._handlers.get(job_type)
        if handler is None:
            known = ", ".join(self.job_types) or "none"
            return "rejected", f"unknown job type '{job_type}' (this worker handles: {known})", False
        function, takes_context = handler
        # Built before the payload is decoded: its deadline counts from the job's start.
        context = Context(header) if takes_context else None
        try:
            payload = _decode_json(body) if body else None
        except ValueError as error:
            return "rejected", f"the payload is not JSON: {error}", False
        except RecursionError:
            return "rejected", "the payload's arrays and objects are nested too deeply for Python's JSON decoder", False
        self._running = True
        try:
            returned = function(payload) if context is None else function(payload, context)
            if returned is not None:
                if hasattr(returned, "__await__"):
                    self._complete(returned)
                elif isinstance(returned, (types.GeneratorType, types.AsyncGeneratorType)):
                    return "failure", _GENERATOR, False
            return "success", None, False
        except Stopped:
            return "failure", "stopped by SIGTERM (the job's timeout or the drain deadline)", True
        except PermanentError as error:
            return "rejected", _message(error) or "PermanentError", False
        except (SystemExit, KeyboardInterrupt):  # sys.exit() in a handler ends the worker, as it asks
            raise
        except BaseException as error:  # a failed job, never a dead worker: asyncio's CancelledError is no Exception
            return "failure", f"{type(error).__name__}: {_message(error)}", False
        finally:
            self._running = False


    def _complete(self, awaitable):
        """Runs an async handler's work to its end. A coroutine that is only called has not run: reporting it a
        success would acknowledge a job nothing did. One event loop serves every job of the worker, made at
        its first async job (asyncio costs a start 35 ms), so that what a handler keeps between jobs (a
        connection pool, a client session) stays on the loop it was made on."""
        loop = self._loop
        if loop is None:
            import asyncio

            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
        loop.run_until_complete(awaitable)


# A generator function's body runs only when the generator is iterated: called, it ran none of it.
_GENERATOR = (
    "the handler is a generator function (it yields): calling it ran none of its body; return instead of yielding"
)


def _message(error):
    """An exception's message; reading one must not end the worker (its __str__ may raise)."""
    try:
        return str(error)
    except Exception as unreadable:
        return f"(its message could not be read: {type(unreadable).__name__})"


def _takes_context(function):
    """Whether `function` accepts a second positional argument (or any number of them)."""
    # Functions and bound methods are read from their code: importing inspect costs a worker's start 9 ms.
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    if code is not None and not hasattr(function, "__wrapped__"):
        positional = code.co_argcount - (1 if hasattr(function, "__func__") else 0)
        return bool(code.co_flags & _CO_VARARGS) or positional >= 2
    import inspect  # partials, objects with __call__, decorated functions (their signature is the wrapped one's)

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature Python can read: pass it everything
        return True
    positional = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


_CO_VARARGS = 0x04  # inspect.CO_VARARGS


def _read_exactly(stream, count):
    # A buffered read returns all `count` bytes unless the pipe closed first: one call in the usual case.
    data = stream.read(count)
    if len(data) == count:
        return data
    if not data:
        return None
    chunks = [data]
    remaining = count - len(data)
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _receive(stream):
    """The next job as (id, job type, header, body), or None when the pipe closed between messages. The header
    is a dict, or the match of Fairway's own layout (`_job_layout`), which `Context` reads."""
    prefix = _read_exactly(stream, 4)
    if prefix is None:
        return None
    (length,) = struct.unpack(">I", prefix)
    if length > MAX_HEADER:
        raise ProtocolError(f"header of {length} bytes, more than {MAX_HEADER}")
    raw = _read_exactly(stream, length)
    size = _read_exactly(stream, 4)
    if raw is None or size is None:
        raise ProtocolError("the pipe closed in the middle of a message")
    (body_length,) = struct.unpack(">I", size)
    if body_length > MAX_BODY:
        raise ProtocolError(f"body of {body_length} bytes, more than {MAX_BODY}")
    body = _read_exactly(stream, body_length) if body_length else b""
    if body is None:
        raise ProtocolError("the pipe closed in the middle of a body")
    try:
        layout = _job_layout(raw.decode("utf-8", "surrogatepass"))
        if layout is not None:
            return layout[1], layout[4], layout, body
        header = _decode_json(raw)
    except ValueError as error:  # text that is not UTF-8 is one too (UnicodeDecodeError)
        raise ProtocolError(f"the header is not JSON: {error}")
    except RecursionError:
        raise ProtocolError("the header's arrays and objects are nested too deeply")
    if not isinstance(header, dict):
        raise ProtocolError("the header is not a JSON object")
    if header.get("kind") != "job":
        raise ProtocolError(f"expected a job, got {header.get('kind')!r}")
    return header.get("id"), str(header.get("jobType", "")), header, body


# A job's header as Fairway writes it (docs/worker-protocol.md: compact, in this order, whole numbers as
# integers), matched by its text: half the work of the JSON scanner, which building the same fields from the
# match would undo, so the match itself is the header (see `_receive` and `Context`). A string with an escape or
# a control character, or any other layout, is read as JSON.
_job_layout = re.compile(
    r'\{"kind":"job","id":"([^"\\\x00-\x1f]*)","queue":"([^"\\\x00-\x1f]*)",(?:"key":"([^"\\\x00-\x1f]*)",)?'
    r'"jobType":"([^"\\\x00-\x1f]*)","attempt":([0-9]{1,18}),"maxAttempts":([0-9]{1,18})'
    r'(?:,"timeoutSeconds":([0-9]{1,18}(?:\.[0-9]{1,30})?(?:[eE][+-]?[0-9]{1,3})?))?\}'
).fullmatch


def _private_stream(fd, mode):
    """The protocol's pipe on `fd` as a stream, moved to a descriptor of its own (`_private_fd`)."""
    return os.fdopen(_private_fd(fd), mode)


def _private_fd(fd):
    """Moves the protocol's pipe from `fd` (0 or 1) to a descriptor of its own, which programs the handlers
    start do not inherit, and puts /dev/null (for 0) or stderr (for 1) in its place: a child that reads
    stdin (ffmpeg does) cannot take the jobs sent ahead, and one that writes stdout (a plain
    `subprocess.run(["ls"])`) cannot corrupt a result. Returns the protocol's descriptor."""
    private = os.dup(fd)  # not inheritable, as every descriptor Python makes
    if fd == 0:
        nothing = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nothing, 0)
        os.close(nothing)
    else:
        sys.stdout.flush()
        os.dup2(2, 1)
    return private


class _PipeWriter:
    """Frames written straight to the protocol's descriptor, one system call a frame: a buffered stream's
    write and flush cost a tenth of what a no-op job costs the worker (about 3,000 instructions of 41,000)."""

    __slots__ = ("_fd",)

    def __init__(self, fd):
        self._fd = fd

    def send(self, data):
        written = os.write(self._fd, data)
        if written < len(data):  # a frame larger than the pipe's buffer, or a write cut short by a signal
            view = memoryview(data)
            while written < len(data):
                written += os.write(self._fd, view[written:])


class _StreamWriter:
    """Frames written to a stream a Worker was given (tests, an embedding), flushed at once."""

    __slots__ = ("_stream",)

    def __init__(self, stream):
        self._stream = stream

    def send(self, data):
        self._stream.write(data)
        self._stream.flush()


# Compact, as Fairway writes its own headers: the supervisor reads that layout without parsing it field by field.
# One encoder and one decoder for every message: json.dumps with `separators` would make a new encoder each
# time, and json.loads of bytes first guesses their encoding (JSON between programs is UTF-8, RFC 8259; a
# byte-order mark is skipped and a lone surrogate let through, as json.loads does for UTF-8).
_encode = json.JSONEncoder(separators=(",", ":")).encode
_decoder = json.JSONDecoder()
_decode = _decoder.decode
# The decoder's own scanner, called directly: decode() wraps it in Python code and two whitespace regexes,
# about a microsecond a header and a body.
_scan = json.scanner.make_scanner(_decoder)
_string = json.encoder.encode_basestring_ascii


def _decode_json(data):
    text = data.decode("utf-8", "surrogatepass")
    try:
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except (StopIteration, ValueError):
        pass
    # A byte-order mark, whitespace around the value, text after it, or not JSON: decode()'s path and errors.
    return _decode(text[1:] if text[:1] == "\ufeff" else text)


def _send_result(writer, job_id, outcome, reason):
    if isinstance(job_id, str) and not reason:
        # The usual result, encoded directly: the same bytes the encoder would make, without its general path.
        header = f'{{"kind":"result","id":{_string(job_id)},"outcome":"{outcome}"}}'.encode()
        writer.send(_length(len(header)) + header + _NO_BODY)
        return
    result = {"kind": "result", "id": job_id, "outcome": outcome}
    if reason:
        result["reason"] = reason[:4096]
    _send(writer, result)


def _send(writer, header, body=b""):
    """One frame: header length, header, body length, body, in one write, so Fairway reads it at once."""
    encoded = _encode(header).encode()
    writer.send(_length(len(encoded)) + encoded + _length(len(body)) + body)


_length = struct.Struct(">I").pack
_NO_BODY = _length(0)

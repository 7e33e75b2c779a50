#!/usr/bin/env python3
"""The least a Python worker can do a job under the worker protocol (docs/worker-protocol.md), no library:
its job frames read in large reads, header and body decoded as JSON (the decoder's C scanner, as the library
calls it), one result written a job with one system call. SIGTERM is Python's default here (the process
ends), which costs nothing a job. Every job succeeds. A measuring stick for the library's own cost
(docs/benchmarks.md), not a worker to build on:

    FAIRWAY_BENCHMARK_WORKER="python3 Benchmarks/scripts/floor_worker.py" .build-benchmarks/release/EngineBenchmarks \
        --filter "^no-op jobs, warm workers, 8 workers, 8 queues, (thread pool|FAIRWAY_BENCHMARK_WORKER.*)$"
"""
import json
import json.scanner
import os
import struct

length = struct.Struct(">I")
scan = json.scanner.make_scanner(json.JSONDecoder())
hello = b'{"kind":"hello","protocol":1,"pid":%d,"pipeline":64}' % os.getpid()
os.write(1, length.pack(len(hello)) + hello + b"\0\0\0\0")
pending = b""
while True:
    chunk = os.read(0, 1 << 16)
    if not chunk:
        break
    pending = pending + chunk if pending else chunk
    at, size = 0, len(pending)
    while size - at >= 8:
        (header_length,) = length.unpack_from(pending, at)
        if size - at < 8 + header_length:
            break
        (body_length,) = length.unpack_from(pending, at + 4 + header_length)
        end = at + 8 + header_length + body_length
        if size < end:
            break
        job = scan(pending[at + 4:at + 4 + header_length].decode(), 0)[0]
        if body_length:
            scan(pending[at + 8 + header_length:end].decode(), 0)
        result = b'{"kind":"result","id":' + json.encoder.encode_basestring_ascii(job["id"]).encode() + b',"outcome":"success"}'
        os.write(1, length.pack(len(result)) + result + b"\0\0\0\0")
        at = end
    pending = pending[at:]

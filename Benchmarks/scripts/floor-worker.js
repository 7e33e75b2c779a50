#!/usr/bin/env node
'use strict';
// The least a Node worker can do a job under the worker protocol (docs/worker-protocol.md), no library: its
// job frames read as they come, header and body decoded as JSON, one result written a job, and (unless run
// with `--no-poll`) one turn of the event loop before each job, which is how a Node worker learns of a
// SIGTERM before it starts the next job, as the protocol's pipelining rules ask. Every job succeeds.
// `--no-poll` breaks that rule: it shows what the rule costs. A measuring stick for the library's own cost
// (docs/benchmarks.md), not a worker to build on:
//   FAIRWAY_BENCHMARK_WORKER="node Benchmarks/scripts/floor-worker.js" .build-benchmarks/release/EngineBenchmarks \
//       --filter "^no-op jobs, warm workers, 8 workers, 8 queues, (thread pool|FAIRWAY_BENCHMARK_WORKER.*)$"
const poll = process.argv[2] !== '--no-poll';
const output = process.stdout;
function frame(header) {
  const encoded = Buffer.from(JSON.stringify(header));
  const bytes = Buffer.allocUnsafe(8 + encoded.length);
  bytes.writeUInt32BE(encoded.length, 0);
  encoded.copy(bytes, 4);
  bytes.writeUInt32BE(0, 4 + encoded.length);
  return bytes;
}
let terminated = false;
process.on('SIGTERM', () => {
  terminated = true;
  if (!busy) process.exit(0);
});
output.write(frame({ kind: 'hello', protocol: 1, pid: process.pid, pipeline: 64 }));
let pending = Buffer.alloc(0);
const jobs = [];
let busy = false;
async function serve() {
  if (busy) return;
  busy = true;
  while (jobs.length && !terminated) {
    const [header, body] = jobs.shift();
    const job = JSON.parse(header);
    if (body.length) JSON.parse(body);
    output.write(frame({ kind: 'result', id: job.id, outcome: 'success' }));
    if (poll && jobs.length) await new Promise(setImmediate);
  }
  busy = false;
  if (terminated) process.exit(0);
}
process.stdin.on('data', (chunk) => {
  pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  let at = 0;
  while (pending.length - at >= 8) {
    const headerLength = pending.readUInt32BE(at);
    if (pending.length - at < 8 + headerLength) break;
    const bodyLength = pending.readUInt32BE(at + 4 + headerLength);
    const end = at + 8 + headerLength + bodyLength;
    if (pending.length < end) break;
    jobs.push([pending.toString('utf8', at + 4, at + 4 + headerLength), pending.toString('utf8', at + 8 + headerLength, end)]);
    at = end;
  }
  pending = pending.subarray(at);
  serve();
});
process.stdin.on('end', () => process.exit(0));

#!/usr/bin/env node
'use strict';
// A worker built on fairway-worker.js: the job types Fairway's tests and the docs use.
//   queues:
//     - { name: reports, isolation: process, command: ["node", "Workers/node/example-worker.js"] }
const fs = require('fs');
const { Worker, PermanentError } = require('./fairway-worker');

const worker = new Worker();
worker.handle('append', (payload, context) => {
  if (!payload || !payload.path || !payload.line) throw new PermanentError("append: the payload needs 'path' and 'line'");
  const key = context.key === null ? '' : ` key=${context.key}`;
  fs.appendFileSync(payload.path, `${payload.line} pid=${process.pid} attempt=${context.attempt}${key}\n`);
});
worker.handle('sleep', (payload) => {
  const ms = Number((payload || {}).ms || 0);
  if (ms <= 0) return undefined; // setTimeout(0) would still wait a timer turn (about 1 ms)
  // At SIGTERM the library reports the job stopped and the worker exits: the timer needs no clearing.
  return new Promise((resolve) => setTimeout(resolve, ms));
});
// Blocks the worker for {"ms": N} without returning to the event loop, as `sleep` does in the other languages'
// examples (and Fairway's built-in): as exact as a thread's sleep, where a timer (`sleep` above) fires up to a
// millisecond late. SIGTERM waits until it returns; Fairway's SIGKILL after the grace does not.
worker.handle('block', (payload) => {
  const ms = Number((payload || {}).ms || 0);
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
});
worker.handle('fail', async (payload) => {
  const message = (payload || {}).message || 'failed on purpose';
  console.log(`failing on purpose: ${message}`); // to stderr: stdout is the protocol's
  throw new Error(message);
});
worker.handle('reject', (payload) => { throw new PermanentError((payload || {}).message || 'rejected on purpose'); });
worker.handle('crash', () => process.exit(3));
worker.handle('echo-size', (payload) => { throw new PermanentError(`size ${String((payload || {}).data || '').length}`); });
worker.run();

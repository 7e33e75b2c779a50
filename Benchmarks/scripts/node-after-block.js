'use strict';
// What building one result frame costs in Node right after the thread was held 10 ms (Atomics.wait, as a
// `block` job does, or a busy loop) against back to back: the first steps after a pause run on cold caches.
//
//     node Benchmarks/scripts/node-after-block.js wait|spin|none
const { performance } = require('node:perf_hooks');

const mode = process.argv[2] || 'wait';
const cell = new Int32Array(new SharedArrayBuffer(4));
const spent = [0, 0, 0, 0];
let counted = 0;
let kept;
for (let index = 0; index < 300; index++) {
  if (mode === 'wait') Atomics.wait(cell, 0, 0, 10);
  else if (mode === 'spin') for (const end = Date.now() + 10; Date.now() < end;);
  const t0 = performance.now();
  const result = { kind: 'result', id: String(index), outcome: 'success' };
  const t1 = performance.now();
  const json = JSON.stringify(result);
  const t2 = performance.now();
  const frame = Buffer.allocUnsafe(8 + json.length);
  const t3 = performance.now();
  frame.write(json, 4, 'utf8');
  const t4 = performance.now();
  kept = frame;
  if (index >= 50) {
    spent[0] += t1 - t0; spent[1] += t2 - t1; spent[2] += t3 - t2; spent[3] += t4 - t3;
    counted += 1;
  }
}
const µs = (value) => (value / counted * 1000).toFixed(1);
console.log(`${mode}: object ${µs(spent[0])} µs, JSON.stringify ${µs(spent[1])}, Buffer.allocUnsafe ${µs(spent[2])}, `
  + `write ${µs(spent[3])} (frame of ${kept.length} bytes)`);

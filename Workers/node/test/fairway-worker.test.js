'use strict';
// node --test Workers/node/test: a real worker process spoken to over its pipes.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { FrameReader, Worker, frame } = require('../fairway-worker');

/**
 * A worker process: the example, or the worker `code` builds with the library as `Worker`. Node gives a child
 * socket pairs for its stdio where Fairway gives pipes, so a `code` worker's three run through `cat`s, which
 * give it pipes (its pid is then the shell's; its status is passed on). `esm`: `code` is an ES module in a
 * package of `"type": "module"`, beside the library copied as `fairway-worker.cjs`, as its README says.
 */
function start(code = null, { esm = false } = {}) {
  const example = path.join(__dirname, '..', 'example-worker.js');
  const library = path.join(__dirname, '..', 'fairway-worker.js');
  let child;
  if (code === null) {
    child = spawn(process.execPath, [example], { stdio: ['pipe', 'pipe', 'pipe'] });
  } else {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'fw-node-'));
    const script = path.join(folder, 'worker.js');
    if (esm) {
      fs.writeFileSync(path.join(folder, 'package.json'), '{ "type": "module" }\n');
      fs.copyFileSync(library, path.join(folder, 'fairway-worker.cjs'));
      fs.writeFileSync(script, `import { Worker, PermanentError } from './fairway-worker.cjs';\n${code}`);
    } else {
      fs.writeFileSync(script, `const { Worker } = require(${JSON.stringify(library)});\n${code}`);
    }
    const shell = 'cat | "$0" "$1" 2> >(cat >&2) | cat; status=${PIPESTATUS[1]}; wait; exit $status';
    child = spawn('bash', ['-c', shell, process.execPath, script], { stdio: ['pipe', 'pipe', 'pipe'] });
  }
  const reader = new FrameReader();
  const waiting = [];
  const frames = [];
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  child.stdout.on('data', (chunk) => {
    reader.push(chunk);
    for (let message = reader.next(); message; message = reader.next()) {
      if (waiting.length) waiting.shift()(message.header); else frames.push(message.header);
    }
  });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child, exited, stderr: () => stderr,
    receive: () => frames.length ? Promise.resolve(frames.shift()) : new Promise((resolve) => waiting.push(resolve)),
    send: (header, body) => child.stdin.write(frame(header, body ? Buffer.from(body) : undefined)),
    job(jobType, payload, { id = '1', timeout = 30, attempt = 1, key } = {}) {
      const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
      const header = { kind: 'job', id, queue: 'q', jobType, attempt, maxAttempts: 3, timeoutSeconds: timeout };
      if (key !== undefined) header.key = key;
      this.send(header, body);
      return this.receive();
    },
  };
}

test('hello, then a success with its context, and exit 0 when stdin closes', async () => {
  const worker = start();
  assert.deepStrictEqual(await worker.receive(), { kind: 'hello', protocol: 1, pid: worker.child.pid, pipeline: 64 });
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'fw-node-'));
  const file = path.join(folder, 'out');
  assert.deepStrictEqual(await worker.job('append', { path: file, line: 'hi' }, { id: '7', attempt: 2 }),
    { kind: 'result', id: '7', outcome: 'success' });
  assert.strictEqual(fs.readFileSync(file, 'utf8'), `hi pid=${worker.child.pid} attempt=2\n`);
  worker.child.stdin.end();
  assert.strictEqual(await worker.exited, 0);
});

test("the example's block holds the worker for the time asked, off the event loop, and succeeds", async () => {
  const worker = start();
  await worker.receive();
  const started = process.hrtime.bigint();
  assert.deepStrictEqual(await worker.job('block', { ms: 100 }, { id: 'b' }), { kind: 'result', id: 'b', outcome: 'success' });
  assert.ok(Number(process.hrtime.bigint() - started) / 1e6 >= 100, 'answered before its 100 ms were up');
  worker.child.stdin.end();
  assert.strictEqual(await worker.exited, 0);
});

test('the fairness key reaches the handler', async () => {
  const worker = start();
  await worker.receive();
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fw-node-')), 'out');
  await worker.job('append', { path: file, line: 'a' }, { key: 'acme' });
  await worker.job('append', { path: file, line: 'b' });
  const pid = worker.child.pid;
  assert.strictEqual(fs.readFileSync(file, 'utf8'), `a pid=${pid} attempt=1 key=acme\nb pid=${pid} attempt=1\n`);
  worker.child.kill('SIGKILL');
});

test('a thrown error is a failure with its message; the worker keeps serving; console.log goes to stderr', async () => {
  const worker = start();
  await worker.receive();
  const result = await worker.job('fail', { message: 'upstream 503' });
  assert.strictEqual(result.outcome, 'failure');
  assert.strictEqual(result.reason, 'Error: upstream 503');
  assert.strictEqual((await worker.job('sleep', { ms: 1 }, { id: '2' })).outcome, 'success');
  assert.match(worker.stderr(), /failing on purpose: upstream 503/);
  worker.child.kill('SIGKILL');
});

test('PermanentError, an unknown type and a payload that is not JSON are rejected', async () => {
  const worker = start();
  await worker.receive();
  assert.deepStrictEqual(await worker.job('reject', { message: 'no customer' }),
    { kind: 'result', id: '1', outcome: 'rejected', reason: 'no customer' });
  const unknown = await worker.job('resize', {});
  assert.strictEqual(unknown.outcome, 'rejected');
  assert.match(unknown.reason, /unknown job type 'resize' \(this worker handles: append/);
  const bad = await worker.job('append', '{not json');
  assert.strictEqual(bad.outcome, 'rejected');
  assert.match(bad.reason, /not JSON/);
  worker.child.kill('SIGKILL');
});

test('SIGTERM stops the running job at once, reports it, and the worker exits', async () => {
  const worker = start();
  await worker.receive();
  worker.send({ kind: 'job', id: '9', queue: 'q', jobType: 'sleep', attempt: 1, maxAttempts: 1, timeoutSeconds: 0.1 }, '{"ms":20000}');
  await new Promise((resolve) => setTimeout(resolve, 300));
  const started = Date.now();
  worker.child.kill('SIGTERM');
  const result = await worker.receive();
  assert.strictEqual(result.outcome, 'failure');
  assert.match(result.reason, /SIGTERM/);
  assert.strictEqual(await worker.exited, 0);
  assert.ok(Date.now() - started < 2000);
});

for (const [when, sendCrashLate] of [['sent with it', false], ['sent while it runs', true]]) {
  test(`a SIGTERM while a handler holds the thread: its job is answered, none ${when} starts, exit 0`, async () => {
    const worker = start();
    await worker.receive();
    const crash = () => worker.send({ kind: 'job', id: 'c', queue: 'q', jobType: 'crash', attempt: 1, maxAttempts: 1, timeoutSeconds: 30 });
    worker.send({ kind: 'job', id: 'b', queue: 'q', jobType: 'block', attempt: 1, maxAttempts: 1, timeoutSeconds: 30 }, '{"ms":400}');
    if (!sendCrashLate) crash();
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Sent while the block runs, the crash's frame and the signal are found by one poll when the block ends.
    if (sendCrashLate) crash();
    await new Promise((resolve) => setTimeout(resolve, 100));
    worker.child.kill('SIGTERM');
    // The block ran to its end, so it succeeded; the crash behind it would end the worker with status 3.
    assert.deepStrictEqual(await worker.receive(), { kind: 'result', id: 'b', outcome: 'success' });
    assert.strictEqual(await worker.exited, 0);
  });
}

test('a logger on stdout and a program a job starts write to stderr, and neither takes the job sent behind', async () => {
  const worker = start(`
    const fs = require('node:fs');
    const { spawnSync } = require('node:child_process');
    const worker = new Worker();
    worker.handle('log', () => { process.stdout.write('process.stdout\\n'); fs.writeSync(1, 'descriptor 1\\n'); });
    worker.handle('spawn', (payload, context) => {
      spawnSync('sh', ['-c', 'cat; echo from a child of job $0', context.id], { stdio: 'inherit' });
    });
    worker.handle('noop', () => {});
    worker.run();`);
  await worker.receive();
  const job = (id, jobType) => worker.send({ kind: 'job', id, queue: 'q', jobType, attempt: 1, maxAttempts: 1, timeoutSeconds: 10 });
  job('1', 'log');
  job('2', 'spawn');
  job('3', 'noop');
  for (const id of ['1', '2', '3']) assert.deepStrictEqual(await worker.receive(), { kind: 'result', id, outcome: 'success' });
  worker.child.stdin.end();
  assert.strictEqual(await worker.exited, 0);
  assert.strictEqual(worker.stderr(), 'process.stdout\ndescriptor 1\nfrom a child of job 2\n');
});

test('a Worker given process.stdout itself still sends console output to stderr', async () => {
  const worker = start(`
    const worker = new Worker({ output: process.stdout });
    worker.handle('log', () => { console.log('console.log'); });
    worker.run();`);
  await worker.receive();
  worker.send({ kind: 'job', id: '1', queue: 'q', jobType: 'log', attempt: 1, maxAttempts: 1, timeoutSeconds: 10 });
  assert.deepStrictEqual(await worker.receive(), { kind: 'result', id: '1', outcome: 'success' });
  worker.child.stdin.end();
  assert.strictEqual(await worker.exited, 0);
  assert.strictEqual(worker.stderr(), 'console.log\n');
});

test('an ES module worker (a package of "type": "module") imports the library copied as .cjs', async () => {
  const worker = start(`
    const worker = new Worker();
    worker.handle('wait', async () => { await new Promise((resolve) => setTimeout(resolve, 5)); });
    worker.handle('reject', () => { throw new PermanentError('from a module'); });
    worker.run();`, { esm: true });
  assert.strictEqual((await worker.receive()).kind, 'hello', worker.stderr());
  assert.deepStrictEqual(await worker.job('wait', {}), { kind: 'result', id: '1', outcome: 'success' });
  assert.deepStrictEqual(await worker.job('reject', {}, { id: '2' }),
    { kind: 'result', id: '2', outcome: 'rejected', reason: 'from a module' });
  worker.child.stdin.end();
  assert.strictEqual(await worker.exited, 0);
});

test('a large body arrives whole; a crash is the process ending; a malformed frame ends it with a message', async () => {
  const worker = start();
  await worker.receive();
  const data = 'x'.repeat(8 << 20);
  assert.strictEqual((await worker.job('echo-size', { data })).reason, `size ${data.length}`);
  worker.send({ kind: 'job', id: '2', queue: 'q', jobType: 'crash', attempt: 1, maxAttempts: 1, timeoutSeconds: 5 });
  assert.strictEqual(await worker.exited, 3);

  const broken = start();
  await broken.receive();
  const bad = Buffer.alloc(13);
  bad.writeUInt32BE(5, 0); bad.write('nope!', 4); bad.writeUInt32BE(0, 9);
  broken.child.stdin.write(bad);
  assert.strictEqual(await broken.exited, 2);
  assert.match(broken.stderr(), /not JSON/);
});

test('jobs sent ahead (pipelining) run one at a time in order, each answered as it ends', async () => {
  const worker = start();
  await worker.receive();
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'fw-node-'));
  const file = path.join(folder, 'out');
  const jobs = [['sleep', { ms: 30 }], ['append', { path: file, line: 'b' }], ['fail', { message: 'c' }],
    ['append', { path: file, line: 'd' }]];
  jobs.forEach(([jobType, payload], index) => worker.send(
    { kind: 'job', id: `p${index}`, queue: 'q', jobType, attempt: 1, maxAttempts: 3, timeoutSeconds: 30 },
    JSON.stringify(payload)));
  const results = [];
  for (let index = 0; index < jobs.length; index += 1) results.push(await worker.receive());
  assert.deepStrictEqual(results.map((result) => [result.id, result.outcome]),
    [['p0', 'success'], ['p1', 'success'], ['p2', 'failure'], ['p3', 'success']]);
  assert.deepStrictEqual(fs.readFileSync(file, 'utf8').split('\n').map((line) => line.split(' ')[0]), ['b', 'd', '']);
  worker.child.stdin.end();
  assert.strictEqual(await worker.exited, 0);
});

test("a handler's return value: a thenable is awaited; one whose then throws fails its job, not the worker", async () => {
  const worker = new Worker();
  worker.handle('plain', () => 42);
  worker.handle('thenable', () => ({ then(resolve, reject) { setTimeout(() => reject(new TypeError('late')), 5); } }));
  worker.handle('broken', () => ({ get then() { throw new RangeError('no then'); } }));
  const empty = Buffer.alloc(0);
  assert.deepStrictEqual(worker.runOne({ jobType: 'plain' }, empty), { outcome: 'success' });
  assert.deepStrictEqual(await worker.runOne({ jobType: 'thenable' }, empty), { outcome: 'failure', reason: 'TypeError: late' });
  assert.deepStrictEqual(worker.runOne({ jobType: 'broken' }, empty), { outcome: 'failure', reason: 'RangeError: no then' });
});

test('a generator function as a handler fails its job instead of succeeding with its body unrun', () => {
  const worker = new Worker();
  const ran = [];
  worker.handle('generator', function* () { ran.push('generator'); yield 1; });
  worker.handle('async-generator', async function* () { ran.push('async generator'); yield 1; });
  worker.handle('returns-an-iterator', () => [1, 2].values());
  const empty = Buffer.alloc(0);
  const generator = worker.runOne({ jobType: 'generator' }, empty);
  assert.strictEqual(generator.outcome, 'failure');
  assert.match(generator.reason, /generator function \(function\*\): calling it ran none of its body/);
  assert.deepStrictEqual(worker.runOne({ jobType: 'async-generator' }, empty), generator);
  assert.deepStrictEqual(worker.runOne({ jobType: 'returns-an-iterator' }, empty), { outcome: 'success' });
  assert.deepStrictEqual(ran, []);
});

test('a thrown value that cannot be read as text fails its job, not the worker', async () => {
  const worker = new Worker();
  const unreadable = { outcome: 'failure', reason: 'the handler threw an object that cannot be read as text' };
  worker.handle('bare', () => { throw Object.create(null); });
  worker.handle('rejects-bare', async () => { throw Object.create(null); });
  worker.handle('getter', () => { throw { get message() { throw new Error('no message'); } }; });
  worker.handle('symbol-name', () => { throw { name: Symbol('n'), message: 'm' }; });
  worker.handle('plain-object', () => { throw Object.assign(Object.create(null), { message: 'has one' }); });
  const empty = Buffer.alloc(0);
  assert.deepStrictEqual(worker.runOne({ jobType: 'bare' }, empty), unreadable);
  assert.deepStrictEqual(await worker.runOne({ jobType: 'rejects-bare' }, empty), unreadable);
  assert.deepStrictEqual(worker.runOne({ jobType: 'getter' }, empty), unreadable);
  assert.deepStrictEqual(worker.runOne({ jobType: 'symbol-name' }, empty), unreadable);
  assert.deepStrictEqual(worker.runOne({ jobType: 'plain-object' }, empty), { outcome: 'failure', reason: 'Error: has one' });
});

test('a large body read in many chunks is joined once, not once a chunk', () => {
  const header = Buffer.from('{"kind":"job","id":"1","queue":"q","jobType":"sleep","attempt":1,"maxAttempts":1}');
  const body = Buffer.alloc(16 << 20, 0x61);
  const lengths = (length) => { const out = Buffer.alloc(4); out.writeUInt32BE(length, 0); return out; };
  const whole = Buffer.concat([lengths(header.length), header, lengths(body.length), body]);
  const concat = Buffer.concat;
  let copied = 0;
  Buffer.concat = (list, ...rest) => { const joined = concat(list, ...rest); copied += joined.length; return joined; };
  const reader = new FrameReader();
  let message = null;
  try {
    for (let offset = 0; offset < whole.length; offset += 65536) {
      reader.push(whole.subarray(offset, offset + 65536));
      message = reader.next();
      if (offset + 65536 < whole.length) assert.strictEqual(message, null, `a frame before its last byte, at ${offset}`);
    }
  } finally {
    Buffer.concat = concat;
  }
  assert.strictEqual(message.header.jobType, 'sleep');
  assert.ok(message.body.equals(body), 'the body arrives whole');
  assert.ok(copied <= whole.length, `joined ${copied} bytes for a frame of ${whole.length}`);
  assert.strictEqual(reader.next(), null);
});

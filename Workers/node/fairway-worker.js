'use strict';
/**
 * Fairway worker processes in Node: handlers by job type, the pipe protocol hidden.
 *
 *   const { Worker, PermanentError } = require('./fairway-worker');
 *   const worker = new Worker();
 *   worker.handle('send-invoice', async (payload, context) => {
 *     if (!payload.customer) throw new PermanentError('no customer');   // dead-lettered at once
 *     await mail(payload.customer);                                      // a rejection: retried
 *   });
 *   worker.run();
 *
 * No dependencies (Node 18+). The protocol is docs/worker-protocol.md: jobs arrive on stdin, results leave
 * on stdout, so console.log is sent to stderr while the worker runs; Fairway logs stderr lines with the
 * queue and pid. One job at a time per process; jobs Fairway sends ahead (pipelining) wait their turn.
 */

const fs = require('node:fs');
const net = require('node:net');

const PROTOCOL = 1;
const MAX_HEADER = 1 << 20;
const MAX_BODY = 256 << 20;

/** Thrown by a handler for a job that can never succeed: dead-lettered at once, not retried. */
class PermanentError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PermanentError';
  }
}

/** What a handler knows of its job besides the payload. `signal` aborts when Fairway sends SIGTERM. */
class Context {
  #job;
  constructor(header, job = new RunningJob()) {
    this.id = String(header.id ?? '');
    this.queue = String(header.queue ?? '');
    /** The job's fairness key (its tenant), or null. */
    this.key = typeof header.key === 'string' ? header.key : null;
    this.jobType = String(header.jobType ?? '');
    this.attempt = Number(header.attempt ?? 1);
    this.maxAttempts = Number(header.maxAttempts ?? 1);
    this.timeoutSeconds = Number(header.timeoutSeconds ?? 0);
    /** Date.now() value past which Fairway counts the job as timed out (Infinity without a timeout). */
    this.deadline = this.timeoutSeconds > 0 ? Date.now() + this.timeoutSeconds * 1000 : Infinity;
    this.#job = job;
  }
  /** An AbortSignal that aborts at Fairway's SIGTERM (made when first asked for: most jobs never look). */
  get signal() { return this.#job.signal; }
  get remainingMs() { return Math.max(0, this.deadline - Date.now()); }
  get lastAttempt() { return this.attempt >= this.maxAttempts; }
}

/** The job a worker is running: what SIGTERM stops. */
class RunningJob {
  #controller = null;
  #stopped = false;
  /** Set while an asynchronous handler is awaited: reports the job stopped. */
  onStop = null;
  get signal() {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#stopped) this.#controller.abort();
    }
    return this.#controller.signal;
  }
  stop() {
    this.#stopped = true;
    if (this.#controller) this.#controller.abort();
    if (this.onStop) this.onStop();
  }
}

/**
 * Frames from a byte stream: 4-byte big-endian header length, JSON header, 4-byte body length, body. Chunks
 * are kept as they arrive and joined once a frame's bytes are all in, so a large body read in many chunks is
 * copied once, not once a chunk.
 */
class FrameReader {
  constructor() {
    this.buffer = Buffer.alloc(0);
    this.pending = [];
    this.pendingLength = 0;
  }
  push(chunk) {
    this.pending.push(chunk);
    this.pendingLength += chunk.length;
  }
  /** Whether `count` bytes are in; if so, `buffer` holds them (and all that came after). */
  #holds(count) {
    if (this.buffer.length >= count) return true;
    if (this.buffer.length + this.pendingLength < count) return false;
    this.buffer = this.buffer.length === 0 && this.pending.length === 1
      ? this.pending[0] : Buffer.concat([this.buffer, ...this.pending]);
    this.pending = [];
    this.pendingLength = 0;
    return true;
  }
  /** The next complete {header, body}, or null when more bytes are needed. Throws on a malformed frame. */
  next() {
    if (!this.#holds(4)) return null;
    const headerLength = this.buffer.readUInt32BE(0);
    if (headerLength > MAX_HEADER) throw new Error(`header of ${headerLength} bytes, more than ${MAX_HEADER}`);
    if (!this.#holds(8 + headerLength)) return null;
    const bodyLength = this.buffer.readUInt32BE(4 + headerLength);
    if (bodyLength > MAX_BODY) throw new Error(`body of ${bodyLength} bytes, more than ${MAX_BODY}`);
    const end = 8 + headerLength + bodyLength;
    if (!this.#holds(end)) return null;
    let header;
    try {
      header = JSON.parse(this.buffer.subarray(4, 4 + headerLength).toString('utf8'));
    } catch (error) {
      throw new Error(`the header is not JSON: ${error.message}`);
    }
    if (header === null || typeof header !== 'object' || Array.isArray(header)) {
      throw new Error('the header is not a JSON object');
    }
    const body = Buffer.from(this.buffer.subarray(8 + headerLength, end));
    this.buffer = this.buffer.subarray(end);
    return { header, body };
  }
}

function frame(header, body) {
  const json = JSON.stringify(header);
  const headerLength = Buffer.byteLength(json, 'utf8');
  const bodyLength = body ? body.length : 0;
  const encoded = Buffer.allocUnsafe(8 + headerLength + bodyLength);
  encoded.writeUInt32BE(headerLength, 0);
  encoded.write(json, 4, 'utf8');
  encoded.writeUInt32BE(bodyLength, 4 + headerLength);
  if (bodyLength) encoded.set(body, 8 + headerLength);
  return encoded;
}

/**
 * Resolves once the event loop has polled for I/O and signals. A `setImmediate` set from the loop's check phase
 * (from another immediate) runs after the next poll; one set from elsewhere (an I/O callback) can run before
 * it, so that one waits for a second.
 */
function afterNextPoll(inCheckPhase) {
  return new Promise((resolve) => setImmediate(inCheckPhase ? resolve : () => setImmediate(resolve)));
}

const SUCCESS = Object.freeze({ outcome: 'success' });
const STOPPED = Object.freeze({
  outcome: 'failure', reason: "stopped by SIGTERM (the job's timeout or the drain deadline)", stopped: true,
});

// A generator function's body runs only when its generator is iterated: called, it ran none of it.
const GENERATORS = new Set(['[object Generator]', '[object AsyncGenerator]']);
const GENERATOR = Object.freeze({
  outcome: 'failure',
  reason: 'the handler is a generator function (function*): calling it ran none of its body; return instead of yielding',
});

/** The outcome of a job whose handler threw, or rejected, with `error`: any value at all. */
function failure(error) {
  try {
    if (error instanceof PermanentError) return { outcome: 'rejected', reason: error.message || 'PermanentError' };
    const name = error && error.name ? error.name : 'Error';
    return { outcome: 'failure', reason: `${name}: ${error && error.message !== undefined ? error.message : String(error)}` };
  } catch {
    // An object without a prototype has no string form, and a getter may throw: reading the value must not end
    // the worker (a throw here escaped the job, and Node exited with status 1).
    return { outcome: 'failure', reason: `the handler threw ${typeof error === 'object' ? 'an object' : `a ${typeof error}`} that cannot be read as text` };
  }
}

/**
 * The protocol's pipes, moved off descriptors 0 and 1 to descriptors of their own, with /dev/null put on 0 and
 * stderr on 1: a program a handler starts with inherited stdio, and a logger that writes to descriptor 1 or
 * `process.stdout` (pino's default destination, winston's Console), would otherwise take the jobs sent ahead
 * or write into the results, and the worker would be ended for breaking the protocol. Node has no dup2: each
 * pipe is opened again through /proc/self/fd, its descriptor closed, and the next open takes the number.
 * Returns [input, output]; process.stdin and process.stdout where the pipes cannot be opened again (sockets).
 */
function protocolPipes() {
  let jobs;
  let results;
  try {
    jobs = fs.openSync('/proc/self/fd/0', 'r');
    results = fs.openSync('/proc/self/fd/1', 'w');
  } catch {
    // Not pipes (a socket cannot be opened again this way), or no /proc: served where they are.
    if (jobs !== undefined) fs.closeSync(jobs);
    return [process.stdin, process.stdout];
  }
  // Where stderr cannot be opened again (a socket), what is written to descriptor 1 is dropped instead.
  let errors = '/dev/null';
  try {
    fs.closeSync(fs.openSync('/proc/self/fd/2', 'a'));
    errors = '/proc/self/fd/2';
  } catch {}
  fs.closeSync(0);
  fs.openSync('/dev/null', 'r');
  fs.closeSync(1);
  fs.openSync(errors, 'a');
  // The streams Node makes for process.stdin and process.stdout on pipes, on the new descriptors.
  return [new net.Socket({ fd: jobs, readable: true, writable: false }),
    new net.Socket({ fd: results, readable: false, writable: true })];
}

class Worker {
  /**
   * `pipeline`: how many jobs Fairway may send before this worker answers the first (they wait in order
   * and run one at a time); 1 turns pipelining off. Fairway uses the smaller of this and the queue's.
   * `input` and `output`: streams to serve instead of the protocol's pipes (tests, an embedding); by default
   * the pipes on descriptors 0 and 1, which `run()` moves to descriptors of their own (with only one of the
   * two given, the other is process.stdin or process.stdout, where it is).
   */
  constructor({ input = null, output = null, pipeline = 64 } = {}) {
    if (!Number.isInteger(pipeline) || pipeline < 1) throw new TypeError('pipeline is a whole number of jobs, at least 1');
    this.handlers = new Map();
    this.input = input;
    this.output = output;
    this.pipeline = pipeline;
  }

  /** Registers `fn(payload, context)` (it may return a promise) for a job type. */
  handle(jobType, fn) {
    if (typeof jobType !== 'string' || jobType === '') throw new TypeError('a job type is a non-empty string');
    if (this.handlers.has(jobType)) throw new Error(`job type '${jobType}' already has a handler`);
    this.handlers.set(jobType, fn);
    return this;
  }

  get jobTypes() { return [...this.handlers.keys()].sort(); }

  /** Serves jobs until Fairway closes stdin (exit 0) or stops a running job with SIGTERM. */
  run() {
    if (this.output === null || this.output === process.stdout) {
      // stdout is the protocol's: console output goes to stderr, and so to Fairway's log.
      for (const name of ['log', 'info', 'debug']) console[name] = (...args) => console.error(...args);
    }
    if (this.input === null && this.output === null) {
      [this.input, this.output] = protocolPipes();
    } else {
      this.input ??= process.stdin;
      this.output ??= process.stdout;
    }
    let running = null;
    let terminated = false;
    process.on('SIGTERM', () => {
      terminated = true;
      if (running) running.stop(); else process.exit(0);
    });
    process.on('SIGINT', () => {});
    this.output.write(frame({ kind: 'hello', protocol: PROTOCOL, pid: process.pid, pipeline: this.pipeline }));
    const reader = new FrameReader();
    const queue = [];
    let busy = false;
    const pump = async () => {
      if (busy) return;
      busy = true;
      // Jobs start in the loop's check phase, once the poll that brought them has delivered all it found: a
      // SIGTERM that came with them is seen first.
      await new Promise(setImmediate);
      let inCheckPhase = true;
      while (queue.length) {
        const { header, body } = queue.shift();
        if (header.kind !== 'job') {
          console.error(`fairway-worker: expected a job, got ${JSON.stringify(header.kind)}; exiting`);
          process.exit(2);
        }
        running = new RunningJob();
        let ended = this.runOne(header, body, running);
        if (typeof ended.then === 'function') {
          ended = await ended;
          inCheckPhase = false; // resumed from whatever settled the handler's promise
        }
        running = null;
        const result = { kind: 'result', id: header.id, outcome: ended.outcome };
        if (ended.reason) result.reason = String(ended.reason).slice(0, 4096);
        const written = this.output.write(frame(result));
        if (ended.stopped || terminated) {
          await new Promise((resolve) => (written ? resolve() : this.output.once('drain', resolve)));
          process.exit(0);
        }
        if (!written) {
          await new Promise((resolve) => this.output.once('drain', resolve));
          inCheckPhase = false;
        }
        // The event loop polls before the next job starts: a SIGTERM that came while a handler held the thread
        // is seen there, and no job sent behind the stopped one starts.
        if (queue.length) {
          await afterNextPoll(inCheckPhase);
          inCheckPhase = true;
        }
      }
      busy = false;
    };
    this.input.on('data', (chunk) => {
      reader.push(chunk);
      try {
        for (let message = reader.next(); message; message = reader.next()) queue.push(message);
      } catch (error) {
        console.error(`fairway-worker: ${error.message}; exiting`);
        process.exit(2);
      }
      pump();
    });
    this.input.on('end', async () => {
      while (busy) await new Promise((resolve) => setTimeout(resolve, 5));
      process.exit(0);
    });
  }

  /** The job's outcome, or a promise of it when its handler returns one. */
  runOne(header, body, running = new RunningJob()) {
    const context = new Context(header, running);
    const fn = this.handlers.get(context.jobType);
    if (!fn) {
      return { outcome: 'rejected', reason: `unknown job type '${context.jobType}' (this worker handles: ${this.jobTypes.join(', ') || 'none'})` };
    }
    let payload = null;
    if (body.length) {
      try { payload = JSON.parse(body.toString('utf8')); } catch (error) {
        return { outcome: 'rejected', reason: `the payload is not JSON: ${error.message}` };
      }
    }
    let returned;
    try {
      returned = fn(payload, context);
      // A returned value's `then` is read here, inside the try: a getter that throws fails the job, not the worker.
      if (returned === null || (typeof returned !== 'object' && typeof returned !== 'function') || typeof returned.then !== 'function') {
        return GENERATORS.has(Object.prototype.toString.call(returned)) ? GENERATOR : SUCCESS;
      }
    } catch (error) {
      return failure(error);
    }
    return new Promise((resolve) => {
      running.onStop = () => resolve(STOPPED);
      Promise.resolve(returned).then(() => resolve(SUCCESS), (error) => resolve(failure(error)));
    });
  }
}

module.exports = { Worker, Context, PermanentError, FrameReader, frame, PROTOCOL };

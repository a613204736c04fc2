/**
 * The delivery engine on a sink that records batches and fails on command: batching by size and
 * age, retries with backoff, retry_limit, dead letters and commits, the queue bound's
 * backpressure, and draining on shutdown.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import pino from 'pino';
import { Commit } from '../../../src/core/commit.js';
import { parseRetryLimit } from '../../../src/core/common-options.js';
import { DeliveryEngine, type DeliveryOptions } from '../../../src/core/delivery.js';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { FlowControl } from '../../../src/core/flow.js';
import { DeliveryError, EncodeError, RecordsFailed, type OutgoingBatch, type OutputInstance } from '../../../src/core/plugin.js';
import { Metrics } from '../../../src/observe/metrics.js';

class Sink implements OutputInstance {
  batches: Array<readonly LogEvent[]> = [];
  attempts: number[] = [];
  /** Errors thrown by the next sends, in order. */
  failures: Error[] = [];
  /** When set, sends wait for this promise. */
  gate: Promise<void> | undefined;
  async send(batch: OutgoingBatch): Promise<void> {
    this.attempts.push(Date.now());
    if (this.gate) await this.gate;
    const f = this.failures.shift();
    if (f) throw f;
    this.batches.push(batch.events);
  }
}

const evs = (n: number, from = 0): LogEvent[] => Array.from({ length: n }, (_, i) => ({ tag: 't', time: new EventTime(1_700_000_000, from + i), record: { i: from + i } }));

function engine(sink: OutputInstance, opts: Partial<DeliveryOptions> = {}) {
  const flow = new FlowControl();
  const metrics = new Metrics();
  const e = new DeliveryEngine(
    'out.0',
    sink,
    {
      batchSize: 100,
      batchBytes: 1 << 20,
      batchWait: 0.05,
      workers: 1,
      retryLimit: 1,
      base: 0.02,
      cap: 0.1,
      queueRecords: 1000,
      queueBytes: 1 << 30,
      ...opts,
    },
    flow,
    metrics,
    pino({ level: 'silent' }),
  );
  const counter = async (name: string) => {
    const m = metrics.registry.getSingleMetric(name);
    if (!m) return 0;
    return (await m.get()).values.reduce((n, v) => n + v.value, 0);
  };
  return { e, flow, counter };
}

/**
 * Enqueues like an input: one commit per chunk; resolves with its outcome. The engine's batch
 * timer does not keep the process alive (inputs do), so a ref'd timer stands in for them here.
 */
function push(e: DeliveryEngine, events: LogEvent[], bytes = events.length * 10): Promise<{ ok: boolean; reason?: string }> {
  const alive = setTimeout(() => assert.fail('commit did not settle within 10 s'), 10_000);
  return new Promise<{ ok: boolean; reason?: string }>((resolve) => {
    const c = new Commit((ok, reason) => resolve({ ok, reason }));
    e.enqueue(events, c, bytes);
    c.release();
  }).finally(() => clearTimeout(alive));
}

const ids = (b: readonly LogEvent[]) => b.map((x) => x.record.i);

/** Lets callbacks and promise chains that are ready run (setImmediate is not mocked). */
async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

/** Mocked setTimeout and Date: the engine's timers fire only when the test moves the clock. */
function mockClock(t: TestContext): void {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_700_000_000_000 });
}

/** Moves the mocked clock `ms` milliseconds forward one at a time, letting what is due run. */
async function advance(t: TestContext, ms: number): Promise<void> {
  for (let i = 0; i < ms; i++) {
    t.mock.timers.tick(1);
    await settle(2);
  }
}

test('full batches go at once; the remainder waits for batch_wait', async (t) => {
  mockClock(t);
  const sink = new Sink();
  const { e } = engine(sink, { batchSize: 3, batchWait: 0.2 });
  const done = push(e, evs(7));
  await settle();
  assert.deepEqual(sink.batches.map(ids), [
    [0, 1, 2],
    [3, 4, 5],
  ]);
  await advance(t, 199);
  assert.equal(sink.batches.length, 2, 'the partial batch waits for batch_wait');
  await advance(t, 1);
  assert.deepEqual(await done, { ok: true, reason: undefined });
  assert.deepEqual(sink.batches.map(ids), [[0, 1, 2], [3, 4, 5], [6]]);
});

test('chunks smaller than batch_size are merged into one batch by age', async () => {
  const sink = new Sink();
  const { e } = engine(sink, { batchSize: 10, batchWait: 0.05 });
  const a = push(e, evs(2));
  const b = push(e, evs(3, 2));
  await Promise.all([a, b]);
  assert.deepEqual(sink.batches.map(ids), [[0, 1, 2, 3, 4]]);
});

test('batch_bytes cuts a batch before batch_size', async () => {
  const sink = new Sink();
  const { e } = engine(sink, { batchSize: 100, batchBytes: 50, batchWait: 10 });
  await Promise.all([push(e, evs(2), 30), push(e, evs(2, 2), 30)]);
  assert.deepEqual(sink.batches.map(ids), [[0, 1, 2, 3]]);
});

test('a retryable failure is retried with backoff between base and cap', async (t) => {
  mockClock(t);
  const sink = new Sink();
  sink.failures = [new DeliveryError('503', true, 'http_503'), new DeliveryError('503', true, 'http_503')];
  const { e, counter } = engine(sink, { retryLimit: 3, base: 0.05, cap: 0.08 });
  const outcome = push(e, evs(2));
  for (let ms = 0; ms < 1000 && sink.attempts.length < 3; ms++) await advance(t, 1);
  assert.deepEqual(await outcome, { ok: true, reason: undefined });
  assert.equal(sink.attempts.length, 3);
  for (let i = 1; i < 3; i++) {
    const gap = sink.attempts[i]! - sink.attempts[i - 1]!;
    assert.ok(gap >= 50 && gap <= 80, `gap ${gap}`);
  }
  assert.equal(await counter('logwarden_output_retries_total'), 2);
  assert.equal(await counter('logwarden_output_proc_records_total'), 2);
});

test('Retry-After: a retry waits max(backoff, retryAfter), never longer than scheduler.cap', async (t) => {
  mockClock(t);
  const sink = new Sink();
  sink.failures = [
    new DeliveryError('429', true, 'http_429', 0.3), // longer than the backoff (50-100 ms): 300 ms
    new DeliveryError('429', true, 'http_429', 3600), // an hour: the cap, 500 ms
    new DeliveryError('503', true, 'http_503', 0.001), // shorter than the backoff: the backoff
    new DeliveryError('400', false, 'http_400', 60), // not retryable: no wait at all
  ];
  const { e, counter } = engine(sink, { retryLimit: 5, base: 0.05, cap: 0.5 });
  const outcome = push(e, evs(1));
  for (let ms = 0; ms < 2000 && sink.attempts.length < 4; ms++) await advance(t, 1);
  assert.deepEqual(await outcome, { ok: false, reason: '400' }, 'rejected, no dead letter file');
  const gaps = sink.attempts.slice(1).map((at, i) => at - sink.attempts[i]!);
  assert.equal(gaps.length, 3);
  assert.ok(gaps[0]! >= 300 && gaps[0]! <= 301, `waited ${gaps[0]} ms for Retry-After 0.3`);
  assert.ok(gaps[1]! >= 500 && gaps[1]! <= 501, `waited ${gaps[1]} ms for Retry-After 3600 with cap 0.5`);
  assert.ok(gaps[2]! >= 50 && gaps[2]! <= 400, `waited ${gaps[2]} ms: the backoff`);
  assert.equal(await counter('logwarden_output_retries_total'), 3);
});

test('backoff is full jitter: rand(base, min(cap, base * 2^n))', () => {
  const { e } = engine(new Sink(), { base: 1, cap: 6 });
  for (let n = 1; n <= 5; n++) {
    for (let k = 0; k < 50; k++) {
      const w = e.backoff(n);
      assert.ok(w >= 1 && w <= Math.min(6, 2 ** n), `attempt ${n}: ${w}`);
    }
  }
});

test('retry_limit: 3, no_retries and no_limits', async () => {
  assert.equal(parseRetryLimit('3'), 3);
  assert.equal(parseRetryLimit('no_retries'), 0);
  assert.equal(parseRetryLimit('no_limits'), Infinity);
  assert.equal(parseRetryLimit('false'), Infinity);
  assert.equal(parseRetryLimit(undefined), 1);

  const dir = mkdtempSync(join(tmpdir(), 'logwarden-delivery-'));
  for (const [limit, attempts] of [
    ['3', 4],
    ['no_retries', 1],
  ] as const) {
    const sink = new Sink();
    sink.failures = Array.from({ length: 10 }, () => new DeliveryError('down', true, 'connection'));
    const { e, counter } = engine(sink, { retryLimit: parseRetryLimit(limit), deadLetterFile: join(dir, `${limit}.jsonl`) });
    const outcome = await push(e, evs(1));
    assert.equal(outcome.ok, false, limit);
    assert.equal(sink.attempts.length, attempts, limit);
    assert.equal(await counter('logwarden_output_retries_failed_total'), 1);
  }

  const sink = new Sink();
  sink.failures = Array.from({ length: 8 }, () => new DeliveryError('down', true, 'connection'));
  const { e } = engine(sink, { retryLimit: parseRetryLimit('no_limits'), base: 0.001, cap: 0.002 });
  assert.deepEqual(await push(e, evs(1)), { ok: true, reason: undefined });
  assert.equal(sink.attempts.length, 9);
});

test('a non-retryable error goes to the dead letter at once and the chunk is committed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-delivery-'));
  const file = join(dir, 'sub', 'dead.jsonl');
  const sink = new Sink();
  sink.failures = [new DeliveryError('HTTP 400: bad labels', false, 'http_400')];
  const { e, counter } = engine(sink, { retryLimit: 5, deadLetterFile: file });
  assert.deepEqual(await push(e, evs(2)), { ok: true, reason: undefined });
  assert.equal(sink.attempts.length, 1);
  const lines = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[0].output, 'out.0');
  assert.equal(lines[0].reason, 'http_400');
  assert.equal(lines[0].error, 'HTTP 400: bad labels');
  assert.equal(lines[0].attempts, 1);
  assert.equal(lines[0].time, '2023-11-14T22:13:20.000000000Z');
  assert.deepEqual(lines[1].record, { i: 1 });
  assert.equal(await counter('logwarden_output_dropped_records_total'), 2);
});

test('retries exhausted: dead letter and the commit fails', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-delivery-'));
  const file = join(dir, 'dead.jsonl');
  const sink = new Sink();
  sink.failures = [new DeliveryError('a', true, 'http_500'), new DeliveryError('b', true, 'http_500')];
  const { e } = engine(sink, { retryLimit: 1, deadLetterFile: file });
  const outcome = await push(e, evs(1));
  assert.deepEqual(outcome, { ok: false, reason: 'b' });
  const [line] = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(line.attempts, 2);
  assert.equal(line.error, 'b');
});

test('the queue bound blocks the flow and unblocks it below half', async () => {
  const sink = new Sink();
  let open!: () => void;
  sink.gate = new Promise((r) => (open = r));
  const { e, flow } = engine(sink, { batchSize: 2, queueRecords: 6 });
  const events: string[] = [];
  flow.on('pause', (who: string) => events.push(`pause ${who}`));
  flow.on('resume', () => events.push('resume'));
  const outcomes = [push(e, evs(4)), push(e, evs(2, 4))];
  assert.equal(flow.paused, true);
  assert.deepEqual(flow.reasons(), { 'out.0': 'queue full (6 records, 60 bytes)' });
  assert.deepEqual(e.depth, { records: 6, bytes: 60 });
  open();
  await Promise.all(outcomes);
  assert.equal(flow.paused, false);
  assert.deepEqual(events, ['pause out.0', 'resume']);
  assert.deepEqual(e.depth, { records: 0, bytes: 0 });
});

test('drain sends the open batch and pending retries at once on shutdown', async (t) => {
  mockClock(t);
  const sink = new Sink();
  sink.failures = [new DeliveryError('x', true, 'http_503')];
  const { e } = engine(sink, { batchWait: 60, retryLimit: 5, base: 30, cap: 60 });
  const first = push(e, evs(1));
  await advance(t, 5);
  assert.equal(sink.attempts.length, 0, 'waiting for batch_wait');
  const drained = e.drain(2000);
  await settle();
  assert.equal(sink.attempts.length, 1, 'the open batch goes at once');
  // While closing a retry waits at most 250 ms instead of its 30-60 s backoff.
  await advance(t, 250);
  assert.equal(await drained, 0);
  assert.equal(sink.attempts.length, 2);
  assert.deepEqual(await first, { ok: true, reason: undefined });
  assert.equal(sink.batches.length, 1);
});

test('drain gives up after the grace period and releases undelivered records as failed', async (t) => {
  mockClock(t);
  const sink = new Sink();
  sink.failures = Array.from({ length: 100 }, () => new DeliveryError('down', true, 'connection'));
  const { e } = engine(sink, { retryLimit: Infinity, base: 0.01, cap: 0.02 });
  const outcome = push(e, evs(1));
  await advance(t, 80);
  assert.ok(sink.attempts.length >= 2, 'retrying');
  let result: number | undefined;
  const drained = e.drain(150).then((n) => (result = n));
  await advance(t, 149);
  assert.equal(result, undefined, 'still within the grace period');
  await advance(t, 1);
  assert.equal(await drained, 1);
  assert.equal((await outcome).ok, false);
});

test('at the end of the grace period, requests in flight are aborted and their batches not committed, without a dead letter', async (t) => {
  mockClock(t);
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-delivery-'));
  const file = join(dir, 'dead.jsonl');
  const signals: AbortSignal[] = [];
  let answer!: () => void;
  // Answers only when the test says so (a downstream that hangs), whatever the signal says.
  const sink: OutputInstance = {
    send: (_batch, signal) => {
      signals.push(signal!);
      return new Promise<void>((r) => (answer = r));
    },
  };
  const { e, counter } = engine(sink, { batchSize: 2, batchWait: 0, deadLetterFile: file });
  const released: Array<{ ok: boolean; safe: boolean }> = [];
  const settledAll = new Promise<void>((resolve) => {
    for (let k = 0; k < 3; k++) {
      const c = new Commit((ok, _reason, safe) => {
        released.push({ ok, safe });
        if (released.length === 3) resolve();
      });
      e.enqueue(evs(2, k * 2), c, 20);
      c.release();
    }
  });
  await settle();
  assert.equal(signals.length, 1, 'one batch in flight (one worker), two waiting');
  assert.equal(signals[0]!.aborted, false);
  let result: number | undefined;
  const drained = e.drain(100).then((n) => (result = n));
  await advance(t, 99);
  assert.equal(result, undefined, 'still within the grace period');
  await advance(t, 1);
  assert.equal(await drained, 6, 'every record still held is undelivered');
  await settledAll;
  assert.deepEqual(released, [
    { ok: false, safe: false },
    { ok: false, safe: false },
    { ok: false, safe: false },
  ]);
  assert.equal(signals[0]!.aborted, true, 'the request in flight was told to stop');
  assert.deepEqual(e.depth, { records: 0, bytes: 0 });
  // A late answer to the abandoned request commits nothing, and the waiting batches never go out.
  answer();
  await settle();
  assert.equal(signals.length, 1);
  assert.equal(await counter('logwarden_output_proc_records_total'), 0);
  assert.equal(existsSync(file), false, 'undelivered at shutdown is not a dead letter');
  // Chunks arriving after that are not taken.
  const late = await push(e, evs(1));
  assert.equal(late.ok, false);
});

test('a delivered batch is not kept reachable while later batches still wait for a worker', async () => {
  // p-queue 9 keeps started tasks in its array until it compacts; behind a busy output that held
  // up to 100 delivered batches of events in memory.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const waiting: Array<() => void> = [];
  const sink: OutputInstance = {
    send: () => new Promise<void>((r) => waiting.push(r)),
  };
  const { e } = engine(sink, { batchSize: 1, workers: 1, queueRecords: 1_000_000 });
  const refs: Array<WeakRef<object>> = [];
  const done: Array<Promise<unknown>> = [];
  for (let i = 0; i < 60; i++) {
    const ev = evs(1, i);
    refs.push(new WeakRef(ev[0]!.record));
    done.push(push(e, ev));
  }
  const next = async () => {
    while (waiting.length === 0) await new Promise((r) => setImmediate(r));
    waiting.shift()!();
  };
  for (let i = 0; i < 50; i++) await next();
  await new Promise((r) => setTimeout(r, 10));
  gc();
  const alive = refs.slice(0, 49).filter((r) => r.deref() !== undefined).length;
  const queuedKept = refs[59]!.deref() !== undefined;
  for (let i = 50; i < 60; i++) await next();
  await Promise.all(done);
  assert.equal(alive, 0, `${alive} of 49 delivered records still reachable`);
  assert.ok(queuedKept, 'a queued record is kept');
});

/** A sink whose encoder throws (a plain Error, as a bug or a record it cannot take would) on records in `poison`. */
class PoisonSink extends Sink {
  constructor(readonly poison: Set<number>) {
    super();
  }
  override async send(batch: OutgoingBatch): Promise<void> {
    const events = batch.events;
    this.attempts.push(Date.now());
    for (const ev of events) if (this.poison.has(ev.record.i as number)) throw new TypeError(`cannot encode ${ev.record.i as number}`);
    this.batches.push(events);
  }
}

test('records an encoder throws on go alone to the dead letter; the rest of the batch is delivered once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-delivery-'));
  const file = join(dir, 'dead.jsonl');
  const sink = new PoisonSink(new Set([3, 41, 42, 99]));
  const { e, counter } = engine(sink, { deadLetterFile: file, batchWait: 0.05 });
  // Three chunks in one batch of 100; one chunk holds three of the four records at fault.
  const outcomes = await Promise.all([push(e, evs(30)), push(e, evs(40, 30)), push(e, evs(30, 70))]);
  assert.deepEqual(
    outcomes.map((o) => o.ok),
    [true, true, true],
  );
  const delivered = sink.batches
    .flat()
    .map((ev) => ev.record.i as number)
    .sort((a, b) => a - b);
  assert.deepEqual(
    delivered,
    Array.from({ length: 100 }, (_, i) => i).filter((i) => ![3, 41, 42, 99].includes(i)),
  );
  const dead = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { reason: string; record: { i: number }; error: string });
  assert.deepEqual(
    dead.map((d) => d.record.i).sort((a, b) => a - b),
    [3, 41, 42, 99],
  );
  assert.ok(dead.every((d) => d.reason === 'encode' && /cannot encode/.test(d.error)));
  assert.equal(await counter('logwarden_output_dropped_records_total'), 4);
  assert.equal(await counter('logwarden_output_retries_total'), 0, 'not retried as if transient');
  // Halving: far fewer sends than one per record.
  assert.ok(sink.attempts.length <= 4 * 2 * Math.ceil(Math.log2(100)), `${sink.attempts.length} sends`);
  assert.deepEqual(e.depth, { records: 0, bytes: 0 });
});

test('a record that cannot be serialised is dead-lettered with the error instead of it; the writer never throws', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-delivery-'));
  const file = join(dir, 'dead.jsonl');
  const sink = new Sink();
  sink.failures = [new DeliveryError('rejected', false, 'http_400')];
  const { e } = engine(sink, { deadLetterFile: file });
  // A value JSON cannot write (a cycle) and an Invalid Date; a time past what a Date holds.
  const cyclic: Record<string, unknown> = { i: 0 };
  cyclic.self = cyclic;
  const batch: LogEvent[] = [
    { tag: 't', time: new EventTime(1_700_000_000, 0), record: cyclic },
    { tag: 't', time: new EventTime(9e15, 0), record: { i: 1, d: new Date(Number.NaN) } },
  ];
  assert.deepEqual(await push(e, batch), { ok: true, reason: undefined });
  const lines = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.match(String(lines[0]!.record_error), /cannot serialise the record/);
  assert.deepEqual(lines[1]!.record, { i: 1, d: null });
  assert.equal(lines[1]!.time, '9000000000000000.000000000');
});

test('an unwritable dead letter is logged, never thrown', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-delivery-'));
  const sink = new Sink();
  sink.failures = [new DeliveryError('rejected', false, 'http_400')];
  // A directory where the file should be: appendFile fails with EISDIR.
  const { e } = engine(sink, { deadLetterFile: dir });
  assert.deepEqual(await push(e, evs(2)), { ok: false, reason: 'rejected' });
});

test('an output is handed one batch object across retries; accepted survives a RecordsFailed', async () => {
  const seen: Array<{ batch: OutgoingBatch; attempt: number; ids: unknown[]; accepted: string[] }> = [];
  const sink: OutputInstance = {
    async send(batch) {
      seen.push({ batch, attempt: batch.attempt, ids: ids(batch.events), accepted: [...batch.accepted] });
      if (seen.length === 1) {
        batch.accepted.add('a');
        throw new DeliveryError('b down', true, 'http_503');
      }
      if (seen.length === 2) {
        // b takes the batch; records 2 and 3 are still to send (to c).
        batch.accepted.add('b');
        throw new RecordsFailed([], batch.events.slice(2), new DeliveryError('c down', true, 'http_503'));
      }
    },
  };
  const { e } = engine(sink, { retryLimit: 3, base: 0.001, cap: 0.002 });
  assert.deepEqual(await push(e, evs(4)), { ok: true, reason: undefined });
  assert.equal(seen.length, 3);
  assert.ok(
    seen.every((s) => s.batch === seen[0]!.batch),
    'the same object on every attempt',
  );
  assert.deepEqual(
    seen.map(({ attempt, ids, accepted }) => ({ attempt, ids, accepted })),
    [
      { attempt: 0, ids: [0, 1, 2, 3], accepted: [] },
      { attempt: 1, ids: [0, 1, 2, 3], accepted: ['a'] },
      { attempt: 2, ids: [2, 3], accepted: ['a', 'b'] },
    ],
  );
});

test('the halves of a batch split to find the records at fault are new batches, accepted nowhere', async () => {
  const seen: Array<{ batch: OutgoingBatch; ids: unknown[]; accepted: number }> = [];
  const sink: OutputInstance = {
    async send(batch) {
      seen.push({ batch, ids: ids(batch.events), accepted: batch.accepted.size });
      batch.accepted.add('a');
      if (batch.events.some((ev) => ev.record.i === 1)) throw new EncodeError('cannot encode record 1');
    },
  };
  const { e } = engine(sink);
  assert.deepEqual(await push(e, evs(4)), { ok: true, reason: undefined });
  assert.deepEqual(
    seen.map((s) => s.ids),
    [[0, 1, 2, 3], [0, 1], [2, 3], [0], [1]],
  );
  assert.equal(new Set(seen.map((s) => s.batch)).size, 5, 'each half is a batch of its own');
  assert.ok(seen.every((s) => s.accepted === 0));
});

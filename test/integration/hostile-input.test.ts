/**
 * Hostile input against a real `logwarden run` child process: records that cannot be decoded,
 * evaluated or serialised, sent to the forward, http and audit-webhook inputs. For each case: the
 * process stays up, a bystander is served within a second (a forward connection that stays open,
 * and a new HTTP request), what was acked is delivered exactly once, and the case shows as one
 * log line and one metric. Then the filesystem buffer: chunks that a previous run left and that
 * would break the start (a FIFO named like a chunk, a body nested past any accepted record, a
 * record an output cannot write) are skipped, quarantined or dead-lettered, and restarts succeed.
 * Last, in process: a filter and an output encoder that throw.
 * Figures (RSS, time per case) are printed as `# hostile figures`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import { encodeChunk } from '../../src/core/storage/chunk-file.js';
import { EventTime } from '../../src/core/event.js';
import type { FilterPlugin, OutputPlugin } from '../../src/core/plugin.js';
import { Commit } from '../../src/core/commit.js';
import { ChunkRefused } from '../../src/core/router.js';
import { LogwardenProcess, writeConfig, type LogLine } from '../support/fault.js';
import { RawClient, WireTime, pack } from '../support/forward-client.js';
import { freePort, tempDir } from '../support/harness.js';
import { repoRoot } from '../support/paths.js';
import { events, startPipeline } from '../support/output-pipeline.js';
import { deliveryOptions } from '../../src/core/common-options.js';

const now = () => Math.floor(Date.now() / 1000);
/** A msgpack timestamp (ext type -1) of one byte: msgpackr decodes it to an Invalid Date. */
const BAD_TIMESTAMP = Buffer.from([0xd4, 0xff, 0x00]);
/** A msgpack timestamp of 8 bytes whose nanoseconds field holds 2^30-1. */
const BAD_NANOSECONDS = Buffer.from([0xd7, 0xff, 0xff, 0xff, 0xff, 0xfc, 0x65, 0x53, 0xf1, 0x00]);
/** `n` nested arrays around a nil. */
const deep = (n: number) => Buffer.concat([Buffer.alloc(n, 0x91), Buffer.from([0xc0])]);
/** A map of one key whose value is the given msgpack bytes. */
const map1 = (key: string, value: Buffer) => Buffer.concat([Buffer.from([0x81]), pack(key), value]);
/** A PackedForward / Forward entry [time, record] with the record as bytes. */
const entry = (record: Buffer) => Buffer.concat([Buffer.from([0x92]), pack(new WireTime(now(), 0)), record]);
const bin = (b: Buffer) => {
  const h = Buffer.alloc(5);
  h[0] = 0xc6;
  h.writeUInt32BE(b.length, 1);
  return Buffer.concat([h, b]);
};

const figures: Array<Record<string, unknown>> = [];

interface Env {
  dir: string;
  out: string;
  p: LogwardenProcess;
  bystander: RawClient;
  acked: Set<number>;
  seq: number;
  chunks: number;
}

let env: Env;

before(async () => {
  const dir = tempDir('logwarden-hostile-');
  const out = join(dir, 'out');
  mkdirSync(out);
  const config = writeConfig(
    dir,
    `service:
  log_level: info
  http_server: on
  http_listen: 127.0.0.1
  http_port: 0
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: 0
    - name: http
      listen: 127.0.0.1
      port: 0
    - name: k8s_audit_webhook
      listen: 127.0.0.1
      port: 0
      tag: by.audit
  outputs:
    # Bystanders: acked as soon as written.
    - name: file
      match: 'by.*'
      path: ${out}
      format: json_lines
      dead_letter_file: ${join(dir, 'dead-by.jsonl')}
    # A record next to others in one batch (batch_wait 1 s gathers them).
    - name: file
      match: 'mix.*'
      path: ${out}
      format: json_lines
      batch_wait: 1
      dead_letter_file: ${join(dir, 'dead-mix.jsonl')}
    # The same without a dead letter: the record at fault is dropped with a log line and a metric.
    - name: file
      match: 'drop.*'
      path: ${out}
      format: json_lines
      batch_wait: 1
`,
  );
  const p = await LogwardenProcess.start(config);
  const bystander = await RawClient.connect(p.port('forward.0'));
  env = { dir, out, p, bystander, acked: new Set(), seq: 0, chunks: 0 };
});

after(async () => {
  env?.bystander.close();
  await env?.p.stop();
  console.log(`# hostile figures ${JSON.stringify(figures)}`);
});

/** One record from the open bystander connection and one new HTTP request; both must be answered within a second. */
async function bystanders(): Promise<{ forward_ms: number; http_ms: number }> {
  const seq = ++env.seq;
  const chunk = `by-${++env.chunks}`;
  const t0 = Date.now();
  const before = env.bystander.replies.length;
  await env.bystander.write(pack(['by.fwd', [[new WireTime(now(), 0), { seq }]], { chunk }]));
  await env.bystander.until(() => env.bystander.replies.length > before, 1000, 'the bystander ack');
  const forward_ms = Date.now() - t0;
  assert.deepEqual(env.bystander.replies.at(-1), { ack: chunk });
  env.acked.add(seq);
  const t1 = Date.now();
  const hseq = ++env.seq;
  const res = await fetch(`http://${env.p.inputs['http.0']}/by.http`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ seq: hseq }),
    signal: AbortSignal.timeout(1000),
  });
  assert.equal(res.status, 201);
  env.acked.add(hseq);
  return { forward_ms, http_ms: Date.now() - t1 };
}

const problems = (from: number) => env.p.logs.slice(from).filter((l: LogLine) => (l.level ?? 0) >= 40);

/**
 * Runs one hostile case: `send` delivers it and resolves once it was answered. Asserts one warning
 * or error line matching `line`, the metric `metric` up by one, the process alive, bystanders served.
 */
async function hostile(name: string, metric: { name: string; labels: Record<string, string> }, line: RegExp, send: () => Promise<void>): Promise<void> {
  const m0 = await env.p.metric(metric.name, metric.labels);
  const l0 = env.p.logs.length;
  const rss0 = env.p.rss();
  const t0 = Date.now();
  await send();
  // The log line may follow the answer by a moment.
  await env.p.waitLog((l) => env.p.logs.indexOf(l) >= l0 && line.test(String(l.msg)), `the log line for ${name}`, 5000);
  const handled_ms = Date.now() - t0;
  const served = await bystanders();
  assert.equal(env.p.proc.exitCode, null, `${name}: the process exited`);
  assert.equal((await env.p.metric(metric.name, metric.labels)) - m0, 1, `${name}: ${metric.name} ${JSON.stringify(metric.labels)}`);
  const lines = problems(l0);
  assert.equal(lines.length, 1, `${name}: one log line, got ${JSON.stringify(lines)}`);
  figures.push({ case: name, handled_ms, ...served, rss_mib: Math.round(env.p.rss() / 2 ** 20), rss_before_mib: Math.round(rss0 / 2 ** 20) });
}

/** Sends raw bytes on a new forward connection and waits until the server closes it. */
async function forwardRefused(frame: Buffer): Promise<void> {
  const c = await RawClient.connect(env.p.port('forward.0'));
  await c.write(frame);
  await c.until(() => c.closed, 5000, 'the server to close the connection');
  assert.deepEqual(c.replies, [], 'no ack for a refused frame');
}

async function post(port: string, path: string, type: string, body: Buffer | string, status: number): Promise<string> {
  const res = await fetch(`http://${port}${path}`, { method: 'POST', headers: { 'content-type': type }, body, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  assert.equal(res.status, status, text);
  return text;
}

const inputError = (reason: string, name = 'forward.0') => ({ name: 'logwarden_input_errors_total', labels: { name, reason } });

test('forward Message mode: a timestamp ext of a wrong length is refused at the input', async () => {
  const frame = Buffer.concat([Buffer.from([0x94]), pack('by.hostile'), pack(new WireTime(now(), 0)), map1('t', BAD_TIMESTAMP), pack({ chunk: 'h1' })]);
  await hostile('forward message, timestamp ext of 1 byte', inputError('bad_ext'), /closing connection: refused message: msgpack timestamp extension of 1 bytes/, () => forwardRefused(frame));
});

test('forward Forward mode: one record with a bad timestamp next to innocent ones refuses the frame', async () => {
  const frame = Buffer.concat([Buffer.from([0x93]), pack('by.hostile'), Buffer.from([0x93]), entry(pack({ ok: 1 })), entry(map1('t', BAD_NANOSECONDS)), entry(pack({ ok: 2 })), pack({ chunk: 'h2' })]);
  await hostile(
    'forward mode, timestamp (8 bytes) with 2^30-1 ns in the 2nd of 3 records',
    inputError('bad_ext'),
    /closing connection: refused message: msgpack timestamp with nanoseconds past 999999999/,
    () => forwardRefused(frame),
  );
});

test('forward: a reserved extension type (-2) in a record is refused', async () => {
  const frame = Buffer.concat([Buffer.from([0x93]), pack('by.hostile'), Buffer.from([0x91]), entry(map1('x', Buffer.from([0xd4, 0xfe, 0x01]))), pack({ chunk: 'h3' })]);
  await hostile('forward mode, ext type -2', inputError('bad_ext'), /closing connection: refused message: reserved msgpack extension type -2/, () => forwardRefused(frame));
});

test('forward PackedForward: an entry nested 100,000 levels deep is refused at the input', async () => {
  const entries = Buffer.concat([entry(pack({ ok: 1 })), entry(map1('deep', deep(100_000)))]);
  const frame = Buffer.concat([Buffer.from([0x93]), pack('by.hostile'), bin(entries), pack({ chunk: 'h4' })]);
  await hostile('packed forward, 100,000 nested arrays in an entry (100 KB)', inputError('too_deep'), /refused PackedForward entry: nested deeper than 256 levels/, () => forwardRefused(frame));
});

test('forward CompressedPackedForward: the same entry gzipped is refused at the input', async () => {
  const entries = Buffer.concat([entry(pack({ ok: 1 })), entry(map1('deep', deep(100_000)))]);
  const frame = Buffer.concat([Buffer.from([0x93]), pack('by.hostile'), bin(gzipSync(entries)), pack({ chunk: 'h5', compressed: 'gzip' })]);
  await hostile('compressed packed forward, 100,000 nested arrays', inputError('too_deep'), /refused CompressedPackedForward entry: nested deeper than 256 levels/, () => forwardRefused(frame));
});

test('forward PackedForward: an entry at the nesting limit is accepted and delivered', async () => {
  // 256 levels counted from the entry: the entry array, the record map, 254 arrays (one more is
  // refused: test/unit/forward/protocol-limits.test.ts; here it would repeat the line above, and
  // repeats within 10 s are summarized).
  const ok = entry(map1('deep', deep(254)));
  const c = await RawClient.connect(env.p.port('forward.0'));
  await c.write(Buffer.concat([Buffer.from([0x93]), pack('by.limit'), bin(ok), pack({ chunk: 'lim' })]));
  await c.until(() => c.replies.length > 0, 5000, 'the ack');
  assert.deepEqual(c.replies, [{ ack: 'lim' }]);
  c.close();
});

test('forward Message mode: a time of 1e300 seconds is refused', async () => {
  const frame = Buffer.concat([Buffer.from([0x94]), pack('by.hostile'), pack(1e300), pack({ a: 1 }), pack({ chunk: 'h7' })]);
  await hostile('forward message, time 1e300 (float64)', inputError('bad_time'), /invalid event time/, () => forwardRefused(frame));
});

test('http: the 17-byte msgpack request with a bad timestamp is refused with 400', async () => {
  // {"time": <timestamp ext of 1 byte>} and {"abcde": 1}: 17 bytes.
  const body = Buffer.concat([map1('time', BAD_TIMESTAMP), pack({ abcde: 1 })]);
  assert.equal(body.length, 17);
  await hostile('http msgpack, 17 bytes with a timestamp ext of 1 byte', inputError('bad_ext', 'http.0'), /request refused: refused msgpack/, async () => {
    const text = await post(env.p.inputs['http.0']!, '/by.hostile', 'application/msgpack', body, 400);
    assert.match(text, /msgpack timestamp extension of 1 bytes/);
  });
});

test('http: msgpack and JSON bodies nested 100,000 levels are refused with 400', async () => {
  await hostile('http msgpack, 100,000 nested arrays', inputError('too_deep', 'http.0'), /request refused: refused msgpack/, async () => {
    await post(env.p.inputs['http.0']!, '/by.hostile', 'application/msgpack', map1('deep', deep(100_000)), 400);
  });
  const json = `{"deep":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
  await hostile('http JSON, 100,000 nested arrays (200 KB)', inputError('too_deep', 'http.0'), /nested deeper than 256 levels/, async () => {
    await post(env.p.inputs['http.0']!, '/by.hostile', 'application/json', json, 400);
  });
});

test('k8s_audit_webhook: an Event whose requestObject nests 10,000 arrays is refused with 400', async () => {
  const event = `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":"a1","stage":"ResponseComplete","verb":"create","requestObject":${'['.repeat(10_000)}${']'.repeat(10_000)}}]}`;
  await hostile('audit webhook, requestObject with 10,000 nested arrays (20 KB)', inputError('too_deep', 'k8s_audit_webhook.0'), /nested deeper than 256 levels/, async () => {
    await post(env.p.inputs['k8s_audit_webhook.0']!, '/k8s-audit', 'application/json', event, 400);
  });
});

/**
 * A 300-byte tag next to 20 innocent records from another connection in one batch of the file
 * output: the record with the long tag fails alone (ENAMETOOLONG), the 20 are written once, and
 * both senders are acked.
 */
async function longTagInBatch(prefix: 'mix' | 'drop'): Promise<void> {
  const port = env.p.port('forward.0');
  const innocent = await RawClient.connect(port);
  const evil = await RawClient.connect(port);
  const records = Array.from({ length: 20 }, (_, i) => [new WireTime(now(), i), { n: i }]);
  await innocent.write(pack([`${prefix}.ok`, records.slice(0, 10), { chunk: 'i1' }]));
  await evil.write(pack([`${prefix}.${'x'.repeat(296)}`, [[new WireTime(now(), 0), { evil: true }]], { chunk: 'e1' }]));
  await innocent.write(pack([`${prefix}.ok`, records.slice(10), { chunk: 'i2' }]));
  await innocent.until(() => innocent.replies.length === 2, 5000, 'both innocent acks');
  await evil.until(() => evil.replies.length === 1, 5000, 'the ack of the dead-lettered record');
  assert.deepEqual(innocent.replies, [{ ack: 'i1' }, { ack: 'i2' }]);
  assert.deepEqual(evil.replies, [{ ack: 'e1' }]);
  assert.equal(innocent.closed, false);
  innocent.close();
  evil.close();
  const lines = readFileSync(join(env.out, `${prefix}.ok`), 'utf8')
    .trim()
    .split('\n');
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { n: number }).n),
    Array.from({ length: 20 }, (_, i) => i),
    'each innocent record once',
  );
}

test('file output: a 300-byte tag fails alone (dead letter); its batch-mates are written once', async () => {
  await hostile(
    'forward, 300-byte tag → file output (ENAMETOOLONG), dead letter',
    { name: 'logwarden_output_errors_total', labels: { name: 'file.1', reason: 'fs_enametoolong' } },
    /written to the dead letter/,
    () => longTagInBatch('mix'),
  );
  const dead = readFileSync(join(env.dir, 'dead-mix.jsonl'), 'utf8').trim().split('\n');
  assert.equal(dead.length, 1);
  const d = JSON.parse(dead[0]!) as { reason: string; tag: string; record: unknown };
  assert.equal(d.reason, 'fs_enametoolong');
  assert.equal(d.tag.length, 300);
  assert.deepEqual(d.record, { evil: true });
  assert.equal(await env.p.metric('logwarden_output_retries_total', { name: 'file.1' }), 0, 'not retried as if transient');
});

test('file output without a dead letter: the record is dropped with a log line and a metric; the rest written once', async () => {
  await hostile(
    'forward, 300-byte tag → file output without dead letter',
    { name: 'logwarden_output_dropped_records_total', labels: { name: 'file.2', reason: 'fs_enametoolong' } },
    /cannot be delivered by this output: dropped/,
    () => longTagInBatch('drop'),
  );
});

test('every acked bystander record is in the output exactly once', async () => {
  env.bystander.close();
  await env.p.stop();
  assert.equal(await env.p.exited, 0);
  const seen = new Map<number, number>();
  for (const f of ['by.fwd', 'by.http']) {
    for (const l of readFileSync(join(env.out, f), 'utf8').trim().split('\n')) {
      const s = (JSON.parse(l) as { seq: number }).seq;
      seen.set(s, (seen.get(s) ?? 0) + 1);
    }
  }
  for (const s of env.acked) assert.equal(seen.get(s), 1, `record ${s}`);
  assert.equal(seen.size, env.acked.size);
  // Nothing hostile got through to any output.
  assert.deepEqual(readdirSync(env.out).sort(), ['by.fwd', 'by.http', 'by.limit', 'drop.ok', 'mix.ok']);
});

/** A chunk file as the buffer writes it, with `body` spliced in for the one record (for bytes no encoder writes). */
function chunkFile(input: string, output: string, tag: string, record: Buffer | Record<string, unknown>): Buffer {
  const marker = '__RECORD_PLACEHOLDER__';
  const events = [{ tag, time: EventTime.now(), record: Buffer.isBuffer(record) ? { [marker]: 1 } : record }];
  const { head, body } = encodeChunk({ input, outputs: [output], records: 1, created: Date.now() }, [{ tag, outputs: [0], events }], false);
  if (!Buffer.isBuffer(record)) return Buffer.concat([head, body]);
  const placeholder = pack({ [marker]: 1 });
  const at = body.indexOf(placeholder);
  const spliced = Buffer.concat([body.subarray(0, at), record, body.subarray(at + placeholder.length)]);
  head.writeUInt32BE(spliced.length, 12);
  return Buffer.concat([head, spliced]);
}

test('filesystem buffer: a FIFO, a too-deep chunk and a chunk with a record no output can write never stop the start', async () => {
  const dir = tempDir('logwarden-hostile-fs-');
  const storage = join(dir, 'buffer');
  const out = join(dir, 'out');
  mkdirSync(out);
  const chunks = join(storage, 'in');
  mkdirSync(chunks, { recursive: true });
  const ms = Date.now() - 10_000;
  const name = (i: number) => `${String(ms + i).padStart(14, '0')}-0000001-00000000.lwc`;
  execFileSync('mkfifo', [join(chunks, name(0))]);
  writeFileSync(join(chunks, name(1)), chunkFile('in', 'file.0', 'fs.deep', map1('deep', deep(100_000))));
  // Stored by an earlier version that accepted it: the timestamp decodes as its bytes now.
  writeFileSync(join(chunks, name(2)), chunkFile('in', 'file.0', 'fs.ok', Buffer.concat([Buffer.from([0x82]), pack('n'), pack(1), pack('t'), BAD_TIMESTAMP])));
  writeFileSync(join(chunks, name(3)), chunkFile('in', 'file.0', `fs.${'y'.repeat(297)}`, { poison: true }));
  writeFileSync(join(chunks, name(4)), chunkFile('in', 'file.0', 'fs.ok', { n: 2 }));
  const config = writeConfig(
    dir,
    `service:
  log_level: info
  http_server: on
  http_listen: 127.0.0.1
  http_port: 0
  storage.path: ${storage}
pipeline:
  inputs:
    - name: forward
      alias: in
      listen: 127.0.0.1
      port: 0
      storage.type: filesystem
  outputs:
    - name: file
      match: 'fs.*'
      path: ${out}
      format: json_lines
      batch_wait: 1
`,
  );
  const starts: number[] = [];
  let t0 = Date.now();
  let p = await LogwardenProcess.start(config, 15_000);
  starts.push(Date.now() - t0);
  try {
    assert.equal(await p.metric('logwarden_storage_skipped_files_total', { reason: 'not_a_file' }), 1);
    assert.ok(p.logs.some((l) => l.msg === 'filesystem buffer: not a chunk file, skipped' && String(l.err).includes('is a FIFO')));
    assert.equal(await p.metric('logwarden_storage_quarantined_chunks_total', { reason: 'too_deep' }), 1);
    assert.ok(existsSync(join(storage, 'quarantine', `in-${name(1)}`)));
    await p.waitLog((l) => l.msg === 'record cannot be delivered by this output: written to the dead letter', 'the dead letter of the replayed record', 5000);
    // The chunks that can be delivered are; the buffer empties but for the FIFO.
    const deadline = Date.now() + 5000;
    while (readdirSync(chunks).some((n) => n !== name(0)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(readdirSync(chunks), [name(0)]);
    const lines = readFileSync(join(out, 'fs.ok'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { n: number; t?: unknown });
    assert.deepEqual(
      lines.map((l) => l.n),
      [1, 2],
    );
    assert.equal(typeof lines[0]!.t, 'string', 'the invalid timestamp is written as text, never as an Invalid Date');
    const dead = readFileSync(join(storage, 'dead-letter', 'file.0.jsonl'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(dead.length, 1);
    assert.deepEqual((JSON.parse(dead[0]!) as { record: unknown }).record, { poison: true });
    // A hostile record sent now is refused, so nothing of it is stored.
    const c = await RawClient.connect(p.port('in'));
    await c.write(Buffer.concat([Buffer.from([0x94]), pack('fs.new'), pack(new WireTime(now(), 0)), map1('t', BAD_TIMESTAMP), pack({ chunk: 'x' })]));
    await c.until(() => c.closed, 5000, 'the close');
    assert.deepEqual(readdirSync(chunks), [name(0)]);
    // With filesystem storage too, a 300-byte tag in one batch with 20 records of another
    // connection fails alone: the 20 reach the file once, never the dead letter.
    const innocent = await RawClient.connect(p.port('in'));
    const evil = await RawClient.connect(p.port('in'));
    await innocent.write(pack(['fs.live', Array.from({ length: 10 }, (_, i) => [new WireTime(now(), i), { n: i }]), { chunk: 'i1' }]));
    await evil.write(pack([`fs.${'z'.repeat(297)}`, [[new WireTime(now(), 0), { evil: true }]], { chunk: 'e1' }]));
    await innocent.write(pack(['fs.live', Array.from({ length: 10 }, (_, i) => [new WireTime(now(), 10 + i), { n: 10 + i }]), { chunk: 'i2' }]));
    await innocent.until(() => innocent.replies.length === 2, 5000, 'the acks (stored)');
    await evil.until(() => evil.replies.length === 1, 5000, 'the ack (stored)');
    innocent.close();
    evil.close();
    await p.waitLog((l) => l.msg === 'record cannot be delivered by this output: written to the dead letter' && p.logs.filter((x) => x.msg === l.msg).length === 2, 'the second dead letter', 5000);
    const deadline2 = Date.now() + 5000;
    while (readdirSync(chunks).length > 1 && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(readdirSync(chunks), [name(0)], 'every chunk committed and deleted');
    const live = readFileSync(join(out, 'fs.live'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { n: number }).n);
    assert.deepEqual(
      live,
      Array.from({ length: 20 }, (_, i) => i),
    );
    const deadNow = readFileSync(join(storage, 'dead-letter', 'file.0.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { record: unknown });
    assert.deepEqual(
      deadNow.map((d) => d.record),
      [{ poison: true }, { evil: true }],
    );
  } finally {
    await p.stop();
  }
  assert.equal(await p.exited, 0);
  // Restarts: nothing left to trip on (the FIFO is still skipped).
  for (let i = 0; i < 2; i++) {
    t0 = Date.now();
    p = await LogwardenProcess.start(config, 15_000);
    starts.push(Date.now() - t0);
    try {
      assert.equal(await p.metric('logwarden_storage_quarantined_chunks_total'), 0);
      assert.equal(await p.metric('logwarden_storage_skipped_files_total', { reason: 'not_a_file' }), 1);
    } finally {
      await p.stop();
    }
    assert.equal(await p.exited, 0);
  }
  assert.deepEqual(
    readFileSync(join(out, 'fs.ok'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { n: number }).n),
    [1, 2],
    'nothing delivered twice',
  );
  assert.equal(readFileSync(join(out, 'fs.live'), 'utf8').trim().split('\n').length, 20, 'nothing delivered twice');
  figures.push({ case: 'filesystem buffer: FIFO + too-deep chunk + poison-tag chunk', start_ms: starts });
});

/** A filter that throws on records holding `boom`, and an output whose encoder throws on `poison`. */
const throwingFilter: FilterPlugin<Record<string, never>> = {
  kind: 'filter',
  name: 'throwing',
  description: 'throws on records with boom',
  options: {},
  create: () => ({
    filter(events) {
      for (const ev of events) if (ev.record.boom) throw new RangeError('filter exploded');
      return events;
    },
  }),
};

const sent: string[][] = [];
const throwingEncoder: OutputPlugin<Record<string, never>> = {
  kind: 'output',
  name: 'throwing_encoder',
  description: 'encodes records, throwing on poison',
  options: { ...deliveryOptions({ batch_wait: 0.2 }) },
  create: () => ({
    async send(batch) {
      // Encoded first, sent after: a throw while encoding sends nothing.
      const lines = batch.events.map((ev) => {
        if (ev.record.poison) throw new TypeError('encoder exploded');
        return JSON.stringify(ev.record);
      });
      sent.push(lines);
    },
  }),
};

test('a throwing filter fails its chunk only; a throwing output encoder fails its record only', async () => {
  const crashes: unknown[] = [];
  const onCrash = (e: unknown) => crashes.push(e);
  process.on('unhandledRejection', onCrash);
  process.on('uncaughtException', onCrash);
  // The engine's batch timer does not hold the process (sockets do, in logwarden run).
  const alive = setInterval(() => undefined, 1000);
  const dir = tempDir('logwarden-throwing-');
  const r = await startPipeline(
    `pipeline:
  filters:
    - name: throwing
      match: '*'
  outputs:
    - name: throwing_encoder
      match: '*'
      dead_letter_file: ${join(dir, 'dead.jsonl')}
`,
    [throwingFilter, throwingEncoder],
    dir,
  );
  try {
    // As the inputs do: a chunk the filters refuse fails its commit.
    const boomCommit = new Commit();
    assert.throws(() => r.pipeline.ingest(events('t', [{ n: 1 }, { boom: true }]), boomCommit, 100), ChunkRefused);
    const chunks = [
      r.ingest(
        events(
          't',
          Array.from({ length: 7 }, (_, i) => ({ n: 10 + i })),
        ),
      ),
      r.ingest(events('t', [{ n: 20 }, { poison: true }, { n: 21 }])),
      r.ingest(
        events(
          't',
          Array.from({ length: 10 }, (_, i) => ({ n: 30 + i })),
        ),
      ),
    ];
    assert.deepEqual(
      (await Promise.all(chunks)).map((c) => c.ok),
      [true, true, true],
      'every chunk of the batch is committed, the poisoned one too (its record is in the dead letter)',
    );
    assert.ok(!sent.flat().some((l) => l.includes('"n":1}')), 'nothing of the refused chunk reached the output');
    const delivered = sent
      .flat()
      .map((l) => (JSON.parse(l) as { n: number }).n)
      .sort((a, b) => a - b);
    assert.deepEqual(delivered, [...Array.from({ length: 7 }, (_, i) => 10 + i), 20, 21, ...Array.from({ length: 10 }, (_, i) => 30 + i)], 'each once');
    const dead = readFileSync(join(dir, 'dead.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { reason: string; record: unknown });
    assert.deepEqual(
      dead.map((d) => [d.reason, d.record]),
      [['encode', { poison: true }]],
    );
    assert.equal(await r.counter('logwarden_filter_errors_total'), 1);
    assert.equal(await r.counter('logwarden_output_dropped_records_total', { reason: 'encode' }), 1);
    assert.ok(r.logs.some((l) => l.msg === 'filter failed on a chunk; the chunk is refused'));
    assert.equal(r.logs.filter((l) => l.msg === 'record cannot be delivered by this output: written to the dead letter').length, 1);
    assert.deepEqual(crashes, []);
  } finally {
    await r.stop();
    clearInterval(alive);
    process.off('unhandledRejection', onCrash);
    process.off('uncaughtException', onCrash);
  }
});

test('the shipped default pipeline: the deep audit Event, the bad timestamp and a deep JSON line are refused or kept as text; it stays up', async () => {
  const dir = tempDir('logwarden-hostile-default-');
  mkdirSync(join(dir, 'pipelines'));
  writeFileSync(join(dir, 'pipelines', 'default.yaml'), readFileSync(join(repoRoot, 'pipelines', 'default.yaml')));
  for (const d of ['examples', 'rules']) symlinkSync(join(repoRoot, d), join(dir, d));
  const ports = { HTTP_PORT: await freePort(), FORWARD_PORT: await freePort(), WEBHOOK_PORT: await freePort() };
  const saved = { ...process.env };
  Object.assign(process.env, Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])));
  delete process.env.LOKI_URL;
  delete process.env.ALERTMANAGER_URL;
  let p: LogwardenProcess;
  try {
    p = await LogwardenProcess.start(join(dir, 'pipelines', 'default.yaml'));
  } finally {
    process.env = saved;
  }
  const webhook = `127.0.0.1:${ports.WEBHOOK_PORT}`;
  const event = (requestObject: string, id: string) =>
    `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"${id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/configmaps","verb":"create","user":{"username":"alice"},"objectRef":{"resource":"configmaps","namespace":"default","name":"c","apiVersion":"v1"},"responseStatus":{"code":201},"requestObject":${requestObject},"requestReceivedTimestamp":"2026-01-01T00:00:00.000000Z","stageTimestamp":"2026-01-01T00:00:00.000000Z"}`;
  const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  const bystander = async (i: number) => {
    const t0 = Date.now();
    await post(webhook, '/k8s-audit', 'application/json', event('{"data":{"k":"v"}}', `ok-${i}`), 200);
    return Date.now() - t0;
  };
  const served: number[] = [];
  try {
    // The 20 KB Event nesting 10,000 arrays: 400, before any filter or the page's store sees it.
    await post(webhook, '/k8s-audit', 'application/json', event(nested(10_000), 'deep'), 400);
    served.push(await bystander(1));
    // Under the limit, through audit_policy, detect, the files and the page's store.
    await post(webhook, '/k8s-audit', 'application/json', event(nested(240), 'deep-240'), 200);
    served.push(await bystander(2));
    // A forward record with the 1-byte timestamp: refused, the connection closed.
    const c = await RawClient.connect(ports.FORWARD_PORT);
    await c.write(Buffer.concat([Buffer.from([0x94]), pack('x'), pack(new WireTime(now(), 0)), map1('t', BAD_TIMESTAMP), pack({ chunk: 'b' })]));
    await c.until(() => c.closed, 5000, 'the close');
    assert.deepEqual(c.replies, []);
    served.push(await bystander(3));
    // A JSON line (audit_policy reads key_name log) nesting 10,000 arrays: not parsed into a value
    // deeper than the inputs accept; the record goes on with the line as text.
    const line = await RawClient.connect(ports.FORWARD_PORT);
    await line.write(pack(['x', [[new WireTime(now(), 0), { log: event(nested(10_000), 'deep-line') }]], { chunk: 'l' }]));
    await line.until(() => line.replies.length === 1, 5000, 'the ack');
    assert.deepEqual(line.replies, [{ ack: 'l' }]);
    line.close();
    served.push(await bystander(4));
    assert.ok(
      served.every((ms) => ms < 1000),
      JSON.stringify(served),
    );
    assert.equal(p.proc.exitCode, null);
    assert.equal(await p.metric('logwarden_input_errors_total', { reason: 'too_deep' }), 1);
    assert.equal(await p.metric('logwarden_input_errors_total', { reason: 'bad_ext' }), 1);
    const kept = readFileSync(join(dir, 'data', 'kube.audit'), 'utf8');
    assert.ok(kept.includes('"auditID":"deep-240"'));
    assert.ok(kept.includes('deep-line'), 'the deep line is kept as text');
    figures.push({ case: 'default pipeline', bystander_ms: served, rss_mib: Math.round(p.rss() / 2 ** 20) });
  } finally {
    await p.stop();
  }
  assert.equal(await p.exited, 0);
});

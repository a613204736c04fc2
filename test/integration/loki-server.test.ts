/**
 * The Loki test server holds to Loki's push API: bodies built here independently of the loki
 * output (protobufjs reflection over push.proto, snappy; raw JSON; gzip) are decoded, validated
 * with Loki 2.8.0's default limits and answers (as seen from the real Loki: test/e2e/loki-real),
 * partially accepted, deduplicated within a head block; the control API scripts failures and
 * delays.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { compressSync } from 'snappy';
import { LokiServer } from '../support/loki-server.js';
import { repoRoot } from '../support/paths.js';

const PushRequest = new protobuf.Root().loadSync(join(repoRoot, 'test', 'support', 'loki-push.proto')).lookupType('logproto.PushRequest');
const nowSec = () => Math.floor(Date.now() / 1000);

let loki: LokiServer;
before(async () => {
  loki = await new LokiServer().start();
});
after(async () => {
  await loki.stop();
});

function protobufBody(streams: Array<{ labels: string; entries: Array<{ sec: number; line: string }> }>): Buffer {
  const msg = PushRequest.fromObject({
    streams: streams.map((s) => ({ labels: s.labels, entries: s.entries.map((e) => ({ timestamp: { seconds: e.sec, nanos: 0 }, line: e.line })) })),
  });
  return compressSync(Buffer.from(PushRequest.encode(msg).finish()));
}

async function post(body: Buffer | string, type: string, extra: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const res = await fetch(`${loki.url}/loki/api/v1/push`, { method: 'POST', body, headers: { 'content-type': type, ...extra } });
  return { status: res.status, text: await res.text() };
}

test('valid protobuf, JSON and gzipped JSON pushes get 204 and are stored', async () => {
  const t = nowSec();
  assert.equal((await post(protobufBody([{ labels: '{job="pb"}', entries: [{ sec: t, line: 'a' }] }]), 'application/x-protobuf')).status, 204);
  const json = JSON.stringify({ streams: [{ stream: { job: 'js' }, values: [[`${t}000000000`, 'b', { trace: 'x' }]] }] });
  assert.equal((await post(json, 'application/json')).status, 204);
  assert.equal((await post(gzipSync(json.replace('"js"', '"gz"')), 'application/json', { 'content-encoding': 'gzip' })).status, 204);
  const byJob = Object.fromEntries(loki.entries().map((e) => [e.labels.job, e]));
  assert.equal(byJob.pb!.line, 'a');
  assert.deepEqual(byJob.js!.meta, { trace: 'x' });
  assert.equal(byJob.gz!.ts, BigInt(t) * 1_000_000_000n);
});

test("invalid labels, missing labels and more than 30 names are 400 with Loki 2.8's messages (the last refusal only)", async () => {
  const t = nowSec();
  let r = await post(protobufBody([{ labels: '{app.name="x"}', entries: [{ sec: t, line: 'a' }] }]), 'application/x-protobuf');
  assert.deepEqual([r.status, r.text], [400, "1:5: parse error: unexpected character inside braces: '.'\n"]);
  r = await post(protobufBody([{ labels: '{}', entries: [{ sec: t, line: 'a' }] }]), 'application/x-protobuf');
  assert.equal(r.text, 'error at least one label pair is required per stream\n');
  const many = `{${Array.from({ length: 31 }, (_, i) => `l${String(i).padStart(2, '0')}="v"`).join(', ')}}`;
  r = await post(protobufBody([{ labels: many, entries: [{ sec: t, line: 'a' }] }]), 'application/x-protobuf');
  assert.equal(r.text, `entry for stream '${many}' has 31 label names; limit 30\n`);
  r = await post(
    JSON.stringify({
      streams: [
        { stream: { 'bad-name': 'x' }, values: [[`${t}000000000`, 'a']] },
        { stream: {}, values: [[`${t}000000000`, 'a']] },
      ],
    }),
    'application/json',
  );
  assert.deepEqual([r.status, r.text], [400, 'error at least one label pair is required per stream\n']);
  const strict = await new LokiServer({ maxLabelNames: 15 }).start();
  try {
    const res = await fetch(`${strict.url}/loki/api/v1/push`, {
      method: 'POST',
      body: protobufBody([{ labels: `{${Array.from({ length: 16 }, (_, i) => `l${i}="v"`).join(', ')}}`, entries: [{ sec: t, line: 'a' }] }]),
      headers: { 'content-type': 'application/x-protobuf' },
    });
    assert.match(await res.text(), /has 16 label names; limit 15/);
  } finally {
    await strict.stop();
  }
});

test('numeric JSON timestamps, corrupt snappy and unparsable JSON are 400', async () => {
  let r = await post(JSON.stringify({ streams: [{ stream: { job: 'n' }, values: [[nowSec() * 1e9, 'a']] }] }), 'application/json');
  assert.equal(r.status, 400);
  assert.match(r.text, /timestamp must be a string/);
  r = await post(Buffer.from('not snappy at all'), 'application/x-protobuf');
  assert.equal(r.status, 400);
  r = await post('{"streams": [', 'application/json');
  assert.equal(r.status, 400);
});

test('timestamps too new or too old are refused; the valid entries of the same push are kept', async () => {
  const t = nowSec();
  const r = await post(
    protobufBody([
      {
        labels: '{job="time"}',
        entries: [
          { sec: t + 3600, line: 'future' },
          { sec: t - 8 * 86400, line: 'ancient' },
          { sec: t, line: 'ok' },
        ],
      },
    ]),
    'application/x-protobuf',
  );
  assert.equal(r.status, 400);
  assert.match(r.text, /^entry for stream '\{job="time"\}' has timestamp too old: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, oldest acceptable timestamp is: /);
  assert.deepEqual(
    loki
      .entries()
      .filter((e) => e.labels.job === 'time')
      .map((e) => e.line),
    ['ok'],
  );
});

test('an identical entry is stored once within the head block, twice once the block was cut; 1h behind its stream is too far behind', async () => {
  const small = await new LokiServer({ blockSize: 10 }).start();
  try {
    const t = nowSec();
    const send = (labels: string, sec: number, line: string) =>
      fetch(`${small.url}/loki/api/v1/push`, { method: 'POST', body: protobufBody([{ labels, entries: [{ sec, line }] }]), headers: { 'content-type': 'application/x-protobuf' } });
    assert.equal((await send('{job="dup"}', t, 'same')).status, 204);
    assert.equal((await send('{job="dup"}', t, 'same')).status, 204);
    assert.equal(small.entries().filter((e) => e.labels.job === 'dup').length, 1);
    assert.equal(small.ignoredDuplicates, 1);
    assert.equal((await send('{job="dup"}', t, 'more than ten bytes')).status, 204);
    assert.equal((await send('{job="dup"}', t, 'same')).status, 204);
    assert.equal(small.entries().filter((e) => e.labels.job === 'dup').length, 3);
    assert.equal(small.duplicates, 1);
    const r = await send('{job="dup"}', t - 7200, 'late');
    assert.equal(r.status, 400);
    assert.match(
      await r.text(),
      /^entry with timestamp \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC ignored, reason: 'entry too far behind, oldest acceptable timestamp is: .*Z' for stream: \{job="dup"\},\nuser 'fake', total ignored: 1 out of 1\n$/,
    );
  } finally {
    await small.stop();
  }
});

test('the control API scripts statuses and delays', async () => {
  const body = protobufBody([{ labels: '{job="ctl"}', entries: [{ sec: nowSec(), line: 'x' }] }]);
  loki.failNext(429, 1, 'Ingestion rate limit exceeded');
  let r = await post(body, 'application/x-protobuf');
  assert.deepEqual([r.status, r.text.trim()], [429, 'Ingestion rate limit exceeded']);
  loki.setDelay(150);
  const t0 = Date.now();
  r = await post(body, 'application/x-protobuf');
  assert.equal(r.status, 204);
  assert.ok(Date.now() - t0 >= 140);
  loki.setDelay(0);
});

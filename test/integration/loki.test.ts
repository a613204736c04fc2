/**
 * The loki output through a real pipeline (loadConfigFile + plan + Pipeline) against the Loki
 * test server over real HTTP: encodings, stream grouping and order, labels, retries and their
 * backoff, 400 vs 429, dead letters, backpressure and shutdown.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ConfigErrors } from '../../src/config/errors.js';
import { EventTime } from '../../src/core/event.js';
import { encode } from '../../src/core/msgpack.js';
import { WireEvent } from '../../src/core/wire-event.js';
import { lokiOutput } from '../../src/outputs/loki/index.js';
import { LokiServer } from '../support/loki-server.js';
import { events, startPipeline, tempDir, type RunningPipeline } from '../support/output-pipeline.js';

/** A few turns of the event loop with its I/O polls (setImmediate stays real when setTimeout is mocked). */
async function ioTurns(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** Waits for `n` answered pushes polling with setImmediate, for tests that mock setTimeout. */
async function pushed(loki: LokiServer, n: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (loki.pushes.length < n) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} pushes; have ${loki.pushes.length}`);
    await ioTurns(1);
  }
}

function pipelineYaml(port: number, extra: Record<string, string | number> = {}, service = ''): string {
  const opts = Object.entries({ batch_wait: '50ms', ...extra })
    .map(([k, v]) => `      ${k}: ${typeof v === 'string' && v.includes(':') ? JSON.stringify(v) : v}`)
    .join('\n');
  return `service:
  log_level: debug
  scheduler.base: 0.05
  scheduler.cap: 0.2
${service}
pipeline:
  outputs:
    - name: loki
      match: '*'
      host: 127.0.0.1
      port: ${port}
${opts}
`;
}

describe('loki output', () => {
  let loki: LokiServer;
  let running: RunningPipeline | undefined;

  before(async () => {
    loki = await new LokiServer().start();
  });
  after(async () => {
    await loki.stop();
  });

  const run = async (extra: Record<string, string | number> = {}, service = '', server = loki) => {
    running = await startPipeline(pipelineYaml(server.port, extra, service), [lokiOutput]);
    return running;
  };
  const done = async () => {
    await running?.stop(2);
    running = undefined;
  };

  test('records still in msgpack bytes (edits pending) give the same streams, labels, lines and metadata', async () => {
    const options = {
      encoding: 'json',
      labels: "job=audit, $level, user=$user['name'], $cluster",
      auto_kubernetes_labels: 'on',
      structured_metadata: '$trace',
      tenant_id_key: "$meta['tenant']",
      remove_keys: 'secret',
    };
    const t0 = EventTime.now();
    const recs = [
      { level: 'info', user: { name: 'alice' }, msg: 'é "q"', trace: 't1', meta: { tenant: 'a' }, secret: 1, kubernetes: { labels: { app: 'x' } } },
      { level: 'warn', user: { name: 'bob', groups: ['g'] }, msg: 'x', trace: 't2', secret: 'no' },
      { level: 'info', n: 2n ** 60n, user: 'not a map', meta: { tenant: 'b' } },
    ];
    const got: unknown[] = [];
    for (const wire of [false, true]) {
      const fresh = await new LokiServer().start();
      try {
        const p = await run(options, '', fresh);
        const evs = recs.map((r, i) => {
          const time = new EventTime(t0.sec, t0.nsec + i);
          if (!wire) return { tag: 'kube.audit', time, record: { ...structuredClone(r), cluster: 'c1' } };
          const e = new WireEvent('kube.audit', time, encode(r));
          e.edit({ op: 'put', key: 'cluster', value: 'c1', move: false });
          return e;
        });
        assert.deepEqual(await p.ingest(evs), { ok: true });
        got.push(['', 'a', 'b'].map((tenant) => fresh.streams(tenant)));
      } finally {
        await done();
        await fresh.stop();
      }
    }
    assert.ok(inspect(got[0], { depth: 9 }).includes('alice'));
    assert.deepEqual(got[1], got[0]);
  });

  for (const enc of [{ encoding: 'protobuf' }, { encoding: 'json' }, { encoding: 'json', compress: 'gzip' }] as Array<Record<string, string>>) {
    test(`${JSON.stringify(enc)}: streams grouped by label set, entries in time order, label keys out of the line`, async () => {
      const fresh = await new LokiServer().start();
      try {
        const p = await run({ ...enc, labels: "job=audit, $level, user=$user['name']" }, '', fresh);
        const t0 = EventTime.now();
        // Out of order on purpose: the output sorts each stream by time.
        const recs = [
          { level: 'info', user: { name: 'alice' }, msg: 'c', i: 2 },
          { level: 'warn', user: { name: 'bob' }, msg: 'x', i: 0 },
          { level: 'info', user: { name: 'alice' }, msg: 'a', i: 0 },
          { level: 'info', user: { name: 'alice' }, msg: 'b', i: 1 },
        ];
        const evs = recs.map((r) => ({ tag: 'kube.audit', time: new EventTime(t0.sec, t0.nsec + r.i), record: r }));
        const outcome = await p.ingest(evs);
        assert.deepEqual(outcome, { ok: true });
        const push = fresh.pushes[0]!;
        assert.equal(push.status, 204);
        assert.equal(push.encoding, enc.encoding);
        assert.equal(push.gzip, enc.compress === 'gzip');
        assert.equal(push.headers['content-type'], enc.encoding === 'protobuf' ? 'application/x-protobuf' : 'application/json');
        const streams = fresh.streams();
        assert.equal(streams.length, 2);
        const alice = streams.find((s) => s.labels.user === 'alice')!;
        assert.deepEqual(alice.labels, { job: 'audit', level: 'info', user: 'alice' });
        assert.deepEqual(
          alice.entries.map((e) => JSON.parse(e.line)),
          // `user=$user['name']` removes only the nested key, as Fluent Bit's accessor removal does.
          [
            { user: {}, msg: 'a', i: 0 },
            { user: {}, msg: 'b', i: 1 },
            { user: {}, msg: 'c', i: 2 },
          ],
        );
        assert.deepEqual(
          alice.entries.map((e) => e.ts),
          [0n, 1n, 2n].map((d) => BigInt(t0.toNanoString()) + d),
        );
        const bob = streams.find((s) => s.labels.user === 'bob')!;
        assert.deepEqual(bob.labels, { job: 'audit', level: 'warn', user: 'bob' });
        assert.deepEqual(JSON.parse(bob.entries[0]!.line), { user: {}, msg: 'x', i: 0 });
        assert.deepEqual(evs[1]!.record, { level: 'warn', user: { name: 'bob' }, msg: 'x', i: 0 }, 'the shared record is not changed');
      } finally {
        await done();
        await fresh.stop();
      }
    });
  }

  test('bytes on the wire: protobuf+snappy and json+gzip are smaller than json', async () => {
    const sizes: Record<string, number> = {};
    for (const enc of [{ encoding: 'protobuf' }, { encoding: 'json' }, { encoding: 'json', compress: 'gzip' }] as Array<Record<string, string>>) {
      const fresh = await new LokiServer().start();
      try {
        const p = await run({ ...enc, labels: 'job=audit, $verb' }, '', fresh);
        const recs = Array.from({ length: 200 }, (_, i) => ({ verb: ['get', 'list', 'create'][i % 3], user: `system:serviceaccount:ns:sa-${i % 7}`, uri: `/api/v1/namespaces/default/pods/p-${i}` }));
        assert.deepEqual(await p.ingest(events('kube.audit', recs)), { ok: true });
        sizes[Object.values(enc).join('+')] = fresh.pushes.reduce((n, x) => n + x.bytes, 0);
        assert.equal(fresh.entries().length, 200);
      } finally {
        await done();
        await fresh.stop();
      }
    }
    assert.ok(sizes.protobuf! < sizes.json! / 2, JSON.stringify(sizes));
    assert.ok(sizes['json+gzip']! < sizes.json! / 2, JSON.stringify(sizes));
  });

  test('batches are cut by batch_size and by batch_wait', async (t) => {
    const fresh = await new LokiServer().start();
    try {
      const p = await run({ batch_size: 3, batch_wait: '300ms', workers: 1, labels: 'job=b' }, '', fresh);
      // setTimeout is mocked from here: the batch_wait timer fires only when the test moves the clock.
      t.mock.timers.enable({ apis: ['setTimeout'] });
      const outcome = p.ingest(
        events(
          't',
          Array.from({ length: 7 }, (_, i) => ({ i })),
        ),
      );
      await pushed(fresh, 2);
      assert.equal(fresh.pushes.length, 2, 'full batches go at once (the clock has not moved)');
      t.mock.timers.tick(299);
      await ioTurns();
      assert.equal(fresh.requests, 2, 'the partial batch waits for batch_wait');
      t.mock.timers.tick(1);
      await pushed(fresh, 3);
      t.mock.timers.reset();
      assert.deepEqual(await outcome, { ok: true });
      assert.deepEqual(
        fresh.pushes.map((x) => x.streams.reduce((n, s) => n + s.entries.length, 0)),
        [3, 3, 1],
      );
    } finally {
      t.mock.timers.reset(); // real timers again for the shutdown, also when an assertion failed
      await done();
      await fresh.stop();
    }
  });

  test('label names are sanitised, at most 15 are sent, and the default job label applies when none is set', async () => {
    const fresh = await new LokiServer().start();
    try {
      const labels = Array.from({ length: 16 }, (_, i) => `l${String(i).padStart(2, '0')}=v`).join(',');
      const p = await run({ labels: `${labels}`, auto_kubernetes_labels: 'on', structured_metadata: '$trace' }, '', fresh);
      const rec = { kubernetes: { labels: { 'app.kubernetes.io/name': 'api', '9lives': 'cat' } }, trace: 'abc' };
      assert.deepEqual(await p.ingest(events('t', [rec])), { ok: true });
      const [st] = fresh.streams();
      assert.equal(Object.keys(st!.labels).length, 15);
      assert.equal(st!.labels.l14, 'v');
      assert.equal(st!.labels.l15, undefined);
      assert.equal(await p.counter('logwarden_loki_labels_dropped_total'), 3);
      assert.deepEqual(st!.entries[0]!.meta, { trace: 'abc' });
      await done();

      const q = await run({ auto_kubernetes_labels: 'on' }, '', fresh);
      assert.deepEqual(await q.ingest(events('t', [rec, { other: 1 }])), { ok: true });
      const keys = fresh.streams().map((s) => s.labels);
      assert.ok(
        keys.some((l) => l.app_kubernetes_io_name === 'api' && l._9lives === 'cat'),
        JSON.stringify(keys),
      );
      assert.ok(
        keys.some((l) => JSON.stringify(l) === '{"job":"logwarden"}'),
        JSON.stringify(keys),
      );
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('an invalid static label name is a load-time error with file:line:col', async () => {
    await assert.rejects(startPipeline(pipelineYaml(1, { labels: 'job=a, app.name=x' }), [lokiOutput]), (e: unknown) => {
      assert.ok(e instanceof ConfigErrors);
      assert.match(e.message, /pipeline\.yaml:\d+:\d+.*invalid label name 'app\.name'/s);
      return true;
    });
  });

  test('5xx and 429 are retried with backoff, then delivered', async () => {
    const fresh = await new LokiServer().start();
    try {
      const p = await run({ retry_limit: 3, labels: 'job=r' }, '', fresh);
      fresh.failNext(503, 1);
      fresh.failNext(429, 1, 'Ingestion rate limit exceeded');
      const times: number[] = [];
      fresh.onRequest = () => times.push(Date.now());
      assert.deepEqual(await p.ingest(events('t', [{ a: 1 }, { a: 2 }])), { ok: true });
      assert.deepEqual(
        fresh.pushes.map((x) => x.status),
        [503, 429, 204],
      );
      // scheduler.base 0.05 s: each retry waits at least base.
      assert.ok(times[1]! - times[0]! >= 45 && times[2]! - times[1]! >= 45, JSON.stringify(times));
      assert.equal(await p.counter('logwarden_output_retries_total'), 2);
      assert.equal(await p.counter('logwarden_output_errors_total', { reason: 'http_429' }), 1);
      assert.equal(fresh.entries().length, 2);
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('429 and 503 Retry-After (seconds or an HTTP-date) is waited for, up to scheduler.cap', async () => {
    const fresh = await new LokiServer().start();
    try {
      // scheduler.base 0.05 s: without Retry-After the first retries wait 50-200 ms.
      const p = await run({ retry_limit: 3, labels: 'job=ra', 'scheduler.cap': 1.5 }, '', fresh);
      fresh.failNext(429, 1, 'Ingestion rate limit exceeded', { 'retry-after': '1' });
      fresh.failNext(503, 1, 'at least 1 live replicas required', { 'retry-after': new Date(Date.now() + 3_600_000).toUTCString() });
      const times: number[] = [];
      fresh.onRequest = () => times.push(Date.now());
      assert.deepEqual(await p.ingest(events('t', [{ a: 1 }])), { ok: true });
      assert.deepEqual(
        fresh.pushes.map((x) => x.status),
        [429, 503, 204],
      );
      const [first, second] = [times[1]! - times[0]!, times[2]! - times[1]!];
      assert.ok(first >= 990 && first < 1400, `waited ${first} ms for Retry-After: 1`);
      assert.ok(second >= 1490 && second < 1900, `waited ${second} ms for a date an hour ahead with scheduler.cap 1.5`);
      const retries = p.logs.filter((l) => l.msg === 'batch failed, will retry');
      const asked = retries.map((l) => Number(l.retry_after_s));
      assert.equal(asked[0], 1);
      assert.ok(asked[1]! > 3590 && asked[1]! <= 3600, `Retry-After an hour ahead read as ${asked[1]} s`);
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('400 is not retried: logged with Loki message, counted, dead-lettered, and the chunk is committed', async () => {
    const fresh = await new LokiServer({ maxLineSize: 256 * 1024 }).start();
    try {
      const dir = tempDir();
      const dead = join(dir, 'dead.jsonl');
      const p = await run({ retry_limit: 5, labels: 'job=d', dead_letter_file: dead, max_line_size: 0 }, '', fresh);
      // A line over Loki's 256KB limit: the real validation answers 400.
      const big = 'x'.repeat(300 * 1024);
      const outcome = await p.ingest(events('kube.audit', [{ msg: big }, { msg: 'small' }]));
      assert.deepEqual(outcome, { ok: true });
      assert.deepEqual(
        fresh.pushes.map((x) => x.status),
        [400],
      );
      assert.match(fresh.pushes[0]!.error!, /Max entry size '262144' bytes exceeded/);
      assert.equal(await p.counter('logwarden_output_retries_total'), 0);
      assert.equal(await p.counter('logwarden_output_dropped_records_total', { reason: 'http_400' }), 2);
      const lines = readFileSync(dead, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.equal(lines.length, 2);
      assert.equal(lines[0].reason, 'http_400');
      assert.equal(lines[0].tag, 'kube.audit');
      assert.match(lines[0].error, /HTTP 400: Max entry size/);
      assert.equal(lines[1].record.msg, 'small');
      const logged = p.logs.find((l) => l.msg === 'batch rejected, not retryable');
      assert.ok(logged && String(logged.err).includes('Max entry size'), 'the 400 is logged with Loki message');
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('a connection closed in the middle of the answer is retried; the entries Loki stored meanwhile are not lost', async () => {
    const fresh = await new LokiServer().start();
    try {
      const p = await run({ retry_limit: 3, labels: 'job=cut' }, '', fresh);
      fresh.closeMidResponse(1);
      assert.deepEqual(await p.ingest(events('t', [{ a: 1 }, { a: 2 }])), { ok: true });
      assert.equal(await p.counter('logwarden_output_retries_total'), 1);
      assert.equal(await p.counter('logwarden_output_errors_total', { reason: 'connection' }), 1);
      // Stored by the first push, ignored as identical (same head block) on the retry.
      assert.equal(fresh.entries().length, 2);
      assert.equal(fresh.ignoredDuplicates, 2);
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('retries exhausted: dead letter, commit failed (the sender must resend)', async () => {
    const fresh = await new LokiServer().start();
    try {
      const dir = tempDir();
      const dead = join(dir, 'dead.jsonl');
      const p = await run({ retry_limit: 2, labels: 'job=x', dead_letter_file: dead }, '', fresh);
      fresh.failAlways(500, 'internal error');
      const outcome = await p.ingest(events('t', [{ a: 1 }]));
      assert.equal(outcome.ok, false);
      assert.match(outcome.reason!, /HTTP 500/);
      assert.deepEqual(
        fresh.pushes.map((x) => x.status),
        [500, 500, 500],
      );
      assert.equal(await p.counter('logwarden_output_retries_failed_total'), 1);
      const [line] = readFileSync(dead, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.equal(line.reason, 'http_500');
      assert.equal(line.attempts, 3);
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('out-of-order entries are refused by a Loki with unordered_writes off; the output keeps per-stream order', async () => {
    const strict = await new LokiServer({ unorderedWrites: false }).start();
    try {
      const p = await run({ labels: 'job=o, $k', workers: 1, dead_letter_file: join(tempDir(), 'dead.jsonl') }, '', strict);
      const t0 = EventTime.now();
      const evs = [3, 1, 2, 0].map((i) => ({ tag: 't', time: new EventTime(t0.sec + i, 0), record: { k: i % 2 ? 'odd' : 'even', i } }));
      assert.deepEqual(await p.ingest(evs), { ok: true });
      assert.equal(strict.entries().length, 4);
      // An entry older than its stream's newest is a 400 from such a Loki.
      const late = { tag: 't', time: new EventTime(t0.sec - 10, 0), record: { k: 'odd', i: -1 } };
      assert.deepEqual(await p.ingest([late]), { ok: true });
      assert.equal(strict.pushes.at(-1)!.status, 400);
      assert.match(strict.pushes.at(-1)!.error!, /entry out of order/);
    } finally {
      await done();
      await strict.stop();
    }
  });

  test('max_streams: label sets beyond the limit keep only static labels, values stay in the line, warned once', async () => {
    const fresh = await new LokiServer().start();
    try {
      const p = await run({ labels: 'job=c, $user', max_streams: 2 }, '', fresh);
      const recs = ['u1', 'u2', 'u3', 'u4', 'u1'].map((user, i) => ({ user, i }));
      assert.deepEqual(await p.ingest(events('t', recs)), { ok: true });
      const streams = fresh.streams();
      assert.deepEqual(
        streams.map((s) => s.labels).sort((a, b) => (a.user ?? '').localeCompare(b.user ?? '')),
        [{ job: 'c' }, { job: 'c', user: 'u1' }, { job: 'c', user: 'u2' }],
      );
      const overflow = streams.find((s) => !s.labels.user)!;
      assert.deepEqual(
        overflow.entries.map((e) => JSON.parse(e.line)),
        [
          { user: 'u3', i: 2 },
          { user: 'u4', i: 3 },
        ],
      );
      assert.equal(await p.counter('logwarden_loki_stream_overflow_records_total'), 2);
      assert.deepEqual(await p.ingest(events('t', [{ user: 'u5', i: 5 }])), { ok: true });
      assert.equal(p.logs.filter((l) => String(l.msg).startsWith('too many distinct label sets')).length, 1);
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('a retry after a partial failure resends only the tenants Loki did not accept', async () => {
    const fresh = await new LokiServer().start();
    try {
      const p = await run({ labels: 'job=t', tenant_id: 'default', tenant_id_key: "$meta['tenant']", retry_limit: 3 }, '', fresh);
      fresh.failTenant('b', 503, 2);
      assert.deepEqual(await p.ingest(events('t', [{ meta: { tenant: 'a' }, n: 1 }, { n: 2 }, { meta: { tenant: 'b' }, n: 3 }])), { ok: true });
      assert.deepEqual(fresh.pushes.map((x) => `${x.tenant}:${x.status}`).sort(), ['a:204', 'b:204', 'b:503', 'b:503', 'default:204']);
      assert.equal(fresh.entries('a').length, 1);
      assert.equal(fresh.entries('b').length, 1);
      assert.equal(fresh.ignoredDuplicates + fresh.duplicates, 0);
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('a tenant that refuses its part for good: only its records go to the dead letter; the others are stored once, retried alone', async () => {
    const fresh = await new LokiServer().start();
    try {
      const dead = join(tempDir(), 'dead.jsonl');
      const p = await run({ labels: 'job=t', tenant_id: 'default', tenant_id_key: "$meta['tenant']", retry_limit: 3, dead_letter_file: dead }, '', fresh);
      fresh.failTenant('a', 400);
      fresh.failTenant('b', 503, 1);
      const outcome = await p.ingest(events('t', [{ meta: { tenant: 'a' }, n: 1 }, { n: 2 }, { meta: { tenant: 'b' }, n: 3 }, { meta: { tenant: 'a' }, n: 4 }]));
      // Everything but tenant a's records was stored, and those are in the dead letter: committed.
      assert.deepEqual(outcome, { ok: true });
      assert.deepEqual(fresh.pushes.map((x) => `${x.tenant}:${x.status}`).sort(), ['a:400', 'b:204', 'b:503', 'default:204']);
      assert.equal(fresh.entries('default').length, 1);
      assert.equal(fresh.entries('b').length, 1);
      assert.equal(fresh.entries('a').length, 0);
      const lines = readFileSync(dead, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.deepEqual(
        lines.map((l) => [l.reason, l.record.n]),
        [
          ['http_400', 1],
          ['http_400', 4],
        ],
      );
      assert.equal(await p.counter('logwarden_output_dropped_records_total'), 2);
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('header: extra headers on every push, X-Scope-OrgID as the default tenant; conflicts are load-time errors', async () => {
    const fresh = await new LokiServer().start();
    try {
      const p = await run({ labels: 'job=h', header: 'X-Scope-OrgID team-h', tenant_id_key: 'tenant' }, '', fresh);
      assert.deepEqual(await p.ingest(events('t', [{ n: 1 }, { tenant: 'other', n: 2 }])), { ok: true });
      assert.deepEqual(fresh.pushes.map((x) => x.tenant).sort(), ['other', 'team-h']);
      await done();
      const yaml = pipelineYaml(fresh.port, { labels: 'job=h2' }).replace(
        '      labels: job=h2',
        "      labels: job=h2\n      header:\n        - X-Request-Source audit pipeline\n        - 'User-Agent: custom'",
      );
      running = await startPipeline(yaml, [lokiOutput]);
      assert.deepEqual(await running.ingest(events('t', [{ n: 3 }])), { ok: true });
      const last = fresh.pushes.at(-1)!;
      assert.equal(last.headers['x-request-source'], 'audit pipeline');
      assert.equal(last.headers['user-agent'], 'custom');
      assert.equal(last.headers['content-type'], 'application/x-protobuf');
    } finally {
      await done();
      await fresh.stop();
    }
    for (const [extra, msg] of [
      [{ header: 'X-Scope-OrgID a', tenant_id: 'b' }, /header: set tenant_id or header X-Scope-OrgID, not both/],
      [{ header: 'Content-Type text/plain' }, /header: header Content-Type is set by the output itself/],
      [{ header: 'X-Lonely' }, /expected 'Name value'/],
    ] as Array<[Record<string, string>, RegExp]>) {
      await assert.rejects(startPipeline(pipelineYaml(1, extra), [lokiOutput]), (e: unknown) => {
        assert.ok(e instanceof ConfigErrors);
        assert.match(e.message, /pipeline\.yaml:\d+:\d+/);
        assert.match(e.message, msg);
        return true;
      });
    }
  });

  test('label_map_path: a JSON file next to the configuration maps record keys to labels; a bad file is a load-time error', async () => {
    const fresh = await new LokiServer().start();
    try {
      const dir = tempDir();
      writeFileSync(join(dir, 'labelmap.json'), JSON.stringify({ kubernetes: { pod_name: 'pod', labels: { team: 'team' } }, verb: 'verb' }));
      running = await startPipeline(pipelineYaml(fresh.port, { labels: 'job=lm', label_map_path: 'labelmap.json' }), [lokiOutput], dir);
      const rec = { kubernetes: { pod_name: 'api-1', labels: { team: 'core', other: 'x' } }, verb: 'get', msg: 'm' };
      assert.deepEqual(await running.ingest(events('t', [rec])), { ok: true });
      const [st] = fresh.streams();
      assert.deepEqual(st!.labels, { job: 'lm', pod: 'api-1', team: 'core', verb: 'get' });
      assert.deepEqual(JSON.parse(st!.entries[0]!.line), { kubernetes: { labels: { other: 'x' } }, msg: 'm' });
      await done();
      for (const [text, msg] of [
        [undefined, /label_map_path: cannot read .*missing\.json: ENOENT/],
        ['{"a": ', /not valid JSON/],
        ['{"a": {"b": "bad-name"}}', /at a\.b: invalid label name 'bad-name'/],
        ['{"job": "job"}', /label 'job' is declared twice/],
      ] as Array<[string | undefined, RegExp]>) {
        const d = tempDir();
        if (text !== undefined) writeFileSync(join(d, 'missing.json'), text);
        await assert.rejects(startPipeline(pipelineYaml(1, { labels: 'job=lm', label_map_path: 'missing.json' }), [lokiOutput], d), (e: unknown) => {
          assert.ok(e instanceof ConfigErrors);
          assert.match(e.message, /pipeline\.yaml:\d+:\d+/);
          assert.match(e.message, msg);
          return true;
        });
      }
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('list values become labels joined with commas; unrenderable values and reserved Kubernetes label names are left out, counted and warned about once', async () => {
    const fresh = await new LokiServer().start();
    try {
      const p = await run({ labels: 'job=l, $tags, $deep', auto_kubernetes_labels: 'on' }, '', fresh);
      const rec = JSON.parse('{"tags":["k8s","T1059","container"],"kubernetes":{"labels":{"__proto__":"x","app":"api"}}}') as Record<string, unknown>;
      const evs = [rec, { ...rec, deep: [['x']] }, { ...rec, deep: [{ k: 'v' }] }];
      assert.deepEqual(await p.ingest(events('t', evs)), { ok: true });
      assert.deepEqual(
        fresh.streams().map((s) => s.labels),
        [{ app: 'api', job: 'l', tags: 'T1059,container,k8s' }],
      );
      assert.equal(fresh.entries().length, 3);
      assert.equal(await p.counter('logwarden_loki_labels_skipped_total', { reason: 'reserved' }), 3);
      assert.equal(await p.counter('logwarden_loki_labels_skipped_total', { reason: 'unrenderable' }), 2);
      const warnings = p.logs.filter((l) => l.level === 40).map((l) => [l.label, l.key ?? l.value_type]);
      assert.deepEqual(warnings, [
        ['__proto__', '__proto__'],
        ['deep', 'list of maps or lists'],
      ]);
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('structured metadata refused in JSON (Loki 2.x): the push is sent again without it, keys kept in the line, warned once', async () => {
    const old = await new LokiServer({ structuredMetadata: false }).start();
    try {
      const p = await run({ labels: 'job=sm', encoding: 'json', structured_metadata: '$trace', retry_limit: 'no_retries' }, '', old);
      assert.deepEqual(await p.ingest(events('t', [{ trace: 'abc', msg: 'a' }])), { ok: true });
      assert.deepEqual(await p.ingest(events('t', [{ trace: 'def', msg: 'b' }])), { ok: true });
      assert.deepEqual(
        old.pushes.map((x) => x.status),
        [400, 204, 204],
      );
      assert.deepEqual(
        old.entries().map((e) => JSON.parse(e.line)),
        [
          { trace: 'abc', msg: 'a' },
          { trace: 'def', msg: 'b' },
        ],
      );
      assert.equal(p.logs.filter((l) => String(l.msg).startsWith('Loki refused structured metadata')).length, 1);
      assert.equal(await p.counter('logwarden_output_errors_total'), 0);
    } finally {
      await done();
      await old.stop();
    }
  });

  test('basic auth and bearer token headers', async () => {
    const basic = await new LokiServer({ authorization: `Basic ${Buffer.from('u:p').toString('base64')}` }).start();
    try {
      const p = await run({ labels: 'job=a', http_user: 'u', http_passwd: 'p' }, '', basic);
      assert.deepEqual(await p.ingest(events('t', [{ a: 1 }])), { ok: true });
      await done();
      const q = await run({ labels: 'job=a', bearer_token: 'tok', dead_letter_file: join(tempDir(), 'd.jsonl') }, '', basic);
      assert.deepEqual(await q.ingest(events('t', [{ a: 2 }])), { ok: true });
      assert.deepEqual(
        basic.pushes.map((x) => x.status),
        [204, 401],
      );
    } finally {
      await done();
      await basic.stop();
    }
  });

  test('backpressure: a slow or down Loki fills the bounded queue, inputs are paused, then resumed', async () => {
    const fresh = await new LokiServer().start();
    const port = fresh.port;
    try {
      const p = await run({ labels: 'job=bp', batch_size: 5, workers: 1, queue_max_records: 10, retry_limit: 'no_limits' }, '', fresh);
      await fresh.stop();
      const pauses: string[] = [];
      p.pipeline.flow.on('pause', (who: string) => pauses.push(`pause ${who}`));
      p.pipeline.flow.on('resume', () => pauses.push('resume'));
      const outcomes = [
        p.ingest(
          events(
            't',
            Array.from({ length: 6 }, (_, i) => ({ i })),
          ),
        ),
        p.ingest(
          events(
            't',
            Array.from({ length: 6 }, (_, i) => ({ i: i + 6 })),
          ),
        ),
      ];
      assert.equal(p.pipeline.flow.paused, true);
      assert.deepEqual(pauses, ['pause loki.0']);
      assert.equal(p.pipeline.status().outputs['loki.0']!.records, 12);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(p.pipeline.flow.paused, true, 'still paused while Loki is down');
      await fresh.start(port);
      assert.deepEqual(await Promise.all(outcomes), [{ ok: true }, { ok: true }]);
      assert.equal(p.pipeline.flow.paused, false);
      assert.deepEqual(pauses, ['pause loki.0', 'resume']);
      assert.equal(fresh.entries().length, 12);
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('stop drains what is queued before closing', async () => {
    const fresh = await new LokiServer().start();
    try {
      const p = await run({ labels: 'job=s', batch_wait: '10s' }, '', fresh);
      const outcome = p.ingest(events('t', [{ a: 1 }, { a: 2 }]));
      assert.equal(fresh.pushes.length, 0);
      assert.equal(await p.stop(2), true);
      running = undefined;
      assert.deepEqual(await outcome, { ok: true });
      assert.equal(fresh.entries().length, 2);
    } finally {
      await done();
      await fresh.stop();
    }
  });

  test('no dead_letter_file and no storage.path: nothing is written', async () => {
    const fresh = await new LokiServer().start();
    try {
      const p = await run({ labels: 'job=n', retry_limit: 'no_retries' }, '', fresh);
      fresh.failNext(400, 1, 'bad');
      const outcome = await p.ingest(events('t', [{ a: 1 }]));
      // Rejected and not on disk: the commit fails so the sender keeps the data.
      assert.equal(outcome.ok, false);
      assert.ok(!existsSync(join(p.dir, 'dead-letter')));
    } finally {
      await done();
      await fresh.stop();
    }
  });
});

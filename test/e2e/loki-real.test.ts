/**
 * The loki output against the real Grafana Loki 2.8.0: a real pipeline (loadConfigFile + plan +
 * Pipeline) pushes, and what Loki stored is read back with query_range. Two Lokis are started once
 * for the file: a single-tenant one with `max_line_size: 256KB` (Loki 3's default; 2.8 has no
 * limit) and a multi-tenant one (`auth_enabled: true`) whose tenant `slow` has a low ingestion
 * rate and whose head blocks are cut after 1 KiB, so that a resent push would be stored twice. The
 * last tests send the same raw requests to the real Loki and to the Loki test server and compare
 * the answers.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventTime } from '../../src/core/event.js';
import { lokiOutput } from '../../src/outputs/loki/index.js';
import { encodeBody, type Stream } from '../../src/outputs/loki/encode.js';
import { LokiServer } from '../support/loki-server.js';
import { RealLoki, type LokiAnswer } from '../support/loki-real.js';
import { events, startPipeline, tempDir, type RunningPipeline } from '../support/output-pipeline.js';

const LINE_LIMIT = 256 * 1024;

function pipelineYaml(port: number, opts: Record<string, unknown>): string {
  const lines = Object.entries({ batch_wait: '50ms', ...opts }).map(([k, v]) =>
    Array.isArray(v) ? `      ${k}:\n${v.map((x) => `        - ${JSON.stringify(x)}`).join('\n')}` : `      ${k}: ${JSON.stringify(v)}`,
  );
  return `service:
  log_level: debug
  scheduler.base: 0.2
  scheduler.cap: 1
pipeline:
  outputs:
    - name: loki
      match: '*'
      host: 127.0.0.1
      port: ${port}
${lines.join('\n')}
`;
}

const ns = (t: EventTime) => BigInt(t.toNanoString());

describe('loki output against the real Loki 2.8.0', { timeout: 240_000 }, () => {
  let plain: RealLoki;
  let tenants: RealLoki;
  const running: RunningPipeline[] = [];

  before(async () => {
    [plain, tenants] = await Promise.all([
      RealLoki.start({ limits: { max_line_size: '256KB' } }),
      RealLoki.start({
        authEnabled: true,
        overrides: { slow: { ingestion_rate_mb: 0.05, ingestion_burst_size_mb: 0.06 } },
        ingester: { chunk_block_size: 1024 },
      }),
    ]);
  });
  after(async () => {
    for (const p of running.splice(0)) await p.stop(2);
    await Promise.all([plain?.stop(), tenants?.stop()]);
  });

  const run = async (loki: RealLoki, opts: Record<string, unknown>, dir?: string) => {
    const p = await startPipeline(pipelineYaml(loki.port, opts), [lokiOutput], dir);
    running.push(p);
    return p;
  };

  for (const enc of [{ encoding: 'protobuf' }, { encoding: 'json' }, { encoding: 'json', compress: 'gzip' }]) {
    const job = `enc_${Object.values(enc).join('_')}`;
    test(`${JSON.stringify(enc)}: lines, nanosecond times and labels read back as sent`, async () => {
      const p = await run(plain, { ...enc, labels: `job=${job}, $level, user=$user['name']` });
      const t0 = EventTime.now();
      // Out of order within the batch; the output sorts each stream.
      const recs = [
        { level: 'info', user: { name: 'alice' }, msg: 'c "quoted" \\ é ✓', i: 2 },
        { level: 'warn', user: { name: 'bob' }, msg: 'x', i: 0 },
        { level: 'info', user: { name: 'alice' }, msg: 'a\nnewline', i: 0 },
        { level: 'info', user: { name: 'alice' }, msg: 'b', i: 1 },
      ];
      const evs = recs.map((r) => ({ tag: 'kube.audit', time: new EventTime(t0.sec, t0.nsec + r.i * 1000 + 7), record: r }));
      assert.deepEqual(await p.ingest(evs), { ok: true });
      const got = await plain.waitForEntries(`{job="${job}"}`, 4);
      const alice = got.filter((e) => e.labels.user === 'alice');
      assert.deepEqual(
        alice.map((e) => e.labels),
        Array(3).fill({ job, level: 'info', user: 'alice' }),
      );
      assert.deepEqual(
        alice.map((e) => JSON.parse(e.line)),
        [0, 1, 2].map((i) => ({ user: {}, msg: recs.find((r) => r.user.name === 'alice' && r.i === i)!.msg, i })),
      );
      assert.deepEqual(
        alice.map((e) => e.ts),
        [0n, 1n, 2n].map((i) => ns(t0) + i * 1000n + 7n),
      );
      const bob = got.filter((e) => e.labels.user === 'bob');
      assert.deepEqual(
        bob.map((e) => [e.labels, JSON.parse(e.line)]),
        [
          [
            { job, level: 'warn', user: 'bob' },
            { user: {}, msg: 'x', i: 0 },
          ],
        ],
      );
      assert.equal(got.length, 4);
    });
  }

  test('labels: sanitised names, list values joined, binary as hex, reserved and unrenderable ones left out with a warning, label_map_path, 15 at most', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'labelmap.json'), JSON.stringify({ kubernetes: { container_name: 'container', pod_name: 'pod', labels: { team: 'team' } } }));
    const p = await run(plain, { labels: 'job=labels, $tags, $deep, value=$v, $bin', auto_kubernetes_labels: true, label_map_path: 'labelmap.json' }, dir);
    // Parsed from text, as wire data is: "__proto__" is then an own key.
    const rec = JSON.parse(
      '{"kubernetes":{"container_name":"api","pod_name":"api-7d9","labels":{"app.kubernetes.io/name":"api","9lives":"cat","team":"core",' +
        '"__name__":"x","__proto__":"polluted","pod-template-hash":"7d9"}},"tags":["mitre_execution","container","T1059"],' +
        '"v":"quote \\" backslash \\\\ newline \\n unicode é ✓","msg":"m"}',
    );
    assert.equal(Object.keys(rec.kubernetes.labels).includes('__proto__'), true);
    const withBinary = { ...rec, bin: new Uint8Array([1, 0xab]), deep: [{ k: 'v' }], msg: 'binary' };
    assert.deepEqual(await p.ingest(events('t', [rec, withBinary])), { ok: true });
    const got = await plain.waitForEntries('{job="labels"}', 2);
    assert.equal(got.length, 2);
    assert.deepEqual(got[0]!.labels, {
      job: 'labels',
      tags: 'T1059,container,mitre_execution',
      value: 'quote " backslash \\ newline \n unicode é ✓',
      container: 'api',
      pod: 'api-7d9',
      team: 'core',
      app_kubernetes_io_name: 'api',
      _9lives: 'cat',
      pod_template_hash: '7d9',
    });
    // Binary data is hex, as in Fluent Bit 5; a list of maps cannot be a label (warned, counted).
    assert.deepEqual(got[1]!.labels, { ...got[0]!.labels, bin: '01ab' });
    // Keys that feed labels leave the line (label_map_path's $kubernetes['labels']['team'] too);
    // auto_kubernetes_labels keeps the map, as Fluent Bit does.
    const { team: _team, ...others } = rec.kubernetes.labels;
    assert.deepEqual(JSON.parse(got[0]!.line), { kubernetes: { labels: others }, msg: 'm' });
    const warned = p.logs.filter((l) => l.level === 40).map((l) => `${l.label}: ${String(l.msg).split(':')[0]}`);
    assert.deepEqual(warned.sort(), ['__name__: Kubernetes label left out', '__proto__: Kubernetes label left out', 'deep: label left out'].sort());
    assert.equal(await p.counter('logwarden_loki_labels_skipped_total', { reason: 'reserved' }), 4);
    assert.equal(await p.counter('logwarden_loki_labels_skipped_total', { reason: 'unrenderable' }), 1);

    // More than 15 label names: the first 15 are sent, Loki (limit 30 in 2.8) takes them.
    const q = await run(plain, { labels: Array.from({ length: 16 }, (_, i) => `l${String(i).padStart(2, '0')}=v`).join(',') + ',job=many_labels' });
    assert.deepEqual(await q.ingest(events('t', [{ a: 1 }])), { ok: true });
    const [m] = await plain.waitForEntries('{l00="v"}', 1);
    assert.equal(Object.keys(m!.labels).length, 15);
    assert.equal(await q.counter('logwarden_loki_labels_dropped_total'), 2);
  });

  test('many streams: 300 label sets in one batch and again in a second', async () => {
    const p = await run(plain, { labels: 'job=streams, $pod', batch_size: 5000 });
    const t0 = EventTime.now();
    const recs = Array.from({ length: 600 }, (_, i) => ({ pod: `pod-${i % 300}`, i }));
    assert.deepEqual(await p.ingest(events('t', recs.slice(0, 300), t0)), { ok: true });
    assert.deepEqual(await p.ingest(events('t', recs.slice(300), new EventTime(t0.sec + 1, t0.nsec))), { ok: true });
    const got = await plain.waitForEntries('{job="streams"}', 600);
    assert.equal(got.length, 600);
    assert.equal(new Set(got.map((e) => e.labels.pod)).size, 300);
    assert.deepEqual(new Set(got.map((e) => JSON.parse(e.line).i)).size, 600);
    for (const e of got) assert.equal(`pod-${JSON.parse(e.line).i % 300}`, e.labels.pod);
  });

  test('out-of-order entries: 30 min behind the newest are stored; 2 h behind, Loki answers 400 and the batch is dead-lettered', async () => {
    const dir = tempDir();
    const dead = join(dir, 'dead.jsonl');
    const p = await run(plain, { labels: 'job=ooo', workers: 1, dead_letter_file: dead });
    const now = EventTime.now();
    const at = (s: number, i: number) => ({ tag: 't', time: new EventTime(now.sec + s, 0), record: { i } });
    assert.deepEqual(await p.ingest([at(0, 0), at(-5, 1), at(-2, 2)]), { ok: true });
    assert.deepEqual(await p.ingest([at(-1800, 3), at(-60, 4)]), { ok: true });
    const got = await plain.waitForEntries('{job="ooo"}', 5);
    assert.deepEqual(
      got.map((e) => JSON.parse(e.line).i),
      [3, 4, 1, 2, 0],
    );
    // Loki 2.8 refuses entries more than 1 h behind the stream's newest.
    assert.deepEqual(await p.ingest([at(-7200, 5), at(-10, 6)]), { ok: true });
    const after = await plain.waitForEntries('{job="ooo"}', 6);
    assert.deepEqual(
      after.map((e) => JSON.parse(e.line).i),
      [3, 4, 6, 1, 2, 0],
      'the valid entry of the refused push is stored',
    );
    const err = p.logs.find((l) => l.msg === 'batch rejected, not retryable');
    assert.match(
      String(err?.err),
      /HTTP 400: entry with timestamp .* ignored, reason: 'entry too far behind, oldest acceptable timestamp is: .*' for stream: \{job="ooo"\},\nuser 'fake', total ignored: 1 out of 2/,
    );
    const lines = readFileSync(dead, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => [l.reason, l.record.i]),
      [
        ['http_400', 5],
        ['http_400', 6],
      ],
    );
  });

  test("a line over Loki's max_line_size: truncated to max_line_size by default; with max_line_size 0 Loki answers 400, stores the rest, the batch is dead-lettered", async () => {
    const p = await run(plain, { labels: 'job=long', drop_single_key: 'raw' });
    const t0 = EventTime.now();
    assert.deepEqual(await p.ingest(events('t', [{ log: 'before' }, { log: 'é'.repeat(150 * 1024) }, { log: 'after' }], t0)), { ok: true });
    const got = await plain.waitForEntries('{job="long"}', 3);
    assert.deepEqual(
      got.map((e) => Buffer.byteLength(e.line)),
      [6, LINE_LIMIT, 5],
    );
    assert.equal(await p.counter('logwarden_loki_truncated_lines_total'), 1);

    const dead = join(tempDir(), 'dead.jsonl');
    const q = await run(plain, { labels: 'job=long0', drop_single_key: 'raw', max_line_size: 0, dead_letter_file: dead, retry_limit: 3 });
    assert.deepEqual(await q.ingest(events('t', [{ log: 'before' }, { log: 'x'.repeat(LINE_LIMIT + 1) }, { log: 'after' }])), { ok: true });
    const stored = await plain.waitForEntries('{job="long0"}', 2);
    assert.deepEqual(
      stored.map((e) => e.line),
      ['before', 'after'],
    );
    assert.equal(await q.counter('logwarden_output_retries_total'), 0);
    const err = q.logs.find((l) => l.msg === 'batch rejected, not retryable');
    assert.match(String(err?.err), /HTTP 400: Max entry size '262144' bytes exceeded for stream '\{job="long0"\}' while adding an entry with length '262145' bytes/);
    assert.equal(readFileSync(dead, 'utf8').trim().split('\n').length, 3);
  });

  test("Loki's ingestion rate limit: real 429s, retried until everything is delivered once; the other tenant of the batch is not resent", async () => {
    const p = await run(tenants, {
      labels: 'job=rate',
      tenant_id_key: 'tenant',
      batch_size: 100,
      workers: 1,
      retry_limit: 'no_limits',
    });
    const pad = 'r'.repeat(400);
    const recs = Array.from({ length: 600 }, (_, i) => ({ tenant: i % 2 ? 'slow' : 'fast', i, pad }));
    const start = EventTime.now();
    const outcomes: Array<Promise<{ ok: boolean }>> = [];
    for (let k = 0; k < 6; k++) outcomes.push(p.ingest(events('t', recs.slice(k * 100, k * 100 + 100), new EventTime(start.sec, start.nsec + k * 1000))));
    assert.deepEqual(await Promise.all(outcomes), Array(6).fill({ ok: true }));
    assert.ok((await p.counter('logwarden_output_errors_total', { reason: 'http_429' })) > 0, 'Loki answered 429');
    const warn = p.logs.find((l) => l.msg === 'batch failed, will retry');
    assert.match(String(warn?.err), /HTTP 429: Ingestion rate limit exceeded for user slow \(limit: 52428 bytes\/sec\)/);
    for (const tenant of ['slow', 'fast']) {
      const got = await tenants.entries('{job="rate"}', { tenant });
      const ids = got.map((e) => JSON.parse(e.line).i as number);
      assert.equal(ids.length, 300, `${tenant}: every entry once (${ids.length})`);
      assert.equal(new Set(ids).size, 300);
      assert.ok(ids.every((i) => (i % 2 ? 'slow' : 'fast') === tenant));
    }
  });

  test('multi-tenancy: tenant_id, tenant_id_key and header X-Scope-OrgID; each tenant sees only its own; no tenant is a 401', async () => {
    const p = await run(tenants, { labels: 'job=mt', tenant_id: 'default', tenant_id_key: "$meta['tenant']" });
    assert.deepEqual(await p.ingest(events('t', [{ meta: { tenant: 'team-a' }, n: 1 }, { n: 2 }, { meta: { tenant: 'team-b' }, n: 3 }, { meta: { tenant: 'team-a' }, n: 4 }])), { ok: true });
    const read = async (tenant: string) => (await tenants.waitForEntries('{job="mt"}', 1, { tenant })).map((e) => JSON.parse(e.line).n);
    assert.deepEqual(await read('team-a'), [1, 4]);
    assert.deepEqual(await read('team-b'), [3]);
    assert.deepEqual(await read('default'), [2]);

    const h = await run(tenants, { labels: 'job=mt_header', header: ['X-Scope-OrgID team-h', 'X-Extra value with spaces'] });
    assert.deepEqual(await h.ingest(events('t', [{ n: 5 }])), { ok: true });
    assert.deepEqual(
      (await tenants.waitForEntries('{job="mt_header"}', 1, { tenant: 'team-h' })).map((e) => JSON.parse(e.line).n),
      [5],
    );
    assert.deepEqual(await tenants.entries('{job="mt_header"}', { tenant: 'team-a' }), []);

    const dead = join(tempDir(), 'dead.jsonl');
    const none = await run(tenants, { labels: 'job=mt_none', dead_letter_file: dead, retry_limit: 3 });
    assert.deepEqual(await none.ingest(events('t', [{ n: 6 }])), { ok: true });
    assert.match(String(none.logs.find((l) => l.msg === 'batch rejected, not retryable')?.err), /HTTP 401: no org id/);
    assert.equal(await none.counter('logwarden_output_retries_total'), 0);
  });

  test('structured metadata: Loki 2.8 ignores it in protobuf and refuses it in JSON; the JSON push is sent again without it', async () => {
    const p = await run(plain, { labels: 'job=sm_pb', structured_metadata: 'trace=$trace' });
    assert.deepEqual(await p.ingest(events('t', [{ trace: 'abc', msg: 'a' }])), { ok: true });
    assert.deepEqual(
      (await plain.waitForEntries('{job="sm_pb"}', 1)).map((e) => JSON.parse(e.line)),
      [{ msg: 'a' }],
    );

    const q = await run(plain, { labels: 'job=sm_json', encoding: 'json', structured_metadata: 'trace=$trace', retry_limit: 'no_retries' });
    assert.deepEqual(await q.ingest(events('t', [{ trace: 'abc', msg: 'a' }])), { ok: true });
    assert.deepEqual(await q.ingest(events('t', [{ trace: 'def', msg: 'b' }])), { ok: true });
    assert.deepEqual(
      (await plain.waitForEntries('{job="sm_json"}', 2)).map((e) => JSON.parse(e.line)),
      [
        { trace: 'abc', msg: 'a' },
        { trace: 'def', msg: 'b' },
      ],
    );
    assert.equal(q.logs.filter((l) => String(l.msg).startsWith('Loki refused structured metadata')).length, 1);
  });

  describe('the Loki test server answers as the real Loki does', () => {
    let server: LokiServer;
    let authServer: LokiServer;
    let oldServer: LokiServer;
    before(async () => {
      server = await new LokiServer({ maxLineSize: LINE_LIMIT }).start();
      authServer = await new LokiServer({ authEnabled: true }).start();
      oldServer = await new LokiServer({ structuredMetadata: false }).start();
    });
    after(async () => {
      await server.stop();
      await authServer.stop();
      await oldServer.stop();
    });

    const json = (streams: unknown) => ({ body: JSON.stringify({ streams }), headers: { 'content-type': 'application/json' } });
    const protobuf = async (streams: Stream[]) => encodeBody(streams, 'protobuf', false);
    const answer = async (url: string, req: { body: Uint8Array | string; headers: Record<string, string> }, path = '/loki/api/v1/push', method = 'POST'): Promise<LokiAnswer> => {
      const { request } = await import('undici');
      const res = await request(`${url}${path}`, { method: method as 'POST', body: method === 'POST' ? req.body : null, headers: req.headers });
      const body = await res.body.text();
      const headers: Record<string, string> = {};
      for (const k of ['content-type', 'x-content-type-options']) if (typeof res.headers[k] === 'string') headers[k] = res.headers[k] as string;
      return { status: res.statusCode, body, headers };
    };
    const same = async (what: string, req: { body: Uint8Array | string; headers: Record<string, string> }, real = plain, fake = () => server, path?: string, method?: string) => {
      const [a, b] = [await answer(real.url, req, path, method), await answer(fake().url, req, path, method)];
      assert.deepEqual(b, a, `${what}: test server vs real Loki`);
      return a;
    };
    const now = () => EventTime.now();
    const entry = (t: EventTime, line: string) => ({ time: t, line, meta: undefined });

    test('accepted pushes: 204 without a body, for protobuf, json and gzip json, empty lines included', async () => {
      const t = now();
      const a = await same('protobuf', await protobuf([{ labels: [['job', 'cmp_ok']], entries: [entry(t, 'a'), entry(t, '')] }]));
      assert.equal(a.status, 204);
      await same('json', json([{ stream: { job: 'cmp_ok' }, values: [[String(ns(t) + 1n), 'b']] }]));
      await same('gzip', await encodeBody([{ labels: [['job', 'cmp_ok']], entries: [entry(new EventTime(t.sec, t.nsec + 2), 'c')] }], 'json', true));
    });

    test('400s: label errors, line too long, timestamp too new, too far behind, corrupt bodies', async () => {
      const t = now();
      const labels31 = Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`l${String(i).padStart(2, '0')}`, 'v']));
      const cases: Array<[string, { body: Uint8Array | string; headers: Record<string, string> }]> = [
        ['invalid label name', json([{ stream: { 'app.name': 'x' }, values: [[String(ns(t)), 'a']] }])],
        ['no labels', json([{ stream: {}, values: [[String(ns(t)), 'a']] }])],
        ['31 label names', json([{ stream: labels31, values: [[String(ns(t)), 'a']] }])],
        ['label value too long', json([{ stream: { job: 'v'.repeat(2049) }, values: [[String(ns(t)), 'a']] }])],
        [
          'line too long among valid lines',
          await protobuf([
            { labels: [['job', 'cmp_long']], entries: [entry(t, 'ok1'), entry(new EventTime(t.sec, t.nsec + 1), 'x'.repeat(LINE_LIMIT + 1)), entry(new EventTime(t.sec, t.nsec + 2), 'ok2')] },
          ]),
        ],
        ['timestamp too new', json([{ stream: { job: 'cmp_new' }, values: [[String(ns(t) + 3600n * 1_000_000_000n), 'a']] }])],
        ['corrupt snappy', { body: 'garbage', headers: { 'content-type': 'application/x-protobuf' } }],
        ['short gzip', { body: 'garbage', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } }],
      ];
      const meta = json([{ stream: { job: 'cmp_meta' }, values: [[String(ns(t)), 'a', { trace: 'x' }]] }]);
      const [real, old] = [await answer(plain.url, meta), await answer(oldServer.url, meta)];
      assert.equal(real.status, 400);
      assert.equal(old.status, 400);
      assert.ok(real.body.startsWith(old.body.trim()), `${real.body} / ${old.body}`);
      for (const [what, req] of cases) {
        const a = await same(what, req);
        assert.equal(a.status, 400, what);
      }
      const fb = new EventTime(t.sec + 1, 0);
      await same('stream newest', json([{ stream: { job: 'cmp_fb' }, values: [[String(ns(fb)), 'new']] }]));
      const a = await same(
        'too far behind',
        json([
          {
            stream: { job: 'cmp_fb' },
            values: [
              [String(ns(fb) - 7200n * 1_000_000_000n), 'old'],
              [String(ns(fb) - 1n), 'ok'],
            ],
          },
        ]),
      );
      assert.equal(a.status, 400);
      assert.deepEqual(
        (await plain.entries('{job="cmp_long"}')).map((e) => e.line),
        ['ok1', 'ok2'],
        'real Loki keeps the valid entries of a 400',
      );
      assert.deepEqual(
        server
          .entries()
          .filter((e) => e.labels.job === 'cmp_long')
          .map((e) => e.line),
        ['ok1', 'ok2'],
      );
    });

    test('404 for another path, 405 for GET, 401 without a tenant when auth is enabled', async () => {
      const req = json([{ stream: { job: 'x' }, values: [[String(ns(now())), 'a']] }]);
      assert.equal((await same('unknown path', req, plain, () => server, '/loki/api/v1/pushx')).status, 404);
      assert.equal((await same('GET', { body: '', headers: {} }, plain, () => server, '/loki/api/v1/push', 'GET')).status, 405);
      assert.equal((await same('no org id', req, tenants, () => authServer)).status, 401);
    });
  });
});

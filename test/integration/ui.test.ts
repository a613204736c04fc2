/**
 * The web page's server over real sockets, wired as `logwarden run` wires it (a pipeline file
 * with service.ui, the service HTTP server, the ui output): the page's files and security
 * headers, basic and bearer auth, the SSE stream read with undici (live, filtered, resumed with
 * Last-Event-ID), the alert API, the health JSON against /metrics, and load-time errors.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { getGlobalDispatcher, request } from 'undici';
import { loadConfigFile } from '../../src/config/load.js';
import { EventTime, type LogEvent } from '../../src/core/event.js';
import { Pipeline } from '../../src/core/pipeline.js';
import { plan } from '../../src/core/plan.js';
import { registry } from '../../src/plugins.js';
import { CSP } from '../../src/ui/server.js';
import { readinessBadge, type Health } from '../../src/ui/health-shape.js';
import { falcoAlert } from '../support/falco-alert.js';
import { startUi, type RunningUi } from '../support/ui-pipeline.js';
import { silentServer, until } from '../support/harness.js';
import { tempDir } from '../support/output-pipeline.js';

after(() => getGlobalDispatcher().close());

type Running = RunningUi;

/** Starts a pipeline file the way `logwarden run` does, with a forward input; `assets` is the page directory (a temp one by default). */
function start(service: string, opts: { assets?: string; outputs?: string } = {}): Promise<Running> {
  return startUi(service, { ...opts, inputs: '    - name: forward\n      listen: 127.0.0.1\n      port: 0' });
}

function alert(rule: string, priority: string, user = 'alice', ns = 'default'): LogEvent {
  return falcoAlert(
    rule,
    priority,
    { 'ka.user.name': user, 'ka.target.namespace': ns },
    {
      time: EventTime.now(),
      tags: ['k8s'],
      output: `${priority} ${rule} (user=${user} ns=${ns}) <img src=x onerror=alert(1)>`,
    },
  );
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });

/** Reads SSE events from an open stream until `n` alert events arrived. */
async function readEvents(body: AsyncIterable<Buffer>, n: number, timeoutMs = 5000): Promise<Array<{ event: string; id?: string; data: string }>> {
  const events: Array<{ event: string; id?: string; data: string }> = [];
  let buf = '';
  const deadline = setTimeout(() => {
    throw new Error(`timed out waiting for ${n} alerts; got ${JSON.stringify(events)}`);
  }, timeoutMs);
  try {
    for await (const chunk of body) {
      buf += chunk.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev: { event: string; id?: string; data: string } = { event: 'message', data: '' };
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) ev.event = line.slice(7);
          else if (line.startsWith('id: ')) ev.id = line.slice(4);
          else if (line.startsWith('data: ')) ev.data = line.slice(6);
        }
        if (block.startsWith(':')) continue;
        events.push(ev);
        if (events.filter((e) => e.event === 'alert').length >= n) return events;
      }
    }
  } finally {
    clearTimeout(deadline);
  }
  return events;
}

test('serves the page files with the CSP and security headers; read-only; unknown files 404', async () => {
  const r = await start('');
  try {
    const page = await get(`${r.base}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(page.headers['content-security-policy'], CSP);
    assert.match(CSP, /^default-src 'self';/);
    assert.match(CSP, /require-trusted-types-for 'script'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.equal(page.headers['x-frame-options'], 'DENY');
    // /index.html is the same page (docs/ui.md names the file).
    const index = await get(`${r.base}/index.html`);
    assert.equal(index.status, 200);
    assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(index.text, page.text);
    const js = await get(`${r.base}/ui/app.js`);
    assert.equal(js.status, 200);
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    const again = await get(`${r.base}/ui/app.js`, { 'if-none-match': String(js.headers.etag) });
    assert.equal(again.status, 304);
    assert.equal((await get(`${r.base}/ui/nope.js`)).status, 404);
    assert.equal((await get(`${r.base}/ui/%2e%2e%2fpipeline.yaml`)).status, 404);
    const post = await request(`${r.base}/api/v1/alerts`, { method: 'POST', body: '{}' });
    await post.body.text();
    assert.equal(post.statusCode, 405);
    // The service endpoints are unchanged.
    assert.equal((await get(`${r.base}/metrics`)).status, 200);
    assert.equal((await get(`${r.base}/healthz`)).text, 'ok\n');
  } finally {
    await r.stop();
  }
});

test('without built page files, / answers 503 and says how to build them; the API still works', async () => {
  const dir = tempDir('logwarden-ui-empty-');
  const r = await start('', { assets: dir });
  try {
    const page = await get(`${r.base}/`);
    assert.equal(page.status, 503);
    assert.match(page.text, /npm run build:ui/);
    assert.equal((await get(`${r.base}/api/v1/alerts`)).status, 200);
    assert.ok(r.logs.some((l) => String(l.msg).includes('web page files not built')));
  } finally {
    await r.stop();
  }
});

test('basic auth: page and API answer 401 with a Basic challenge without or with wrong credentials', async () => {
  const r = await start('  ui.http_user: admin\n  ui.http_passwd: s3cret:with:colons');
  try {
    for (const path of ['/', '/ui/app.js', '/api/v1/alerts', '/api/v1/health', '/api/v1/alerts/stream', '/api/v1/alerts/1']) {
      const none = await get(`${r.base}${path}`);
      assert.equal(none.status, 401, path);
      assert.match(String(none.headers['www-authenticate']), /^Basic realm="logwarden"/);
      assert.equal((await get(`${r.base}${path}`, basic('admin', 'wrong'))).status, 401, path);
      assert.equal((await get(`${r.base}${path}`, basic('root', 's3cret:with:colons'))).status, 401, path);
      assert.equal((await get(`${r.base}${path}`, { authorization: 'Bearer s3cret:with:colons' })).status, 401, path);
    }
    assert.equal((await get(`${r.base}/`, basic('admin', 's3cret:with:colons'))).status, 200);
    assert.equal((await get(`${r.base}/api/v1/alerts`, basic('admin', 's3cret:with:colons'))).status, 200);
    // Prometheus keeps scraping without credentials.
    assert.equal((await get(`${r.base}/metrics`)).status, 200);
  } finally {
    await r.stop();
  }
});

test('bearer token: the API needs it, the page files (no data) do not', async () => {
  const r = await start('  ui.bearer_token: t0ken');
  try {
    assert.equal((await get(`${r.base}/`)).status, 200);
    const none = await get(`${r.base}/api/v1/health`);
    assert.equal(none.status, 401);
    assert.match(String(none.headers['www-authenticate']), /^Bearer realm="logwarden"/);
    assert.equal((await get(`${r.base}/api/v1/health`, { authorization: 'Bearer nope' })).status, 401);
    assert.equal((await get(`${r.base}/api/v1/health`, { authorization: 'Bearer t0ken' })).status, 200);
    assert.equal((await get(`${r.base}/api/v1/alerts`, { authorization: 'bearer t0ken' })).status, 200, 'the scheme is case-insensitive');
  } finally {
    await r.stop();
  }
});

test('SSE: alerts arrive live as they are routed to the ui output, filtered, and resumed with Last-Event-ID', async () => {
  const r = await start('');
  try {
    const all = await request(`${r.base}/api/v1/alerts/stream`);
    assert.equal(all.statusCode, 200);
    assert.equal(all.headers['content-type'], 'text/event-stream; charset=utf-8');
    const critical = await request(`${r.base}/api/v1/alerts/stream?priority=critical`);
    assert.equal(await r.ingest([alert('Create Privileged Pod', 'Warning'), alert('Attach/Exec Pod', 'Critical', 'bob')]), true);
    assert.equal(await r.ingest([alert('K8s Secret Created', 'Notice')]), true);

    const evs = await readEvents(all.body, 3);
    assert.equal(evs[0]!.event, 'hello');
    assert.deepEqual(JSON.parse(evs[0]!.data), { newest: 0 });
    const alerts = evs.filter((e) => e.event === 'alert');
    assert.deepEqual(
      alerts.map((e) => e.id),
      ['1', '2', '3'],
    );
    const first = JSON.parse(alerts[0]!.data) as Record<string, unknown>;
    assert.equal(first.rule, 'Create Privileged Pod');
    assert.equal(first.priority, 'Warning');
    assert.equal(first.user, 'alice');
    assert.equal(first.namespace, 'default');
    assert.match(String(first.output), /<img src=x onerror=alert\(1\)>/, "data is carried as text, escaping is the page's job (textContent)");

    const crit = (await readEvents(critical.body, 1)).filter((e) => e.event === 'alert');
    assert.deepEqual(
      crit.map((e) => (JSON.parse(e.data) as { rule: string }).rule),
      ['Attach/Exec Pod'],
    );
    all.body.destroy();
    critical.body.destroy();

    // A client that saw id 1 reconnects: it gets 2 and 3, then what comes next.
    const resumed = await request(`${r.base}/api/v1/alerts/stream`, { headers: { 'last-event-id': '1' } });
    const got = readEvents(resumed.body, 3);
    await new Promise((res) => setTimeout(res, 50));
    await r.ingest([alert('Create HostNetwork Pod', 'Warning')]);
    assert.deepEqual(
      (await got).filter((e) => e.event === 'alert').map((e) => e.id),
      ['2', '3', '4'],
    );
    resumed.body.destroy();
    // `after` does the same for clients that cannot set headers.
    const viaQuery = await request(`${r.base}/api/v1/alerts/stream?after=3&user=alice`);
    assert.deepEqual(
      (await readEvents(viaQuery.body, 1)).filter((e) => e.event === 'alert').map((e) => e.id),
      ['4'],
    );
    viaQuery.body.destroy();
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(r.ui.streamCount, 0, 'closed streams are forgotten');
  } finally {
    await r.stop();
  }
});

test('a stream client that stops reading is disconnected once 1 MiB is buffered for it; the others are not', async () => {
  const r = await start('  ui.max_alerts: 1000');
  try {
    const { port } = new URL(r.base);
    const stalled = net.connect(Number(port), '127.0.0.1');
    await new Promise((res) => stalled.once('connect', res));
    stalled.write('GET /api/v1/alerts/stream HTTP/1.1\r\nHost: localhost\r\n\r\n');
    stalled.pause();
    const reading = await request(`${r.base}/api/v1/alerts/stream?rule=last`);
    await until(() => r.ui.streamCount === 2, 'two streams');
    const big = (i: number): LogEvent => ({ ...alert(`bulk ${i}`, 'Notice'), record: { ...alert(`bulk ${i}`, 'Notice').record, output: 'x'.repeat(1000) } });
    let sent = 0;
    while (r.ui.streamCount === 2 && sent < 100_000) {
      await r.ui.add(Array.from({ length: 500 }, (_, i) => big(sent + i)));
      sent += 500;
      await new Promise((res) => setImmediate(res));
    }
    assert.equal(r.ui.streamCount, 1, `the stalled client is dropped (after ${sent} alerts)`);
    assert.ok(r.logs.some((l) => l.msg === 'ui stream client too slow: disconnected'));
    await r.ui.add([alert('last', 'Warning')]);
    const evs = await readEvents(reading.body, 1);
    assert.deepEqual(
      evs.filter((e) => e.event === 'alert').map((e) => (JSON.parse(e.data) as { rule: string }).rule),
      ['last'],
    );
    reading.body.destroy();
    stalled.destroy();
  } finally {
    await r.stop();
  }
});

test('alert API: list, paging, one alert with its full record, stats, bad parameters', async () => {
  const r = await start('  ui.max_alerts: 3');
  try {
    for (const [rule, p] of [
      ['A', 'Warning'],
      ['B', 'Critical'],
      ['C', 'Notice'],
      ['D', 'Warning'],
    ] as const)
      await r.ingest([alert(rule, p)]);
    const list = JSON.parse((await get(`${r.base}/api/v1/alerts?limit=2`)).text) as { alerts: Array<{ id: number; rule: string }>; more: boolean; total: number };
    assert.deepEqual(
      list.alerts.map((a) => a.rule),
      ['D', 'C'],
    );
    assert.equal(list.more, true);
    assert.equal(list.total, 3, 'ui.max_alerts');
    const older = JSON.parse((await get(`${r.base}/api/v1/alerts?limit=2&before=3`)).text) as { alerts: Array<{ rule: string }>; more: boolean };
    assert.deepEqual(
      older.alerts.map((a) => a.rule),
      ['B'],
    );
    assert.equal(older.more, false);

    const one = await get(`${r.base}/api/v1/alerts/4`);
    assert.equal(one.status, 200);
    const body = JSON.parse(one.text) as { id: number; tag: string; record: { output_fields: Record<string, string> } };
    assert.equal(body.id, 4);
    assert.equal(body.tag, 'falco');
    assert.equal(body.record.output_fields['ka.user.name'], 'alice');
    assert.equal((await get(`${r.base}/api/v1/alerts/1`)).status, 404, 'pushed out by ui.max_alerts');
    assert.equal((await get(`${r.base}/api/v1/alerts/x1`)).status, 404);

    const stats = JSON.parse((await get(`${r.base}/api/v1/alerts/stats?priority=Warning&window=600&buckets=10`)).text) as {
      total: number;
      byPriority: Record<string, number>;
      series: { byPriority: Record<string, number[]>; step: number };
    };
    assert.equal(stats.total, 1);
    assert.deepEqual(stats.byPriority, { Critical: 1, Notice: 1, Warning: 1 });
    assert.equal(stats.series.step, 60_000);
    assert.equal(
      stats.series.byPriority.Warning!.reduce((a, b) => a + b, 0),
      1,
    );

    const bad = await get(`${r.base}/api/v1/alerts?limit=100000`);
    assert.equal(bad.status, 400);
    assert.deepEqual(JSON.parse(bad.text), { error: 'limit: found "100000", expected an integer from 1 to 1000' });
    assert.equal((await get(`${r.base}/api/v1/alerts/stats?window=abc`)).status, 400);
  } finally {
    await r.stop();
  }
});

test('the ui output skips records that are no alert, counting them, and keeps the alerts', async () => {
  const r = await start('', { outputs: '    - name: ui\n      match: "*"' });
  try {
    const plain: LogEvent = { tag: 'kube.audit', time: EventTime.now(), record: { verb: 'get' } };
    assert.equal(await r.ingest([plain, { ...alert('A', 'Warning'), tag: 'kube.audit' }]), true);
    const list = JSON.parse((await get(`${r.base}/api/v1/alerts`)).text) as { alerts: Array<{ rule: string; tag: string }> };
    assert.deepEqual(
      list.alerts.map((a) => [a.rule, a.tag]),
      [['A', 'kube.audit']],
    );
    const metrics = (await get(`${r.base}/metrics`)).text;
    assert.match(metrics, /logwarden_output_ui_skipped_records_total\{name="ui\.0"\} 1/);
    assert.ok(r.logs.some((l) => String(l.msg).includes('records without a rule are no alerts')));
  } finally {
    await r.stop();
  }
});

test('health JSON carries the same numbers as /metrics, per input, filter and output, with rates', async () => {
  const r = await start('  memory_limit: 64Mi', {
    outputs: '    - name: ui\n      match: falco\n    - name: file\n      match: falco\n      path: /nonexistent-dir/for/logwarden/test\n      retry_limit: no_retries',
  });
  try {
    const h0 = JSON.parse((await get(`${r.base}/api/v1/health`)).text) as Health;
    assert.equal(h0.ready, true);
    assert.equal(h0.state, 'running');
    assert.deepEqual(
      h0.inputs.map((i) => i.name),
      ['forward.0'],
    );
    assert.deepEqual(
      h0.outputs.map((o) => o.name),
      ['ui.0', 'file.0'],
    );
    assert.equal(h0.outputs[0]!.records_per_s, null, 'no rate before a second sample');
    assert.equal(h0.buffer.limit_bytes, 64 * 1024 * 1024);

    await r.ingest([alert('A', 'Warning'), alert('B', 'Warning')]);
    await new Promise((res) => setTimeout(res, 600)); // past the shared-sample cache
    const h = JSON.parse((await get(`${r.base}/api/v1/health`)).text) as Health;
    const metrics = (await get(`${r.base}/metrics`)).text;
    const value = (name: string, labels: string) => {
      const m = new RegExp(`^${name}\\{${labels.replace(/[.]/g, '\\.')}\\} (\\S+)$`, 'm').exec(metrics);
      return m ? Number(m[1]) : 0;
    };
    const ui = h.outputs.find((o) => o.name === 'ui.0')!;
    assert.equal(ui.delivered, 2);
    assert.equal(ui.delivered, value('logwarden_output_proc_records_total', 'name="ui.0"'));
    assert.ok(ui.records_per_s! > 0, 'delivered per second since the first sample');
    const file = h.outputs.find((o) => o.name === 'file.0')!;
    assert.equal(file.dropped, value('logwarden_output_dropped_records_total', 'name="file.0",reason="' + Object.keys(file.dropped_by_reason)[0] + '"'));
    assert.equal(file.dropped, 2, 'the failing file output dead-letters both alerts');
    assert.ok(file.last_error && file.last_error.length > 0);
    const errorLines = [...metrics.matchAll(/^logwarden_output_errors_total\{name="file\.0",[^}]*\} (\S+)$/gm)];
    assert.ok(file.errors >= 1);
    assert.equal(
      file.errors,
      errorLines.reduce((n, m) => n + Number(m[1]), 0),
    );
    assert.equal(h.unrouted, 0);
    assert.ok(h.process.rss_bytes > 0);
  } finally {
    await r.stop();
  }
});

test('health JSON says stopping while the pipeline drains, and the badge shows it (not an empty paused list)', async () => {
  // A Loki that takes the request and never answers keeps the drain going for the grace period.
  const loki = await silentServer();
  const r = await start('  grace: 1', {
    outputs: `    - name: ui\n      match: falco\n    - name: loki\n      match: falco\n      host: 127.0.0.1\n      port: ${loki.port}\n      batch_wait: 0`,
  });
  try {
    const committed = r.ingest([alert('A', 'Warning')]);
    await new Promise((res) => setTimeout(res, 100));
    const stopped = r.pipeline.stop(1);
    const h = JSON.parse((await get(`${r.base}/api/v1/health`)).text) as Health;
    assert.equal(h.state, 'stopping');
    assert.equal(h.ready, false);
    assert.deepEqual(h.paused, {});
    assert.equal(readinessBadge(h).text, 'stopping');
    assert.equal(await stopped, false, 'the hung Loki left the alert undelivered');
    assert.equal(await committed, false);
  } finally {
    await r.stop();
    loki.release();
  }
});

test('load-time errors: ui needs http_server, ui.* needs ui, basic auth needs both halves, the ui output needs service.ui', async () => {
  const dir = tempDir('logwarden-ui-cfg-');
  const errorsOf = async (yaml: string): Promise<string> => {
    const file = join(dir, `p${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, yaml);
    try {
      const p = new Pipeline(plan(loadConfigFile(file, {}), registry), { logger: pino({ level: 'silent' }) });
      await p.build();
      await p.close();
      return '';
    } catch (e) {
      return (e as Error).message.replaceAll(file, 'FILE');
    }
  };
  const out = 'pipeline:\n  outputs:\n    - name: ui\n      match: falco\n';
  assert.equal(await errorsOf(`service:\n  ui: on\n${out}`), 'FILE:2:3: ui: the web page is served by the service HTTP server: set http_server: on');
  assert.equal(await errorsOf(`service:\n  http_server: on\n  ui.db_path: /tmp/x.db\n${out}`), 'FILE:3:3: ui.db_path: has no effect unless ui: on');
  assert.equal(await errorsOf(`service:\n  http_server: on\n  ui: on\n  ui.http_passwd: x\n${out}`), 'FILE:4:3: ui.http_passwd: set ui.http_user too: basic auth needs both');
  assert.equal(await errorsOf(`service:\n  http_server: on\n  ui: on\n  ui.bearer_token: ""\n${out}`), 'FILE:4:3: ui.bearer_token: found an empty string, expected a non-empty credential');
  assert.equal(await errorsOf(`service:\n  http_server: on\n  ui: on\n  ui.max_alerts: 0\n${out}`), 'FILE:4:18: ui.max_alerts: found 0, expected an integer (at least 1)');
  assert.equal(await errorsOf(out), 'FILE:3:7: name: the ui output shows alerts on the web page: set ui: on (and http_server: on) in the service section');
  assert.equal(await errorsOf(`service:\n  http_server: on\n  ui: on\n  ui.retention: 7d\n${out}`), '', 'a valid configuration validates');
  assert.equal(
    await errorsOf(`service:\n  http_server: on\n  ui: on\n  ui.store: redis://cache:6379\n${out}`),
    'FILE:4:13: ui.store: found "redis://cache:6379", expected memory or a postgres:// URL',
  );
  assert.equal(
    await errorsOf(`service:\n  http_server: on\n  ui: on\n  ui.store: postgres://lw@db/alerts\n  ui.db_path: /tmp/x.db\n${out}`),
    "FILE:5:3: ui.db_path: keeps one process's alerts in a file: remove it, ui.store is a shared database",
  );
  assert.equal(await errorsOf(`service:\n  http_server: on\n  ui: on\n  ui.store: postgresql://lw@db:5432/alerts?sslmode=require\n${out}`), '', 'a shared store validates');
  assert.equal(await errorsOf(`service:\n  http_server: on\n  ui: on\n  ui.store: memory\n  ui.db_path: /tmp/x.db\n${out}`), '');
  assert.equal(
    await errorsOf(`service:\n  http_server: on\n  ui: on\n  workers: 2\n${out}`),
    'FILE:4:3: workers: the web page keeps its alerts in one process: set workers: 1 with ui: on, or a shared ui.store (postgres://...)',
  );
  assert.equal(await errorsOf(`service:\n  http_server: on\n  ui: on\n  workers: 2\n  ui.store: postgres://lw@db/alerts\n${out}`), '', 'workers share a database');
});

/**
 * The page's triage API over real sockets, wired as `logwarden run` wires it: the export
 * downloads (CSV quoting, JSON lines, filters, auth), mutes (create, list, filter the list and
 * the live stream, remove), the checks on writes (auth, page header, origin, body), an
 * Alertmanager that cannot be reached when muting, and the load-time check of
 * ui.alertmanager_url.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getGlobalDispatcher } from 'undici';
import { loadConfigFile } from '../../src/config/load.js';
import { EventTime, type LogEvent } from '../../src/core/event.js';
import { plan } from '../../src/core/plan.js';
import { registry } from '../../src/plugins.js';
import { freePort, tempDir, until } from '../support/harness.js';
import { startUi, type RunningUi } from '../support/ui-pipeline.js';

after(() => getGlobalDispatcher().close());

function start(service: string): Promise<RunningUi> {
  return startUi(service);
}

function alert(rule: string, user: string, ns: string, output: string): LogEvent {
  const time = EventTime.now();
  return {
    tag: 'falco',
    time,
    record: {
      time: time.toISO(),
      rule,
      priority: 'Warning',
      source: 'k8s_audit',
      tags: ['k8s', 'a,b'],
      output,
      output_fields: { 'ka.user.name': user, 'ka.target.namespace': ns },
      hostname: 'node-1',
    },
  };
}

const WRITE = { 'content-type': 'application/json', 'x-logwarden-ui': '1' };

test('export: CSV quoted as RFC 4180, JSON lines of the full alerts, filters and auth apply', async () => {
  const r = await start('  ui.bearer_token: tok');
  const auth = { authorization: 'Bearer tok' };
  try {
    assert.equal(
      await r.ingest([
        alert('Plain', 'alice', 'prod', 'plain output user=alice'),
        alert('With, comma', '=cmd|calc', 'dev', 'said "hi"\nthen left, user==cmd|calc'),
        alert('Plain', 'bob', 'dev', 'bob here'),
      ]),
      true,
    );
    const csv = await fetch(`${r.base}/api/v1/alerts/export?format=csv`, { headers: auth });
    assert.equal(csv.status, 200);
    assert.equal(csv.headers.get('content-type'), 'text/csv; charset=utf-8; header=present');
    assert.match(csv.headers.get('content-disposition') ?? '', /^attachment; filename="logwarden-alerts-\d{8}T\d{6}Z\.csv"$/);
    const lines = (await csv.text()).split('\r\n');
    assert.equal(lines[0], 'id,received,time,priority,rule,source,hostname,namespace,user,tags,output');
    assert.equal(lines.length, 5, 'header, three rows, and the empty string after the last CRLF');
    assert.equal(lines[4], '');
    assert.match(lines[2]!, /^2,[^,]+,[^,]+,Warning,"With, comma",k8s_audit,node-1,dev,'=cmd\|calc,"k8s,a,b","said ""hi""\nthen left, user==cmd\|calc"$/);
    const jsonl = await fetch(`${r.base}/api/v1/alerts/export?format=jsonl&rule=Plain`, { headers: auth });
    assert.equal(jsonl.headers.get('content-type'), 'application/x-ndjson; charset=utf-8');
    const rows = (await jsonl.text()).split('\n');
    assert.equal(rows.pop(), '');
    assert.deepEqual(
      rows.map((l) => (JSON.parse(l) as { id: number }).id),
      [3, 1],
      'the filter applies, newest first',
    );
    assert.equal(rows[0], (await (await fetch(`${r.base}/api/v1/alerts/3`, { headers: auth })).text()).trim());
    assert.equal((await fetch(`${r.base}/api/v1/alerts/export`)).status, 401);
    assert.equal((await fetch(`${r.base}/api/v1/alerts/export?format=xlsx`, { headers: auth })).status, 400);
    const bad = await fetch(`${r.base}/api/v1/alerts/export?since=later`, { headers: auth });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /^since: found "later"/);
    const head = await fetch(`${r.base}/api/v1/alerts/export?format=csv`, { method: 'HEAD', headers: auth });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  } finally {
    await r.stop();
  }
});

test('mutes: made, listed, hiding their group from the list and the live stream, removed', async () => {
  const r = await start('');
  try {
    await r.ingest([alert('A', 'alice', 'prod', 'a1'), alert('A', 'bob', 'prod', 'a2'), alert('B', 'alice', 'prod', 'b1')]);
    const sent = Date.now();
    const made = await fetch(`${r.base}/api/v1/mutes`, { method: 'POST', headers: WRITE, body: JSON.stringify({ rule: 'A', user: 'alice', duration: 600, comment: 'known' }) });
    const answered = Date.now();
    assert.equal(made.status, 201);
    const { mute } = (await made.json()) as { mute: { id: number; rule: string; user: string; until: number; created: number; comment: string } };
    assert.deepEqual([mute.rule, mute.user, mute.comment], ['A', 'alice', 'known']);
    assert.ok(mute.until >= sent + 600_000 && mute.until <= answered + 600_000, 'until: 600 s from when the request was read');
    const listed = (await (await fetch(`${r.base}/api/v1/mutes`)).json()) as { mutes: unknown[]; alertmanager: unknown };
    assert.deepEqual(listed, { mutes: [mute], alertmanager: null });
    const outputs = async (q: string) => ((await (await fetch(`${r.base}/api/v1/alerts?${q}`)).json()) as { alerts: Array<{ output: string }> }).alerts.map((a) => a.output);
    assert.deepEqual(await outputs('muted=hide'), ['b1', 'a2']);
    assert.deepEqual(await outputs('muted=only'), ['a1']);
    assert.deepEqual(await outputs(''), ['b1', 'a2', 'a1']);

    // The live stream with muted=hide leaves the muted group out.
    const ctrl = new AbortController();
    const res = await fetch(`${r.base}/api/v1/alerts/stream?muted=hide`, { signal: ctrl.signal });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        text += value;
      }
    })();
    await until(() => text.includes('event: hello'), 'hello');
    await r.ingest([alert('A', 'alice', 'prod', 'a3 muted'), alert('A', 'bob', 'prod', 'a4 shown')]);
    await until(() => text.includes('a4 shown'), 'the unmuted alert streamed');
    assert.equal(text.includes('a3 muted'), false);
    ctrl.abort();
    await reading;

    assert.equal((await fetch(`${r.base}/api/v1/mutes/${mute.id}`, { method: 'DELETE', headers: WRITE })).status, 200);
    assert.equal((await fetch(`${r.base}/api/v1/mutes/${mute.id}`, { method: 'DELETE', headers: WRITE })).status, 404);
    assert.equal((await fetch(`${r.base}/api/v1/mutes/x`, { method: 'DELETE', headers: WRITE })).status, 404);
    assert.deepEqual(await outputs('muted=only'), []);
  } finally {
    await r.stop();
  }
});

test('writes are refused without credentials, without the page header, from elsewhere, or with a bad body', async () => {
  const r = await start('  ui.http_user: u\n  ui.http_passwd: p');
  const auth = `Basic ${Buffer.from('u:p').toString('base64')}`;
  const body = JSON.stringify({ rule: 'A', duration: 600 });
  const post = (headers: Record<string, string>, b = body) => fetch(`${r.base}/api/v1/mutes`, { method: 'POST', headers, body: b });
  try {
    assert.equal((await post(WRITE)).status, 401);
    const cases: Array<[Record<string, string>, number, RegExp]> = [
      [{ authorization: auth, 'content-type': 'application/json' }, 403, /x-logwarden-ui: 1 header is missing/],
      [{ authorization: auth, ...WRITE, origin: 'https://evil.example' }, 403, /cross-origin request refused/],
      [{ authorization: auth, ...WRITE, 'sec-fetch-site': 'cross-site' }, 403, /cross-site request refused/],
      [{ authorization: auth, 'x-logwarden-ui': '1', 'content-type': 'application/x-www-form-urlencoded' }, 400, /content-type/],
    ];
    for (const [headers, status, re] of cases) {
      const res = await post(headers);
      assert.equal(res.status, status, JSON.stringify(headers));
      assert.match(((await res.json()) as { error: string }).error, re);
    }
    // Behind a proxy that rewrites Host: the browser's host is in X-Forwarded-Host.
    const proxied = await post({ authorization: auth, ...WRITE, origin: 'https://logwarden.example', 'x-forwarded-host': 'logwarden.example' });
    assert.equal(proxied.status, 201);
    const { mute } = (await proxied.json()) as { mute: { id: number } };
    assert.equal((await fetch(`${r.base}/api/v1/mutes/${mute.id}`, { method: 'DELETE', headers: { authorization: auth, ...WRITE } })).status, 200);
    assert.equal((await post({ authorization: auth, ...WRITE, origin: 'https://evil.example', 'x-forwarded-host': 'logwarden.example' })).status, 403);
    assert.equal((await post({ authorization: auth, ...WRITE }, '{"rule":')).status, 400, 'not JSON');
    assert.equal((await post({ authorization: auth, ...WRITE }, JSON.stringify({ rule: 'A', duration: 600, pad: 'x'.repeat(20_000) }))).status, 400, 'too large');
    assert.equal((await fetch(`${r.base}/api/v1/mutes`, { method: 'PUT', headers: { authorization: auth } })).status, 405);
    assert.equal((await fetch(`${r.base}/api/v1/mutes`, { headers: { authorization: auth } })).status, 200);
    // Same origin (what the page sends) is accepted, and the basic auth user is recorded.
    const ok = await post({ authorization: auth, ...WRITE, origin: r.base, 'sec-fetch-site': 'same-origin' });
    assert.equal(ok.status, 201);
    assert.equal(((await ok.json()) as { mute: { by: string } }).mute.by, 'u');
  } finally {
    await r.stop();
  }
});

test('an Alertmanager that cannot be reached: the mute is made, the answer says why there is no silence', async () => {
  const port = await freePort();
  const r = await start(`  ui.alertmanager_url: http://127.0.0.1:${port}/`);
  try {
    const res = await fetch(`${r.base}/api/v1/mutes`, { method: 'POST', headers: WRITE, body: JSON.stringify({ rule: 'A', duration: 600 }) });
    assert.equal(res.status, 201);
    const body = (await res.json()) as { mute: { id: number; silence?: string }; silence_error: string };
    assert.equal(body.mute.silence, undefined);
    assert.match(body.silence_error, new RegExp(`^fetch failed|127\\.0\\.0\\.1:${port}`));
    const listed = (await (await fetch(`${r.base}/api/v1/mutes`)).json()) as { mutes: unknown[]; alertmanager: string };
    assert.equal(listed.mutes.length, 1);
    assert.equal(listed.alertmanager, `http://127.0.0.1:${port}`);
    // Un-muting a mute without a silence does not ask Alertmanager.
    const del = await fetch(`${r.base}/api/v1/mutes/${body.mute.id}`, { method: 'DELETE', headers: WRITE });
    assert.deepEqual(Object.keys((await del.json()) as object), ['mute']);
  } finally {
    await r.stop();
  }
});

test('ui.alertmanager_url must be an http(s) URL', async () => {
  const dir = tempDir('logwarden-ui-am-');
  const file = join(dir, 'p.yaml');
  for (const [value, col] of [
    ['ftp://am:9093', 24],
    ['not a url', 24],
    ['http://am:9093/?x=1', 24],
  ] as const) {
    writeFileSync(file, `service:\n  http_server: on\n  ui: on\n  ui.alertmanager_url: ${value}\npipeline:\n  outputs:\n    - name: ui\n      match: falco\n`);
    assert.throws(
      () => plan(loadConfigFile(file, {}), registry),
      (e: Error) => e.message.includes(`${file}:4:${col}: ui.alertmanager_url: found "${value}", expected an http:// or https:// URL`),
    );
  }
  writeFileSync(file, `service:\n  http_server: on\n  ui: on\n  ui.alertmanager_url: https://am.example:9093/prefix\npipeline:\n  outputs:\n    - name: ui\n      match: falco\n`);
  assert.equal(plan(loadConfigFile(file, {}), registry).service['ui.alertmanager_url'], 'https://am.example:9093/prefix');
});

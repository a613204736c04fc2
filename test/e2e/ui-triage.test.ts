/**
 * Triage on the web page in a real browser (Debian's Chromium via playwright-core) against a real
 * `logwarden run` and a real Alertmanager (Debian's prometheus-alertmanager): the list filters
 * (multi-select rule, hostname, source, time range, muted), the tags column and the output-field
 * marks, paging by page size, the JSON lines / CSV downloads, copy-as-JSON, and muting an alert
 * group, which also silences it in Alertmanager (the alert the alertmanager output sent there
 * becomes suppressed) until it is un-muted. Writes need the basic auth and the page's header.
 * Screenshots at 1400x900 and 390x844 go to test-artifacts/.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { Alertmanager } from '../support/alertmanager.js';
import { freePort, until } from '../support/harness.js';
import { repoRoot, falcoCorpus } from '../support/paths.js';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const artifacts = join(repoRoot, 'test-artifacts');
const events = join(falcoCorpus, 'events');
const USER = 'admin';
const PASS = 'triage-secret';
const AUTH = `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}`;

interface Summary {
  id: number;
  rule: string;
  priority: string;
  user?: string;
  namespace?: string;
  hostname?: string;
  source: string;
  tags: string[];
  output: string;
  time: string;
  received: number;
}

let proc: ChildProcess | undefined;
let log = '';
let base = '';
let forwardPort = 0;
let am: Alertmanager;
let browser: BrowserContext;
let page: Page;
let dir: string;
const problems: string[] = [];

async function api<T>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T; text: string }> {
  const res = await fetch(`${base}${path}`, { ...init, headers: { authorization: AUTH, ...(init.headers as Record<string, string>) } });
  const text = await res.text();
  let body: T;
  try {
    body = JSON.parse(text) as T;
  } catch {
    body = undefined as T;
  }
  return { status: res.status, body, text };
}

const allAlerts = async (q = '') => (await api<{ alerts: Summary[] }>(`/api/v1/alerts?limit=1000${q}`)).body.alerts;

async function send(file: string): Promise<void> {
  await run(process.execPath, [join(repoRoot, 'bin', 'logwarden.js'), 'send', '-H', '127.0.0.1', '-p', String(forwardPort), '-t', 'kube.audit', '--ack', file], { cwd: repoRoot });
}

const rowCount = () => page.locator('#rows tr').count();
const rowsAre = (n: number) => until(async () => (await rowCount()) === n, `${n} rows`, 10_000, 100);
const rowIds = async () => await page.locator('#rows tr').evaluateAll((trs) => trs.map((t) => Number(t.getAttribute('data-id'))));

/** RFC 4180 CSV to rows (quoted fields, doubled quotes, CRLF). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'logwarden-ui-triage-'));
  am = await new Alertmanager(await freePort()).start();
  const httpPort = await freePort();
  forwardPort = await freePort();
  base = `http://127.0.0.1:${httpPort}`;
  const config = join(dir, 'pipeline.yaml');
  writeFileSync(
    config,
    `service:
  http_server: on
  http_listen: 127.0.0.1
  http_port: ${httpPort}
  grace: 2
  ui: on
  ui.db_path: ${join(dir, 'alerts.db')}
  ui.http_user: ${USER}
  ui.http_passwd: ${PASS}
  ui.alertmanager_url: ${am.url}
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: ${forwardPort}
  filters:
    - name: detect
      match: kube.audit
      alert_tag: falco
  outputs:
    - name: ui
      match: falco
    - name: alertmanager
      match: falco
      url: ${am.url}
      batch_wait: 0
`,
  );
  proc = spawn(process.execPath, [join(repoRoot, 'bin', 'logwarden.js'), 'run', '-c', config], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d) => (log += String(d)));
  proc.stderr!.on('data', (d) => (log += String(d)));
  await until(async () => (await fetch(`${base}/readyz`).catch(() => undefined))?.ok === true || proc!.exitCode !== null, 'logwarden ready', 20_000, 100);
  assert.equal(proc.exitCode, null, log);

  // 30 privileged pods (one rule), then one of each of four other rules: 34 alerts.
  const line = readFileSync(join(events, 'create_nginx_pod_privileged.json'), 'utf8').split('\n')[0]!;
  const many = join(dir, 'many.json');
  writeFileSync(many, `${Array.from({ length: 30 }, () => line).join('\n')}\n`);
  await send(many);
  for (const f of ['attach_pod.json', 'create_cluster_role_wildcard_verbs.json', 'anonymous_creates_namespace_foo.json', 'create_nginx_pod_hostnetwork.json']) await send(join(events, f));

  browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'logwarden-chromium-')), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 900 },
    httpCredentials: { username: USER, password: PASS },
    acceptDownloads: true,
    permissions: ['clipboard-read', 'clipboard-write'],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
});

after(async () => {
  await browser?.close();
  if (proc && proc.exitCode === null) {
    const exited = new Promise((r) => proc!.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  }
  await am?.stop();
});

test('on a 1400x900 screen the alerts are above the fold; tags column; output fields emphasised', async () => {
  const stored = await allAlerts();
  assert.equal(stored.length, 34, log);
  await page.goto(base);
  await page.locator('#live[data-state="live"]').waitFor({ timeout: 10_000 });
  await page.selectOption('#page-size', '25');
  await rowsAre(25);
  const tenth = await page.locator('#rows tr').nth(9).boundingBox();
  assert.ok(tenth && tenth.y + tenth.height <= 900, `ten rows fit above the fold (10th row ends at ${tenth?.y}+${tenth?.height})`);
  const first = stored[0]!;
  const tr = page.locator(`#rows tr[data-id="${first.id}"]`);
  assert.deepEqual(await tr.locator('td.tags .tag').allTextContents(), first.tags);
  // Every emphasised piece is the value of the output field its title names.
  const full = (await api<{ record: { output_fields: Record<string, unknown> } }>(`/api/v1/alerts/${first.id}`)).body.record.output_fields;
  const marks = await tr.locator('td.output mark').evaluateAll((ms) => ms.map((m) => [m.getAttribute('title'), m.textContent]));
  assert.ok(marks.length >= 2, `marks: ${JSON.stringify(marks)}`);
  for (const [field, text] of marks) assert.equal(String(full[field!]), text, `mark of ${field}`);
  assert.equal(await tr.locator('td.output').textContent(), first.output, 'the marks keep the text as it is');
  // Priorities are not cut short.
  for (const el of await page.locator('#rows td.c-prio').all()) {
    const [sw, cw] = await el.evaluate((td: { scrollWidth: number; clientWidth: number }) => [td.scrollWidth, td.clientWidth]);
    assert.ok(sw <= cw, `priority fits its cell: ${await el.textContent()} (${sw} > ${cw})`);
  }
  await page.screenshot({ path: join(artifacts, 'ui-triage-desktop.png') });
});

test('paging: 25 a page, older and newer, "1-25 of 34"', async () => {
  const stored = await allAlerts();
  assert.deepEqual(
    await rowIds(),
    stored.slice(0, 25).map((a) => a.id),
  );
  await until(async () => (await page.locator('#page-info').textContent()) === '1–25 of 34', 'page info', 10_000, 100);
  await page.locator('#older').click();
  await rowsAre(9);
  assert.deepEqual(
    await rowIds(),
    stored.slice(25).map((a) => a.id),
  );
  assert.equal(await page.locator('#page-info').textContent(), '26–34 of 34');
  assert.equal(await page.locator('#older').isVisible(), false);
  await page.locator('#newer').click();
  await rowsAre(25);
  assert.deepEqual(
    await rowIds(),
    stored.slice(0, 25).map((a) => a.id),
  );
});

test('filters: multi-select rules, hostname, source, time range; the URL keeps them', async () => {
  await page.locator('#f-rule').click();
  await page.locator('.ms[data-filter="rule"] .ms-item', { hasText: 'Attach/Exec Pod' }).locator('input').check();
  await page.locator('.ms[data-filter="rule"] .ms-item', { hasText: 'Anonymous Request Allowed' }).locator('input').check();
  await rowsAre(2);
  assert.deepEqual((await page.locator('#rows td.rule').allTextContents()).sort(), ['Anonymous Request Allowed', 'Attach/Exec Pod']);
  assert.match(page.url(), /rule=Attach%2FExec\+Pod&rule=Anonymous\+Request\+Allowed|rule=Attach%2FExec%20Pod/);
  assert.equal(await page.locator('#f-rule').textContent(), '2 selected');
  await page.keyboard.press('Escape');
  await page.reload();
  await rowsAre(2);
  await page.locator('#f-clear').click();
  await rowsAre(25);

  const stored = await allAlerts();
  const host = stored[0]!.hostname!;
  assert.ok(host, 'the detect filter sets hostname');
  await page.locator('#f-hostname').click();
  await page.locator('.ms[data-filter="hostname"] .ms-item', { hasText: host }).locator('input').check();
  await page.keyboard.press('Escape');
  await until(async () => page.url().includes('hostname='), 'hostname in the URL', 5000, 100);
  await rowsAre(25);
  await page.goto(`${base}/?source=syscall`);
  await page.getByText('No alert matches these filters.').waitFor();
  await until(async () => (await page.locator('#total').textContent()) === '0 matching', 'no syscall alerts', 10_000, 100);
  await page.goto(`${base}/?source=k8s_audit`);
  await rowsAre(25);

  // Time range: the last 5 minutes hold them all; a range ending before the first one, none.
  await page.selectOption('#f-range', '5m');
  await until(async () => page.url().includes('since=300'), 'since in the URL', 5000, 100);
  await until(async () => (await page.locator('#total').textContent()) === '34 matching', '34 in the last 5 min', 10_000, 100);
  const oldest = Math.min(...stored.map((a) => a.received));
  await page.goto(`${base}/?to=${oldest}`);
  await page.getByText('No alert matches these filters.').waitFor();
  assert.equal(await page.locator('#f-range').inputValue(), 'custom');
  assert.equal(await page.locator('#range-custom').isVisible(), true);
  await until(async () => (await page.locator('#total').textContent()) === '0 matching', 'counts follow the range', 10_000, 100);
  await page.goto(`${base}/?from=${oldest}&to=${oldest + 1}`);
  const atOldest = stored.filter((a) => a.received === oldest).length;
  await rowsAre(Math.min(25, atOldest));
  await page.goto(base);
  await rowsAre(25);
});

test('export: the filtered list downloads as CSV and as JSON lines', async () => {
  await page.goto(`${base}/?rule=Create+Privileged+Pod`);
  await rowsAre(25);
  const expected = await allAlerts('&rule=Create+Privileged+Pod');
  assert.equal(expected.length, 30);
  const [csvDl] = await Promise.all([page.waitForEvent('download'), page.locator('#export-csv').click()]);
  assert.match(csvDl.suggestedFilename(), /^logwarden-alerts-\d{8}T\d{6}Z\.csv$/);
  const csv = parseCsv(readFileSync((await csvDl.path())!, 'utf8'));
  assert.deepEqual(csv[0], ['id', 'received', 'time', 'priority', 'rule', 'source', 'hostname', 'namespace', 'user', 'tags', 'output']);
  assert.equal(csv.length, 31, 'a header and every matching alert, not only the page shown');
  for (const [i, a] of expected.entries()) {
    const r = csv[i + 1]!;
    assert.deepEqual(r, [String(a.id), new Date(a.received).toISOString(), a.time, a.priority, a.rule, a.source, a.hostname ?? '', a.namespace ?? '', a.user ?? '', a.tags.join(','), a.output]);
  }
  const [jsonDl] = await Promise.all([page.waitForEvent('download'), page.locator('#export-jsonl').click()]);
  const lines = readFileSync((await jsonDl.path())!, 'utf8').split('\n');
  assert.equal(lines.pop(), '');
  assert.equal(lines.length, 30);
  for (const [i, l] of lines.entries()) assert.equal(l, (await api(`/api/v1/alerts/${expected[i]!.id}`)).text.trim(), 'each line is the full alert');
  // The endpoint honours the auth like the rest of the API.
  assert.equal((await fetch(`${base}/api/v1/alerts/export?format=csv`)).status, 401);
  assert.equal((await api('/api/v1/alerts/export?format=xml')).status, 400);
});

test('copy as JSON copies the full alert', async () => {
  const id = (await allAlerts('&rule=Attach%2FExec+Pod'))[0]!.id;
  await page.goto(`${base}/#alert-${id}`);
  await page.locator('#d-copy').click();
  await page.locator('#d-copy', { hasText: 'Copied' }).waitFor();
  const copied = JSON.parse(await page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText())) as unknown;
  assert.deepEqual(copied, JSON.parse((await api(`/api/v1/alerts/${id}`)).text));
  // evt.time in output_fields (nanoseconds) shows as a date with the full value in its title.
  const evtTime = page.locator('dialog#detail table.fields tr', { has: page.locator('th', { hasText: /^evt\.time$/ }) }).locator('time.ns-time');
  const raw = (await api<{ record: { output_fields: Record<string, unknown> } }>(`/api/v1/alerts/${id}`)).text.match(/"evt\.time":(\d+)/)?.[1];
  assert.ok(raw, 'the Attach/Exec Pod rule outputs evt.time as integer nanoseconds');
  assert.equal(await evtTime.getAttribute('title'), `${raw} ns since the epoch`, 'all the digits in the title');
  const shown = (await evtTime.textContent()) ?? '';
  assert.match(shown, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}[+-]\d{2}:\d{2}$/);
  assert.equal(shown.slice(20, 29), raw.slice(-9), 'the nanoseconds kept');
  assert.equal(Date.parse(shown), Math.floor(Number(BigInt(raw) / 1_000_000n)), 'the same instant');
  await page.screenshot({ path: join(artifacts, 'ui-triage-detail.png') });
  await page.locator('#d-close').click();
});

test('mute an alert group: dimmed, hidden on request, listed, silenced in Alertmanager; un-mute undoes it', async () => {
  const attach = (await allAlerts('&rule=Attach%2FExec+Pod'))[0]!;
  assert.ok(attach.namespace && attach.user);
  // Alertmanager got the alert from the alertmanager output, active.
  await am.waitFor((as) => as.some((a) => a.labels.rule === 'Attach/Exec Pod' && a.status.state === 'active'), 'the alert in Alertmanager');

  await page.goto(`${base}/#alert-${attach.id}`);
  const form = page.locator('#mute-form');
  await form.waitFor();
  assert.equal(await form.locator('#m-ns').isChecked(), true);
  assert.equal(await form.locator('#m-user').isChecked(), true);
  await form.locator('#m-duration').selectOption('3600');
  await form.locator('#m-comment').fill('known maintenance, "planned"');
  await form.locator('#m-go').click();
  await page.locator('#mutes li').first().waitFor({ timeout: 10_000 });
  assert.match((await page.locator('#mutes li').first().textContent()) ?? '', /Attach\/Exec Pod · namespace default · user .* by admin — known maintenance/);
  assert.equal(await page.locator('#mutes li .badge', { hasText: 'silenced' }).count(), 1);
  await page.selectOption('#page-size', '50');
  await rowsAre(34);
  const row = page.locator(`#rows tr[data-id="${attach.id}"]`);
  await until(async () => (await row.getAttribute('class'))?.includes('muted-row') === true, 'the row dimmed', 10_000, 100);
  assert.equal(await row.locator('.mute-tag').textContent(), 'muted');
  assert.equal(await page.locator('#rows tr.muted-row').count(), 1);

  const { body: mutes } = await api<{ mutes: Array<{ id: number; rule: string; namespace: string; user: string; until: number; silence: string; by: string }> }>('/api/v1/mutes');
  assert.equal(mutes.mutes.length, 1);
  const m = mutes.mutes[0]!;
  assert.deepEqual([m.rule, m.namespace, m.user, m.by], ['Attach/Exec Pod', attach.namespace, attach.user, USER]);
  // The silence in the real Alertmanager: matchers on the labels the alertmanager output sets.
  const silences = (await (await fetch(`${am.url}/api/v2/silences`)).json()) as Array<{
    id: string;
    matchers: Array<{ name: string; value: string; isRegex: boolean; isEqual?: boolean }>;
    status: { state: string };
    createdBy: string;
    comment: string;
    endsAt: string;
  }>;
  const s = silences.find((x) => x.id === m.silence);
  assert.ok(s, JSON.stringify(silences));
  assert.equal(s.status.state, 'active');
  assert.deepEqual(s.matchers.map((x) => [x.name, x.value, x.isRegex, x.isEqual ?? true]).sort(), [
    ['ka_target_namespace', attach.namespace, false, true],
    ['ka_user_name', attach.user, false, true],
    ['rule', 'Attach/Exec Pod', false, true],
  ]);
  assert.equal(s.createdBy, USER);
  assert.equal(s.comment, 'known maintenance, "planned"');
  assert.ok(Math.abs(Date.parse(s.endsAt) - m.until) < 1000, 'the silence ends with the mute');
  await am.waitFor((as) => as.some((a) => a.labels.rule === 'Attach/Exec Pod' && a.status.state === 'suppressed'), 'the alert suppressed by the silence');

  await page.selectOption('#f-muted', 'hide');
  await rowsAre(33);
  assert.equal(await page.locator(`#rows tr[data-id="${attach.id}"]`).count(), 0);
  await page.selectOption('#f-muted', 'only');
  await rowsAre(1);
  await page.selectOption('#f-muted', '');
  await rowsAre(34);
  await page.screenshot({ path: join(artifacts, 'ui-triage-muted.png') });

  await page.locator(`#mutes li[data-mute="${m.id}"] button`).click();
  await until(async () => (await page.locator('#mutes').isHidden()) && (await page.locator('#rows tr.muted-row').count()) === 0, 'un-muted', 10_000, 100);
  const after = (await (await fetch(`${am.url}/api/v2/silences`)).json()) as Array<{ id: string; status: { state: string } }>;
  assert.equal(after.find((x) => x.id === m.silence)?.status.state, 'expired');
  await am.waitFor((as) => as.some((a) => a.labels.rule === 'Attach/Exec Pod' && a.status.state === 'active'), 'the alert active again');
  assert.deepEqual((await api<{ mutes: unknown[] }>('/api/v1/mutes')).body.mutes, []);

  // Muted from the detail view, un-muted from it too (any namespace, any user this time).
  await page.locator(`#rows tr[data-id="${attach.id}"]`).click();
  await page.locator('#m-ns').uncheck();
  await page.locator('#m-user').uncheck();
  await page.locator('#m-go').click();
  await page.locator('#mutes li', { hasText: 'Attach/Exec Pod · namespace any · user any' }).waitFor({ timeout: 10_000 });
  await page.locator(`#rows tr[data-id="${attach.id}"]`).click();
  await page.locator('#m-unmute').click();
  await until(async () => (await page.locator('#mutes').isHidden()) && (await page.locator('#rows tr.muted-row').count()) === 0, 'un-muted from the detail view', 10_000, 100);
  assert.deepEqual((await api<{ mutes: unknown[] }>('/api/v1/mutes')).body.mutes, []);
});

test('writes need the credentials, the page header and a JSON body', async () => {
  const body = JSON.stringify({ rule: 'Attach/Exec Pod', duration: 600 });
  const post = (headers: Record<string, string>, b = body) => fetch(`${base}/api/v1/mutes`, { method: 'POST', headers, body: b });
  assert.equal((await post({ 'content-type': 'application/json', 'x-logwarden-ui': '1' })).status, 401, 'no credentials');
  assert.equal((await post({ authorization: AUTH, 'content-type': 'application/json' })).status, 403, 'no page header (a cross-site form)');
  assert.equal((await post({ authorization: AUTH, 'content-type': 'application/json', 'x-logwarden-ui': '1', origin: 'http://evil.example' })).status, 403, 'another origin');
  assert.equal((await post({ authorization: AUTH, 'content-type': 'text/plain', 'x-logwarden-ui': '1' })).status, 400, 'not JSON');
  const bad = await post({ authorization: AUTH, 'content-type': 'application/json', 'x-logwarden-ui': '1' }, JSON.stringify({ rule: 'x', duration: 5 }));
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /duration/);
  assert.equal((await fetch(`${base}/api/v1/mutes/1`, { method: 'DELETE', headers: { authorization: AUTH, 'x-logwarden-ui': '1' } })).status, 404);
  assert.equal((await fetch(`${base}/api/v1/alerts`, { method: 'POST', headers: { authorization: AUTH } })).status, 405);
  assert.deepEqual((await api<{ mutes: unknown[] }>('/api/v1/mutes')).body.mutes, [], 'nothing was stored');
});

test('phone: no horizontal scroll, alerts first', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(base);
  await page.locator('#rows tr').first().waitFor();
  const overflow = (await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number;
  assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow}px)`);
  const fifth = await page.locator('#rows tr').nth(4).boundingBox();
  assert.ok(fifth && fifth.y + fifth.height <= 844, `five rows above the fold on a phone (5th ends at ${fifth?.y}+${fifth?.height})`);
  assert.equal(await page.locator('#f-rule').isVisible(), false, 'the filters beyond priority wait behind their button');
  await page.screenshot({ path: join(artifacts, 'ui-triage-phone.png') });
  await page.locator('#f-toggle').click();
  assert.equal(await page.locator('#f-rule').isVisible(), true);
  assert.equal(await page.locator('#chart canvas').isVisible(), true);
  await page.screenshot({ path: join(artifacts, 'ui-triage-phone-filters.png') });
  await page.locator('#f-toggle').click();
  await page.screenshot({ path: join(artifacts, 'ui-triage-phone-full.png'), fullPage: true });
  await page.setViewportSize({ width: 1400, height: 900 });
});

test('no console errors or CSP violations', () => {
  assert.deepEqual(problems, []);
});

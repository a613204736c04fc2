/**
 * The web page in a real browser (Debian's Chromium, driven by playwright-core): a real
 * `logwarden run` child process (forward input, the detect filter with the bundled rules, the ui
 * output with a SQLite file), audit events sent with `logwarden send`, alerts seen arriving live,
 * filtered, opened and counted; an attacker-controlled audit event rendered as text; the history
 * kept across a restart. Screenshots go to test-artifacts/.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { freePort, silentServer, until } from '../support/harness.js';
import { stopChild, waitReady } from '../support/child.js';
import { repoRoot, falcoCorpus } from '../support/paths.js';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const artifacts = join(repoRoot, 'test-artifacts');
const events = join(falcoCorpus, 'events');

class Logwarden {
  proc: ChildProcess | undefined;
  log = '';
  constructor(
    readonly config: string,
    readonly httpPort: number,
    readonly forwardPort: number,
  ) {}

  get base(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  async start(): Promise<void> {
    this.proc = spawn(process.execPath, [join(repoRoot, 'bin', 'logwarden.js'), 'run', '-c', this.config], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d) => (this.log += String(d)));
    this.proc.stderr!.on('data', (d) => (this.log += String(d)));
    await waitReady(this.proc, `${this.base}/readyz`, 'logwarden', () => this.log, 20_000);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    await stopChild(p);
  }

  /** `logwarden send` of an events file (waits for the ack: the chunk is routed and delivered). */
  async send(file: string): Promise<void> {
    await run(process.execPath, [join(repoRoot, 'bin', 'logwarden.js'), 'send', '-H', '127.0.0.1', '-p', String(this.forwardPort), '-t', 'kube.audit', '--ack', file], { cwd: repoRoot });
  }

  async alerts(): Promise<Array<{ id: number; rule: string; priority: string; user?: string }>> {
    const res = await fetch(`${this.base}/api/v1/alerts?limit=1000`);
    return ((await res.json()) as { alerts: Array<{ id: number; rule: string; priority: string; user?: string }> }).alerts;
  }
}

let lw: Logwarden;
let browser: BrowserContext;
let page: Page;
const problems: string[] = [];
let dir: string;

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'logwarden-ui-e2e-'));
  const [httpPort, forwardPort] = [await freePort(), await freePort()];
  const config = join(dir, 'pipeline.yaml');
  writeFileSync(
    config,
    `service:
  http_server: on
  http_listen: 127.0.0.1
  http_port: ${httpPort}
  grace: 2
  ui: on
  ui.max_alerts: 1000
  ui.db_path: ${join(dir, 'alerts.db')}
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
`,
  );
  lw = new Logwarden(config, httpPort, forwardPort);
  await lw.start();
  browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'logwarden-chromium-')), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog opened: ${d.message()}`);
    void d.dismiss();
  });
});

after(async () => {
  await browser?.close();
  await lw?.stop();
});

const rowRules = () => page.locator('#rows tr td.rule').allTextContents();

/** Polls `check` until it holds (the page updates asynchronously). */
const rowsAre = (n: number) => until(async () => (await page.locator('#rows tr').count()) === n, `${n} rows`, 10_000, 100);

test('alerts appear live, newest first, as audit events are sent', async () => {
  await page.goto(lw.base);
  await page.locator('#live[data-state="live"]').waitFor({ timeout: 10_000 });
  await page.getByText('No alerts yet').waitFor();

  await lw.send(join(events, 'create_nginx_pod_privileged.json'));
  const row = page.locator('#rows tr', { hasText: 'Create Privileged Pod' });
  await row.waitFor({ timeout: 10_000 });
  assert.equal(await row.locator('.prio').textContent(), 'Warning');
  assert.equal(await row.locator('td.user').textContent(), 'system:serviceaccount:kube-system:replicaset-controller');

  for (const f of ['attach_pod.json', 'create_cluster_role_wildcard_verbs.json', 'anonymous_creates_namespace_foo.json', 'create_nginx_pod_hostnetwork.json']) {
    await lw.send(join(events, f));
  }
  const stored = await lw.alerts();
  assert.ok(stored.length >= 5, `the bundled rules alert on each of these events: ${JSON.stringify(stored)}`);
  await rowsAre(stored.length);
  assert.deepEqual(
    await rowRules(),
    stored.map((a) => a.rule),
    'the page shows what the API holds, newest first, without a reload',
  );
  // The counts follow the rows: stats are fetched again shortly after live alerts arrive.
  await until(async () => (await page.locator('#total').textContent()) === `${stored.length} kept`, `'${stored.length} kept'`, 10_000, 100);
});

test('counts by priority and by rule match the alerts', async () => {
  const stored = await lw.alerts();
  const byPriority = new Map<string, number>();
  for (const a of stored) byPriority.set(a.priority, (byPriority.get(a.priority) ?? 0) + 1);
  const warnings = byPriority.get('Warning') ?? 0;
  await until(async () => ((await page.locator('#legend').textContent()) ?? '').includes(String(warnings)), 'the legend', 10_000, 100);
  for (const [p, n] of byPriority) {
    assert.equal(await page.locator(`#priorities .chip[data-priority="${p}"] b`).textContent(), String(n), `chip ${p}`);
    const legend = page.locator('#legend .legend-item', { hasText: p });
    assert.equal(await legend.locator('b').textContent(), String(n), `legend ${p}`);
  }
  const rule = page.locator('#rules .rule-item[data-rule="Create Privileged Pod"] b');
  assert.equal(await rule.textContent(), String(stored.filter((a) => a.rule === 'Create Privileged Pod').length));
  // The chart is drawn (uPlot canvas) and groups by rule on request.
  assert.equal(await page.locator('#chart canvas').count(), 1);
  await page.selectOption('#c-group', 'rule');
  await page.locator('#legend .legend-item', { hasText: 'Create Privileged Pod' }).waitFor();
  await page.selectOption('#c-group', 'priority');
  await page.screenshot({ path: join(artifacts, 'ui-desktop.png'), fullPage: true });
});

test('filters: priority chip, free text, namespace; the URL keeps them', async () => {
  const stored = await lw.alerts();
  const notices = stored.filter((a) => a.priority === 'Notice').map((a) => a.rule);
  assert.ok(notices.length > 0, 'attach_pod raises a Notice');
  await page.locator('#priorities .chip[data-priority="Notice"]').click();
  await rowsAre(notices.length);
  assert.deepEqual(await rowRules(), notices);
  assert.match(page.url(), /\?priority=Notice$/);
  await page.locator('#f-clear').click();
  await rowsAre(stored.length);

  await page.locator('#f-q').fill('ANONYMOUS');
  await rowsAre(1);
  assert.deepEqual(await rowRules(), ['Anonymous Request Allowed']);
  assert.match(page.url(), /q=ANONYMOUS/);
  await page.locator('#f-q').fill('');
  await page.locator('#f-namespace').fill('default');
  const inDefault = (await (await fetch(`${lw.base}/api/v1/alerts?namespace=default`)).json()) as { alerts: Array<{ rule: string }> };
  await rowsAre(inDefault.alerts.length);
  assert.deepEqual(
    await rowRules(),
    inDefault.alerts.map((a) => a.rule),
  );

  // A new alert that does not match the filters does not appear; one that matches does.
  await page.reload();
  await page.locator('#live[data-state="live"]').waitFor();
  assert.equal(await page.locator('#f-namespace').inputValue(), 'default', 'filters come back from the URL');
  await lw.send(join(events, 'create_cluster_role_wildcard_resources.json'));
  await lw.send(join(events, 'create_nginx_pod_privileged.json'));
  await rowsAre(inDefault.alerts.length + 1);
  assert.equal((await rowRules())[0], 'Create Privileged Pod');
  await page.locator('#f-clear').click();
  await rowsAre((await lw.alerts()).length);
});

test('an alert opens with its full record and output fields', async () => {
  await page.locator('#rows tr', { hasText: 'Create Privileged Pod' }).first().click();
  const dialog = page.locator('dialog#detail');
  await dialog.locator('table.fields').waitFor();
  assert.equal(await page.locator('#d-rule').textContent(), 'Create Privileged Pod');
  const user = dialog.locator('table.fields tr', { has: page.locator('th', { hasText: /^ka\.user\.name$/ }) });
  assert.equal(await user.locator('td').textContent(), 'system:serviceaccount:kube-system:replicaset-controller');
  assert.match((await dialog.locator('p.output').textContent()) ?? '', /Pod started with privileged container/);
  await dialog.locator('details summary').click();
  const full = JSON.parse((await dialog.locator('details pre.json').textContent()) ?? '{}') as Record<string, unknown>;
  assert.equal(full.rule, 'Create Privileged Pod');
  assert.equal(full.source, 'k8s_audit');
  assert.match(page.url(), /#alert-\d+$/);
  await page.screenshot({ path: join(artifacts, 'ui-detail.png') });
  await page.locator('#d-close').click();
  assert.equal(await dialog.isVisible(), false);
});

test('attacker-controlled strings in audit events are shown as text, never run', async () => {
  const base = JSON.parse(readFileSync(join(events, 'create_nginx_pod_privileged.json'), 'utf8').split('\n')[0]!) as Record<string, unknown>;
  const evil = structuredClone(base) as { user: { username: string }; objectRef: { namespace: string } };
  evil.user.username = '<img src=x onerror="window.__xss=1">';
  evil.objectRef.namespace = '<script>window.__xss=2</script>';
  const file = join(dir, 'evil.json');
  writeFileSync(file, `${JSON.stringify(evil)}\n`);
  await lw.send(file);
  const row = page.locator('#rows tr', { hasText: '<img src=x onerror="window.__xss=1">' });
  await row.waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('#rows img, #rows script').count(), 0);
  await row.click();
  await page.locator('dialog#detail table.fields').waitFor();
  assert.equal(await page.locator('dialog#detail img, dialog#detail script').count(), 0);
  assert.equal(await page.evaluate('typeof window.__xss'), 'undefined');
  await page.locator('#d-close').click();
});

test('a restart keeps the history (SQLite) and the page reconnects live', async () => {
  const before = await lw.alerts();
  const seen = problems.length;
  await lw.stop();
  await page.locator('#live[data-state="down"], #live[data-state="connecting"]').waitFor({ timeout: 10_000 });
  await page.locator('#ready', { hasText: 'unreachable' }).waitFor({ timeout: 10_000 });
  await lw.start();
  await page.locator('#live[data-state="live"]').waitFor({ timeout: 15_000 });
  await page.locator('#ready', { hasText: 'ready' }).waitFor({ timeout: 10_000 });
  // While the server was down, Chromium itself logs the refused connections, and a refresh the
  // page made then (the stats after the last live alert) warns that its fetch failed.
  const down = problems.splice(seen);
  const expectedWhileDown = (p: string) => p.includes('net::ERR_CONNECTION_REFUSED') || p.startsWith('console warning: TypeError: Failed to fetch');
  assert.deepEqual(
    down.filter((p) => !expectedWhileDown(p)),
    [],
  );
  assert.deepEqual(
    (await lw.alerts()).map((a) => a.id),
    before.map((a) => a.id),
  );
  await lw.send(join(events, 'attach_pod.json'));
  await rowsAre(before.length + 1);
  assert.equal((await rowRules())[0], 'Attach/Exec Pod');
  await page.reload();
  await rowsAre(before.length + 1);
});

test('the health panel shows the numbers of /metrics', async () => {
  const metrics = await (await fetch(`${lw.base}/metrics`)).text();
  const value = (line: RegExp) => Number(line.exec(metrics)?.[1] ?? NaN);
  const delivered = value(/^logwarden_output_proc_records_total\{name="ui\.0"\} (\S+)$/m);
  const filterIn = value(/^logwarden_filter_records_total\{name="detect\.0",result="in"\} (\S+)$/m);
  await until(
    async () =>
      ((await page.locator('#outputs [data-name="ui.0"] dl').textContent()) ?? '').includes(`delivered${delivered}`) &&
      ((await page.locator('#filters [data-name="detect.0"] dl').textContent()) ?? '').includes(`in${filterIn}`),
    'the health panel',
    10_000,
    100,
  );
  assert.equal(await page.locator('#ready').textContent(), 'ready');
  assert.equal(await page.locator('#inputs [data-name="forward.0"]').count(), 1);
});

test('sensible on a phone', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  await page.locator('#rows tr').first().waitFor();
  const overflow = (await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number;
  assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow}px)`);
  assert.equal(await page.locator('#list td.output').first().isVisible(), false, 'the output column gives way to the rule');
  await page.screenshot({ path: join(artifacts, 'ui-phone.png'), fullPage: true });
});

test('no console errors, CSP violations or dialogs on the page', () => {
  assert.deepEqual(problems, []);
});

test('the badge says stopping while the pipeline drains after SIGTERM, then unreachable', async () => {
  // Its own process, whose Loki takes the request and never answers: the drain lasts the grace period.
  const loki = await silentServer();
  const [httpPort, forwardPort] = [await freePort(), await freePort()];
  const config = join(dir, 'draining.yaml');
  writeFileSync(
    config,
    `service:
  http_server: on
  http_listen: 127.0.0.1
  http_port: ${httpPort}
  grace: 6
  ui: on
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: ${forwardPort}
  outputs:
    - name: loki
      match: kube.audit
      host: 127.0.0.1
      port: ${loki.port}
      batch_wait: 0
`,
  );
  const draining = new Logwarden(config, httpPort, forwardPort);
  const tab = await browser.newPage();
  try {
    await draining.start();
    await tab.goto(draining.base);
    await tab.locator('#ready', { hasText: 'ready' }).waitFor({ timeout: 10_000 });
    // Without --ack: with memory storage the ack would wait for Loki.
    await run(process.execPath, [join(repoRoot, 'bin', 'logwarden.js'), 'send', '-p', String(forwardPort), '-t', 'kube.audit', join(events, 'attach_pod.json')], { cwd: repoRoot });
    await until(async () => ((await tab.locator('#outputs [data-name="loki.0"] dl').textContent()) ?? '').includes('queued1'), 'the event queued for Loki', 10_000, 100);
    const stopped = draining.stop();
    await tab.locator('#ready', { hasText: 'stopping' }).waitFor({ timeout: 5_000 });
    assert.equal(await tab.locator('#ready').getAttribute('class'), 'badge warn');
    assert.doesNotMatch((await tab.locator('#ready').textContent()) ?? '', /paused/);
    await stopped;
    await tab.locator('#ready', { hasText: 'unreachable' }).waitFor({ timeout: 10_000 });
    assert.match(draining.log, /grace period over: 1 records left undelivered/);
  } finally {
    await tab.close();
    await draining.stop();
    loki.release();
  }
});

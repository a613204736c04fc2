/**
 * The alert page of a cluster: two `logwarden run` processes (forward input with filesystem
 * buffering, the detect filter with the bundled rules, the ui output and a file output) share a
 * real PostgreSQL (Debian's package, a throw-away cluster on a loopback port). Both pages, in
 * real Chromium, show every replica's alerts and update live; a restart of one process keeps the
 * history; the database stopped and started mid-run loses nothing: the alerts sent meanwhile
 * reach the file outputs at once, the pages say the store is unreachable, a replica restarted
 * during the outage keeps its undelivered alerts in its filesystem buffer, and once the database
 * is back it and both pages hold every alert (counted against the file outputs).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { freePort, until } from '../support/harness.js';
import { stopChild, waitReady } from '../support/child.js';
import { repoRoot, falcoCorpus } from '../support/paths.js';
import { PgCluster } from '../support/postgres.js';
import { MIGRATIONS } from '../../src/ui/store-pg.js';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const artifacts = join(repoRoot, 'test-artifacts');
const events = join(falcoCorpus, 'events');

class Logwarden {
  proc: ChildProcess | undefined;
  log = '';
  readonly config: string;
  readonly alertsFile: string;

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly httpPort: number,
    readonly forwardPort: number,
    storeUrl: string,
    workers = 1,
  ) {
    mkdirSync(dir, { recursive: true });
    this.config = join(dir, 'pipeline.yaml');
    this.alertsFile = join(dir, 'out', 'falco');
    writeFileSync(
      this.config,
      `service:
  http_server: on
  http_listen: 127.0.0.1
  http_port: ${httpPort}
  grace: 2
  scheduler.base: 1
  scheduler.cap: 2
  storage.path: ${join(dir, 'storage')}
  ui: on
  ui.max_alerts: 1000
  ui.store: ${storeUrl}
  workers: ${workers}
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: ${forwardPort}
      storage.type: filesystem
  filters:
    - name: detect
      match: kube.audit
      alert_tag: falco
  outputs:
    - name: ui
      match: falco
    - name: file
      match: falco
      path: ${join(dir, 'out')}
      mkdir: on
      format: json_lines
`,
    );
  }

  get base(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  async start(): Promise<void> {
    // The password comes from the environment (libpq's PGPASSWORD), not from the URL.
    this.proc = spawn(process.execPath, [join(repoRoot, 'bin', 'logwarden.js'), 'run', '-c', this.config], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PGPASSWORD: 'secret' },
    });
    this.proc.stdout!.on('data', (d) => (this.log += String(d)));
    this.proc.stderr!.on('data', (d) => (this.log += String(d)));
    await waitReady(this.proc, `${this.base}/readyz`, this.name, () => this.log, 30_000);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    await stopChild(p);
  }

  /** `logwarden send --ack`: returns once the chunk is stored (filesystem buffering acks then). */
  async send(file: string): Promise<void> {
    await run(process.execPath, [join(repoRoot, 'bin', 'logwarden.js'), 'send', '-H', '127.0.0.1', '-p', String(this.forwardPort), '-t', 'kube.audit', '--ack', file], { cwd: repoRoot });
  }

  /** Alerts the file output wrote (the same alerts the ui output was given). */
  fileAlerts(): string[] {
    if (!existsSync(this.alertsFile)) return [];
    return readFileSync(this.alertsFile, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as { rule: string }).rule);
  }
}

let pg: PgCluster;
let dir: string;
let a: Logwarden;
let b: Logwarden;
let browser: BrowserContext;
let pageA: Page;
let pageB: Page;
const problems: string[] = [];

const dbCount = async () => Number(await pg.sql('SELECT COUNT(*) FROM logwarden_alerts'));
const dbIds = async () =>
  (await pg.sql('SELECT id FROM logwarden_alerts ORDER BY id DESC'))
    .split('\n')
    .filter((x) => x !== '')
    .map(Number);
const pageIds = async (p: Page) => (await p.locator('#rows tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-id') ?? ''))).map(Number);
const rowCount = (p: Page) => p.locator('#rows tr').count();

/** Both pages list exactly the database's alerts (ids, newest first). */
async function pagesShowDatabase(what: string, ms = 30_000): Promise<void> {
  let last = '';
  try {
    await until(
      async () => {
        const ids = await dbIds();
        const [ia, ib] = [await pageIds(pageA), await pageIds(pageB)];
        last = `db ${ids.length} [${ids.slice(0, 5).join(',')}…], page A ${ia.length} [${ia.slice(0, 5).join(',')}…], page B ${ib.length} [${ib.slice(0, 5).join(',')}…]`;
        return ids.length > 0 && JSON.stringify(ia) === JSON.stringify(ids) && JSON.stringify(ib) === JSON.stringify(ids);
      },
      what,
      ms,
      200,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}: ${last}\nA:\n${a.log.slice(-3000)}\nB:\n${b.log.slice(-3000)}`);
  }
}

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  pg = await PgCluster.create();
  dir = mkdtempSync(join(tmpdir(), 'logwarden-ui-pg-e2e-'));
  a = new Logwarden('replica a', join(dir, 'a'), await freePort(), await freePort(), pg.url());
  b = new Logwarden('replica b', join(dir, 'b'), await freePort(), await freePort(), pg.url());
  // Started together: both migrate the empty database at once (the advisory lock serialises them).
  await Promise.all([a.start(), b.start()]);
  browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'logwarden-chromium-')), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 900 },
  });
  pageA = browser.pages()[0] ?? (await browser.newPage());
  pageB = await browser.newPage();
  for (const p of [pageA, pageB]) {
    p.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    p.on('dialog', (d) => {
      problems.push(`dialog opened: ${d.message()}`);
      void d.dismiss();
    });
  }
});

after(async () => {
  await browser?.close();
  await Promise.all([a?.stop(), b?.stop()]);
  await pg?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("two replicas migrate one schema; each page shows every replica's alerts, live", async () => {
  assert.equal(await pg.sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM logwarden_schema_version"), MIGRATIONS.map((_, i) => i + 1).join(','), 'every migration applied once');
  await pageA.goto(a.base);
  await pageB.goto(b.base);
  for (const p of [pageA, pageB]) await p.locator('#live[data-state="live"]').waitFor({ timeout: 15_000 });

  await a.send(join(events, 'create_nginx_pod_privileged.json'));
  await b.send(join(events, 'attach_pod.json'));
  await pagesShowDatabase('both pages show the alert of replica a and of replica b');
  const rulesA = await pageA.locator('#rows tr td.rule').allTextContents();
  assert.ok(rulesA.includes('Create Privileged Pod') && rulesA.includes('Attach/Exec Pod'), JSON.stringify(rulesA));

  // More alerts on each replica, pages not reloaded: the live streams carry the other replica's too.
  for (const f of ['create_cluster_role_wildcard_verbs.json', 'anonymous_creates_namespace_foo.json']) await a.send(join(events, f));
  for (const f of ['create_nginx_pod_hostnetwork.json', 'create_cluster_role_wildcard_resources.json']) await b.send(join(events, f));
  await pagesShowDatabase("both pages updated live with both replicas' alerts");
  assert.equal(await dbCount(), a.fileAlerts().length + b.fileAlerts().length, 'every alert of both file outputs is in the database once');
  const api = (await (await fetch(`${b.base}/api/v1/alerts?limit=1000`)).json()) as { total: number; alerts: Array<{ id: number }> };
  assert.equal(api.total, await dbCount());
  await pageA.screenshot({ path: join(artifacts, 'ui-postgres-replica-a.png') });
});

test('a restart of one replica keeps the history; the other page stays live meanwhile', async () => {
  const before = await dbCount();
  await a.stop();
  await b.send(join(events, 'create_nginx_pod_privileged.json'));
  await until(async () => (await rowCount(pageB)) === (await dbCount()) && (await dbCount()) > before, 'page b live while a is down', 20_000, 200);
  await a.start();
  await pageA.reload();
  await pageA.locator('#live[data-state="live"]').waitFor({ timeout: 15_000 });
  await pagesShowDatabase("the restarted replica's page shows the whole history");
  await a.send(join(events, 'attach_pod.json'));
  await pagesShowDatabase('the restarted replica writes again, both pages get it');
});

test('the database stopped and started mid-run: alerts go on to the other outputs, the pages say so, nothing is lost', async () => {
  const inDbBefore = await dbCount();
  const filesBefore = a.fileAlerts().length + b.fileAlerts().length;
  assert.equal(inDbBefore, filesBefore);
  await pg.stop();

  // Events keep being accepted and processed; the file outputs get their alerts while the
  // ui outputs keep theirs queued (and buffered on disk).
  for (const f of ['create_cluster_role_wildcard_verbs.json', 'attach_pod.json']) await a.send(join(events, f));
  for (const f of ['create_nginx_pod_hostnetwork.json', 'anonymous_creates_namespace_foo.json']) await b.send(join(events, f));
  await until(() => a.fileAlerts().length + b.fileAlerts().length > filesBefore, 'the file outputs get the alerts while the database is down', 20_000, 100);

  // A rollout during the outage: replica a stops with its ui alerts undelivered (they stay in its
  // filesystem buffer) and starts again while the database is still down (not fatal: the store
  // starts as unreachable and connects later).
  await a.stop();
  await a.start();
  const replayed = /^logwarden_storage_replayed_chunks_total (\d+)/m.exec(await (await fetch(`${a.base}/metrics`)).text());
  assert.ok(replayed && Number(replayed[1]) > 0, `the undelivered chunks are read back from disk: ${replayed?.[0]}`);
  await pageA.reload();

  // The page says the store is unreachable; the API answers 503 with the reason.
  for (const p of [pageA, pageB]) {
    await p.locator('#store-down').waitFor({ state: 'visible', timeout: 20_000 });
    assert.match((await p.locator('#store-down').textContent()) ?? '', /alert store unreachable/i);
  }
  const res = await fetch(`${a.base}/api/v1/alerts`);
  assert.equal(res.status, 503);
  const body = (await res.json()) as { error: string; store: { up: boolean } };
  assert.match(body.error, /^alert store unreachable: /);
  assert.equal(body.store.up, false);
  const health = (await (await fetch(`${b.base}/api/v1/health`)).json()) as { store: { kind: string; up: boolean } };
  assert.deepEqual([health.store.kind, health.store.up], ['postgres', false]);
  const metrics = await (await fetch(`${a.base}/metrics`)).text();
  assert.match(metrics, /^logwarden_ui_store_up 0$/m);
  await pageB.screenshot({ path: join(artifacts, 'ui-postgres-store-down.png') });

  await pg.start();
  const expected = a.fileAlerts().length + b.fileAlerts().length;
  assert.ok(expected > filesBefore);
  await until(async () => (await dbCount().catch(() => -1)) === expected, `all ${expected} alerts in the database after it returns`, 60_000, 250);
  for (const p of [pageA, pageB]) await p.locator('#store-down').waitFor({ state: 'hidden', timeout: 20_000 });
  await pagesShowDatabase('both pages show every alert once the database is back');
  assert.equal((await pageIds(pageA)).length, expected);
  assert.match(await (await fetch(`${a.base}/metrics`)).text(), /^logwarden_ui_store_up 1$/m);

  // LISTEN is back on both: a new alert reaches both pages live.
  await b.send(join(events, 'create_nginx_pod_privileged.json'));
  await pagesShowDatabase('live updates after the database returned');
  assert.equal(await dbCount(), a.fileAlerts().length + b.fileAlerts().length);
  await pageA.screenshot({ path: join(artifacts, 'ui-postgres-recovered.png') });
});

test('shared triage: a mute made on one replica hides and marks the group on the other; filters and export read the database', async () => {
  type Summary = { id: number; rule: string; namespace?: string; user?: string; hostname?: string; marks?: unknown[] };
  const list = async (base: string, q = '') => ((await (await fetch(`${base}/api/v1/alerts?limit=1000${q}`)).json()) as { alerts: Summary[] }).alerts;
  const all = await list(b.base);
  assert.equal(all.length, await dbCount());
  const target = all.find((x) => x.namespace !== undefined && x.user !== undefined)!;
  assert.ok(target, 'an alert with a namespace and a user');
  assert.ok(
    all.some((x) => (x.marks?.length ?? 0) > 0),
    'marks are stored and read back',
  );
  const group = (x: Summary) => x.rule === target.rule && x.namespace === target.namespace && x.user === target.user;
  const post = await fetch(`${a.base}/api/v1/mutes`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-logwarden-ui': '1' },
    body: JSON.stringify({ rule: target.rule, namespace: target.namespace, user: target.user, duration: 600 }),
  });
  assert.equal(post.status, 201, await post.clone().text());
  const { mute } = (await post.json()) as { mute: { id: number } };
  const onB = (await (await fetch(`${b.base}/api/v1/mutes`)).json()) as { mutes: Array<{ id: number; rule: string }> };
  assert.deepEqual(
    onB.mutes.map((m) => [m.id, m.rule]),
    [[mute.id, target.rule]],
    'the other replica reads the same mutes',
  );
  assert.deepEqual(
    (await list(b.base, '&muted=hide')).map((x) => x.id),
    all.filter((x) => !group(x)).map((x) => x.id),
  );
  assert.deepEqual(
    (await list(b.base, '&muted=only')).map((x) => x.id),
    all.filter(group).map((x) => x.id),
  );
  await pageB.reload();
  await until(async () => (await pageB.locator(`#rows tr[data-id="${target.id}"].muted-row`).count()) === 1, 'the row muted on page b', 15_000, 200);
  // Lists and time ranges as SQL give what the memory filters give.
  const rules = [...new Set(all.map((x) => x.rule))].slice(0, 2);
  const q = rules.map((r) => `&rule=${encodeURIComponent(r)}`).join('');
  assert.deepEqual(
    (await list(a.base, q)).map((x) => x.id),
    all.filter((x) => rules.includes(x.rule)).map((x) => x.id),
  );
  assert.equal((await list(a.base, `&since=1h&hostname=${encodeURIComponent(all[0]!.hostname ?? '')}`)).length, all.filter((x) => x.hostname === all[0]!.hostname).length);
  assert.deepEqual(await list(a.base, '&to=1000'), []);
  const csv = await (await fetch(`${b.base}/api/v1/alerts/export?format=csv`)).text();
  assert.equal(csv.split('\r\n').filter((l) => /^\d+,/.test(l)).length, all.length, 'the export holds every alert');
  const del = await fetch(`${b.base}/api/v1/mutes/${mute.id}`, { method: 'DELETE', headers: { 'x-logwarden-ui': '1' } });
  assert.equal(del.status, 200);
  assert.deepEqual(((await (await fetch(`${a.base}/api/v1/mutes`)).json()) as { mutes: unknown[] }).mutes, []);
  assert.equal((await list(a.base, '&muted=hide')).length, all.length);
});

test('service.workers: 2 with the shared store: the workers write, the primary serves every alert live', async () => {
  const c = new Logwarden('replica c (2 workers)', join(a.dir, '..', 'c'), await freePort(), await freePort(), pg.url(), 2);
  await c.start();
  const pageC = await browser.newPage();
  pageC.on('pageerror', (e) => problems.push(`page error (c): ${e.message}`));
  try {
    await pageC.goto(c.base);
    await pageC.locator('#live[data-state="live"]').waitFor({ timeout: 15_000 });
    const shows = (what: string) => until(async () => JSON.stringify(await pageIds(pageC)) === JSON.stringify((await dbIds()).slice(0, 100)), what, 30_000, 200);
    await shows("the primary's page shows the whole shared history");
    // Each `logwarden send` is one connection, handed to one worker or the other.
    const before = await dbCount();
    for (const f of ['create_nginx_pod_privileged.json', 'attach_pod.json', 'create_nginx_pod_hostnetwork.json', 'anonymous_creates_namespace_foo.json']) await c.send(join(events, f));
    await until(async () => (await dbCount()) === before + c.fileAlerts().length && c.fileAlerts().length > 0, "the workers' alerts in the database", 30_000, 200);
    await shows("the alerts of both workers reach the primary's page live");
    await pagesShowDatabase("and the other replicas' pages");
    const health = (await (await fetch(`${c.base}/api/v1/health`)).json()) as { store: { kind: string; up: boolean }; outputs: Array<{ name: string; delivered: number }> };
    assert.deepEqual([health.store.kind, health.store.up], ['postgres', true]);
    assert.equal(health.outputs.find((o) => o.name === 'ui.0')!.delivered, c.fileAlerts().length, 'health merged from the workers');
    assert.match(await (await fetch(`${c.base}/metrics`)).text(), /^logwarden_ui_store_up 1$/m, "the workers' store gauge merges as a minimum");
  } finally {
    await pageC.close();
    await c.stop();
  }
});

test('no page errors or dialogs', () => {
  assert.deepEqual(problems, []);
});

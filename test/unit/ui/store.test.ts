/**
 * The web page's alert store: retention by count and by age (on a moved clock), SQLite
 * persistence across a restart, filters, paging, the live catch-up and counts over time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { LogEvent } from '../../../src/core/event.js';
import { compileQuery, parseQuery, queryParams, summarize } from '../../../src/ui/alerts.js';
import { MemoryAlertStore, openAlertStore, type AlertStore } from '../../../src/ui/store.js';
import { Clock, falcoAlert } from '../../support/falco-alert.js';

const logger = pino({ level: 'silent' });

const alert = (rule: string, priority: string, fields: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): LogEvent => falcoAlert(rule, priority, fields, { extra });

test('keeps the newest max_alerts, oldest dropped first, ids keep increasing', async () => {
  const s = await MemoryAlertStore.open({ maxAlerts: 3, retention: 0, logger });
  for (let i = 1; i <= 5; i++) s.addSync([alert(`rule ${i}`, 'Warning')]);
  assert.equal(s.size, 3);
  assert.deepEqual(
    s.list({}, 10).alerts.map((a) => a.rule),
    ['rule 5', 'rule 4', 'rule 3'],
  );
  assert.deepEqual(
    s.list({}, 10).alerts.map((a) => a.id),
    [5, 4, 3],
  );
  assert.equal(s.getSync(2), undefined);
  assert.equal(s.getSync(3)!.summary.rule, 'rule 3');
  assert.equal(s.newestId, 5);
  // A batch larger than the store keeps only its newest part.
  s.addSync([1, 2, 3, 4].map((i) => alert(`batch ${i}`, 'Notice')));
  assert.deepEqual(
    s.list({}, 10).alerts.map((a) => a.rule),
    ['batch 4', 'batch 3', 'batch 2'],
  );
  s.closeSync();
});

test('retention by age drops alerts that arrived longer ago than ui.retention', async () => {
  const clock = new Clock();
  const s = await MemoryAlertStore.open({ maxAlerts: 100, retention: 60, logger, now: clock.now });
  s.addSync([alert('old', 'Warning')]);
  clock.t += 30_000;
  s.addSync([alert('newer', 'Warning')]);
  clock.t += 31_000; // "old" is now 61 s old, "newer" 31 s
  assert.deepEqual(
    s.list({}, 10).alerts.map((a) => a.rule),
    ['newer'],
  );
  assert.equal(s.stats({}, 3600_000, 60).total, 1);
  clock.t += 30_000;
  s.prune();
  assert.equal(s.size, 0);
  s.closeSync();
});

test('SQLite: a restart keeps the alerts, their ids and full records; retention applies at load', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-ui-'));
  const dbPath = join(dir, 'sub', 'alerts.db');
  const clock = new Clock();
  const a = await MemoryAlertStore.open({ maxAlerts: 4, retention: 3600, dbPath, logger, now: clock.now });
  a.addSync([alert('first', 'Critical', { 'ka.user.name': 'alice', 'ka.target.namespace': 'prod' })]);
  clock.t += 1000;
  a.addSync([alert('second', 'Warning', { 'ka.user.name': 'bob' }), alert('third', 'Notice', { big: 2n ** 64n })]);
  const before = a.getSync(1)!.json;
  a.closeSync();

  const b = await MemoryAlertStore.open({ maxAlerts: 4, retention: 3600, dbPath, logger, now: clock.now });
  assert.deepEqual(
    b.list({}, 10).alerts.map((x) => [x.id, x.rule]),
    [
      [3, 'third'],
      [2, 'second'],
      [1, 'first'],
    ],
  );
  assert.equal(b.getSync(1)!.json, before);
  assert.equal(b.list({ user: 'alice' }, 10).alerts[0]!.namespace, 'prod');
  // 64-bit integers keep their digits through JSON and SQLite.
  assert.match(b.getSync(3)!.json, /"big":18446744073709551616/);
  // New alerts continue the id sequence.
  b.addSync([alert('fourth', 'Error')]);
  assert.equal(b.newestId, 4);
  b.closeSync();

  // A smaller max_alerts and an elapsed retention trim the file when it is loaded.
  clock.t += 3600_000 - 500; // "first" (received 1 s earlier) is past retention, the others not
  const c = await MemoryAlertStore.open({ maxAlerts: 2, retention: 3600, dbPath, logger, now: clock.now });
  assert.deepEqual(
    c.list({}, 10).alerts.map((x) => x.rule),
    ['fourth', 'third'],
  );
  c.closeSync();
  const d = await MemoryAlertStore.open({ maxAlerts: 10, retention: 0, dbPath, logger, now: clock.now });
  assert.deepEqual(
    d.list({}, 10).alerts.map((x) => x.rule),
    ['fourth', 'third'],
    'rows trimmed at load stay deleted',
  );
  d.closeSync();
});

test('SQLite: a file that is no database is a clear error naming it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-ui-'));
  const dbPath = join(dir, 'alerts.db');
  writeFileSync(dbPath, 'this is not a database, just text long enough to have a header page'.repeat(20));
  await assert.rejects(MemoryAlertStore.open({ maxAlerts: 10, retention: 0, dbPath, logger }), (e: Error) => e.message.startsWith(`ui.db_path ${dbPath}:`));
});

test('filters: priority list, rule, tag, namespace, user, free text; paging with before', async () => {
  const s = await MemoryAlertStore.open({ maxAlerts: 100, retention: 0, logger });
  s.addSync([
    alert('Create Privileged Pod', 'Warning', { 'ka.user.name': 'alice', 'ka.target.namespace': 'prod' }),
    alert('Attach/Exec Pod', 'Notice', { 'ka.user.name': 'bob', 'ka.target.namespace': 'dev' }),
    alert('Create Privileged Pod', 'warning', { 'ka.user.name': 'carol', 'ka.target.namespace': 'dev' }),
    alert('K8s Secret Created', 'info', { 'ka.user.name': 'alice' }, { tags: ['k8s', 'secrets'] }),
  ]);
  const rules = (q: Record<string, string>) => s.list(parseQuery(new URLSearchParams(q)), 10).alerts.map((a) => `${a.rule}/${a.user}`);
  assert.deepEqual(rules({ priority: 'Warning' }), ['Create Privileged Pod/carol', 'Create Privileged Pod/alice'], 'priorities compared canonically');
  assert.deepEqual(rules({ priority: 'notice,informational' }), ['K8s Secret Created/alice', 'Attach/Exec Pod/bob']);
  assert.deepEqual(rules({ rule: 'Attach/Exec Pod' }), ['Attach/Exec Pod/bob']);
  assert.deepEqual(rules({ tag: 'secrets' }), ['K8s Secret Created/alice']);
  assert.deepEqual(rules({ namespace: 'dev' }), ['Create Privileged Pod/carol', 'Attach/Exec Pod/bob']);
  assert.deepEqual(rules({ user: 'alice', namespace: 'prod' }), ['Create Privileged Pod/alice']);
  assert.deepEqual(rules({ q: 'ATTACH' }), ['Attach/Exec Pod/bob'], 'free text is case-insensitive');
  assert.deepEqual(rules({ q: 'carol' }), ['Create Privileged Pod/carol']);
  assert.deepEqual(rules({ q: 'nothing like this' }), []);

  const first = s.list({}, 2);
  assert.equal(first.more, true);
  assert.deepEqual(
    first.alerts.map((a) => a.id),
    [4, 3],
  );
  const next = s.list({}, 2, first.alerts[1]!.id);
  assert.deepEqual(
    next.alerts.map((a) => a.id),
    [2, 1],
  );
  assert.equal(next.more, false);
  s.closeSync();
});

test('the client and the server read the same query from the URL', () => {
  const q = parseQuery(new URLSearchParams('priority=warning,Critical&rule=R&q=x&namespace=&user=u'));
  assert.deepEqual(q, { priority: ['Warning', 'Critical'], rule: ['R'], q: 'x', user: 'u' });
  assert.deepEqual(parseQuery(queryParams(q)), q);
  const m = compileQuery(q);
  const s = summarize(1, 0, 'falco', { rule: 'R', priority: 'WARNING', output: 'a X b', output_fields: { 'ka.user.name': 'u' } }, '');
  assert.equal(m(s), true);
  assert.equal(m({ ...s, user: 'v' }), false);
});

test('records are data: __proto__ keys in output_fields are neither read through nor polluting', async () => {
  const s = await MemoryAlertStore.open({ maxAlerts: 10, retention: 0, logger });
  const fields = JSON.parse('{"__proto__": {"polluted": true}, "ka.user.name": "mallory"}') as Record<string, unknown>;
  s.addSync([alert('R', 'Warning', fields)]);
  const a = s.list({}, 1).alerts[0]!;
  assert.equal(a.user, 'mallory');
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.match(s.getSync(a.id)!.json, /"__proto__":\{"polluted":true\}/);
  const st = s.stats({ rule: ['__proto__'] }, 3600_000, 10);
  assert.equal(st.total, 0);
  s.closeSync();
});

test('since: alerts after an id, matching the query, at most the newest N', async () => {
  const s = await MemoryAlertStore.open({ maxAlerts: 100, retention: 0, logger });
  for (let i = 1; i <= 6; i++) s.addSync([alert(`r${i}`, i % 2 ? 'Warning' : 'Notice')]);
  assert.deepEqual(
    s.sinceSync(2, {}, 100).map((a) => a.summary.id),
    [3, 4, 5, 6],
  );
  assert.deepEqual(
    s.sinceSync(2, { priority: ['Warning'] }, 100).map((a) => a.summary.id),
    [3, 5],
  );
  assert.deepEqual(
    s.sinceSync(0, {}, 2).map((a) => a.summary.id),
    [5, 6],
  );
  assert.deepEqual(s.sinceSync(6, {}, 10), []);
  s.closeSync();
});

test('stats: facet counts, counts per bucket by priority and by rule (top rules, the rest as other)', async () => {
  const clock = new Clock();
  clock.t = 1_800_000_000_000; // a whole minute
  const s = await MemoryAlertStore.open({ maxAlerts: 1000, retention: 0, logger, now: clock.now });
  s.addSync([alert('A', 'Warning'), alert('A', 'Critical'), alert('B', 'Warning')]);
  clock.t += 60_000;
  s.addSync([alert('A', 'Warning')]);
  for (let i = 0; i < 10; i++) s.addSync([alert(`X${i}`, 'Notice')]);
  const st = s.stats({ priority: ['Warning'] }, 10 * 60_000, 10);
  assert.equal(st.total, 3);
  // byPriority ignores the priority filter; byRule does not.
  assert.deepEqual({ ...st.byPriority }, { Warning: 3, Critical: 1, Notice: 10 });
  assert.deepEqual({ ...st.byRule }, { A: 2, B: 1 });
  assert.equal(st.series.step, 60_000);
  const w = st.series.byPriority.Warning!;
  assert.equal(w.length, 10);
  assert.deepEqual(w.slice(-2), [2, 1], 'two Warnings one minute ago, one in the current minute');
  assert.equal(st.series.start + 10 * st.series.step > clock.t, true);
  assert.deepEqual(Object.keys(st.series.byPriority), ['Warning']);

  const all = s.stats({}, 10 * 60_000, 10);
  assert.deepEqual(Object.keys(all.series.byPriority), ['Critical', 'Warning', 'Notice'], 'most severe first');
  assert.equal(Object.keys(all.series.byRule).length, 9, '8 rules and (other rules)');
  assert.equal(
    all.series.byRule.A!.reduce((x, y) => x + y, 0),
    3,
  );
  const other = all.series.byRule['(other rules)']!.reduce((x, y) => x + y, 0);
  const drawn = Object.entries(all.series.byRule).reduce((n, [, v]) => n + v.reduce((x, y) => x + y, 0), 0);
  assert.equal(drawn, 14);
  assert.ok(other >= 1);
  assert.deepEqual(all.values.rules.slice(0, 2), ['A', 'B']);
  s.closeSync();
});

test('live listeners get every added batch until they unsubscribe', async () => {
  const s = await MemoryAlertStore.open({ maxAlerts: 10, retention: 0, logger });
  const seen: number[] = [];
  const off = s.subscribe((added) => seen.push(...added.map((a) => a.summary.id)));
  s.addSync([alert('a', 'Warning'), alert('b', 'Warning')]);
  off();
  s.addSync([alert('c', 'Warning')]);
  assert.deepEqual(seen, [1, 2]);
  s.closeSync();
});

test('the AlertStore interface: add resolves to the stored alerts, query pages with totals, listeners see each batch once', async () => {
  const s: AlertStore = await openAlertStore({ maxAlerts: 3, retention: 0, logger });
  assert.equal(s.kind, 'memory');
  assert.deepEqual(s.status(), { kind: 'memory', up: true });
  const seen: number[][] = [];
  const off = s.subscribe((added) => seen.push(added.map((a) => a.summary.id)));
  const added = await s.add([alert('a', 'Warning'), alert('b', 'Notice')]);
  assert.deepEqual(
    added.map((a) => [a.summary.id, a.summary.rule]),
    [
      [1, 'a'],
      [2, 'b'],
    ],
  );
  assert.deepEqual(await s.add([]), []);
  await s.add([alert('c', 'Warning'), alert('d', 'Warning')]);
  off();
  await s.add([alert('e', 'Warning')]);
  assert.deepEqual(seen, [
    [1, 2],
    [3, 4],
  ]);
  const page = await s.query({ priority: ['Warning'] }, { limit: 1 });
  assert.deepEqual([page.alerts.map((a) => a.rule), page.more, page.total], [['e'], true, 3]);
  const older = await s.query({ priority: ['Warning'] }, { limit: 5, before: page.alerts[0]!.id });
  assert.deepEqual([older.alerts.map((a) => a.rule), older.more], [['d', 'c'], false]);
  assert.equal(await s.newest(), 5);
  assert.equal((await s.get(5))!.summary.rule, 'e');
  assert.equal(await s.get(1), undefined, 'pushed out by maxAlerts');
  assert.equal((await s.counts({}, 60_000, 6)).total, 3);
  assert.deepEqual(
    (await s.since(3, {}, 10)).map((a) => a.summary.id),
    [4, 5],
  );
  await s.close();
  await assert.rejects(openAlertStore({ maxAlerts: 3, retention: 0, logger, store: 'redis://x' }), /ui\.store/);
});

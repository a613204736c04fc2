/**
 * The page's triage logic: the list filters (multi-valued, time range, hostname, source, muted),
 * the output-field marks, CSV / JSON lines export, mutes with their expiry (memory and SQLite),
 * the mute request checks and the Alertmanager silence matchers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { LogEvent } from '../../../src/core/event.js';
import { compileQuery, outputMarks, parseQuery, parseSeconds, queryParams, resolveQuery, summarize, type AlertSummary } from '../../../src/ui/alerts.js';
import { csvField, csvHeader, csvRow, exportFileName, jsonLine } from '../../../src/ui/export.js';
import { readMute } from '../../../src/ui/server.js';
import { silenceMatchers } from '../../../src/ui/silences.js';
import { MemoryAlertStore } from '../../../src/ui/store.js';
import { Clock, falcoAlert } from '../../support/falco-alert.js';

const logger = pino({ level: 'silent' });

const alert = (rule: string, priority: string, fields: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): LogEvent => falcoAlert(rule, priority, fields, { extra });

const sum = (over: Partial<AlertSummary>): AlertSummary => ({
  id: 1,
  received: 1000,
  time: '',
  tag: 'falco',
  rule: 'R',
  priority: 'Warning',
  source: 'k8s_audit',
  output: '',
  tags: [],
  ...over,
});

test('parseQuery reads repeated list filters, time range, muted; queryParams writes them back', () => {
  const errors: string[] = [];
  const q = parseQuery(new URLSearchParams('rule=A&rule=B,C&tag=t1&tag=t2&hostname=h&source=syscall&since=15m&from=2026-01-02T03:04:05Z&to=1800000000000&muted=hide'), errors);
  assert.deepEqual(errors, []);
  assert.deepEqual(q, {
    rule: ['A', 'B,C'],
    tag: ['t1', 't2'],
    hostname: ['h'],
    source: ['syscall'],
    since: 900,
    from: Date.parse('2026-01-02T03:04:05Z'),
    to: 1_800_000_000_000,
    muted: 'hide',
  });
  assert.deepEqual(parseQuery(queryParams(q)), q, 'a round trip through the URL keeps the query');
  assert.deepEqual(parseQuery(new URLSearchParams('muted=show')), {}, 'show is the default');
});

test('parseQuery reports what it cannot read', () => {
  const errors: string[] = [];
  const q = parseQuery(new URLSearchParams('since=soon&from=yesterday&to=2026-13-45T00:00:00Z&muted=maybe&since=0'), errors);
  assert.deepEqual(q, {});
  assert.equal(errors.length, 4, errors.join('\n'));
  assert.match(errors[0]!, /^from: found "yesterday"/);
  assert.match(errors[1]!, /^to: /);
  assert.match(errors[2]!, /^since: found "soon"/);
  assert.match(errors[3]!, /^muted: found "maybe"/);
  assert.equal(parseSeconds('7d'), 604800);
  assert.equal(parseSeconds('2w'), 1209600);
  assert.equal(parseSeconds('1.5h'), undefined);
});

test('compileQuery: lists are "any of", filters combine with "and", time range is on received', () => {
  const a = sum({ rule: 'A', tags: ['k8s', 'mitre'], hostname: 'h1', source: 'k8s_audit', received: 5000 });
  const b = sum({ rule: 'B', tags: ['k8s'], source: 'syscall', received: 9000 });
  const match = (q: Parameters<typeof compileQuery>[0]) => [a, b].filter(compileQuery(q, { now: 10_000 })).map((x) => x.rule);
  assert.deepEqual(match({ rule: ['A', 'B'] }), ['A', 'B']);
  assert.deepEqual(match({ rule: ['B', 'Z'] }), ['B']);
  assert.deepEqual(match({ tag: ['mitre', 'other'] }), ['A'], 'any of the tags');
  assert.deepEqual(match({ hostname: ['h1'] }), ['A']);
  assert.deepEqual(match({ hostname: ['h2'] }), [], 'an alert without hostname never matches a hostname filter');
  assert.deepEqual(match({ source: ['syscall'] }), ['B']);
  assert.deepEqual(match({ rule: ['A', 'B'], source: ['syscall'] }), ['B']);
  assert.deepEqual(match({ from: 5000 }), ['A', 'B'], 'from is inclusive');
  assert.deepEqual(match({ from: 5001 }), ['B']);
  assert.deepEqual(match({ to: 9000 }), ['A'], 'to is exclusive');
  assert.deepEqual(match({ since: 2 }), ['B'], 'since: the last 2 s before now (10 000 ms)');
  assert.deepEqual(match({ since: 6 }), ['A', 'B']);
  assert.deepEqual(resolveQuery({ since: 2, from: 9500 }, 10_000), { from: 9500 }, 'the later of since and from');
  assert.deepEqual(resolveQuery({ since: 2, from: 100 }, 10_000), { from: 8000 });
});

test('compileQuery: muted hides or keeps the alerts an active mute covers', () => {
  const mutes = [{ id: 1, rule: 'A', namespace: 'prod', created: 0, until: 100 }];
  const inProd = sum({ rule: 'A', namespace: 'prod', user: 'u1' });
  const inDev = sum({ rule: 'A', namespace: 'dev', user: 'u1' });
  const other = sum({ rule: 'B', namespace: 'prod' });
  const all = [inProd, inDev, other];
  assert.deepEqual(all.filter(compileQuery({ muted: 'hide' }, { mutes })), [inDev, other]);
  assert.deepEqual(all.filter(compileQuery({ muted: 'only' }, { mutes })), [inProd]);
  assert.deepEqual(all.filter(compileQuery({}, { mutes })), all, 'shown by default');
  const anyNs = [{ id: 2, rule: 'A', user: 'u1', created: 0, until: 100 }];
  assert.deepEqual(all.filter(compileQuery({ muted: 'only' }, { mutes: anyNs })), [inProd, inDev], 'an absent namespace means any');
});

test('output marks: output_fields values at word boundaries, longest first, never overlapping', () => {
  const out = 'Pod started (user=system:anonymous pod=nginx-1 ns=default image=nginx)';
  const marks = outputMarks(out, {
    'ka.user.name': 'system:anonymous',
    'ka.resp.name': 'nginx-1',
    'ka.target.namespace': 'default',
    'ka.req.pod.containers.image': 'nginx',
    missing: '<NA>',
    empty: '',
  });
  assert.deepEqual(
    marks.map(([s, e, f]) => [out.slice(s, e), f]),
    [
      ['system:anonymous', 'ka.user.name'],
      ['nginx-1', 'ka.resp.name'],
      ['default', 'ka.target.namespace'],
      ['nginx', 'ka.req.pod.containers.image'],
    ],
    '"nginx" inside "nginx-1" is covered by the longer value; the second nginx is its own',
  );
  assert.deepEqual(
    outputMarks('count=10 n=0', { n: '0' }).map(([s, e]) => 'count=10 n=0'.slice(s, e)),
    ['0'],
    'not the 0 of 10',
  );
  assert.deepEqual(outputMarks('x', null), []);
  const s = summarize(1, 0, 'falco', { rule: 'R', output: 'user=bob', output_fields: { 'ka.user.name': 'bob' } }, '');
  assert.deepEqual(s.marks, [[5, 8, 'ka.user.name']]);
  assert.equal(summarize(1, 0, 'falco', { rule: 'R', output: 'nothing' }, '').marks, undefined);
});

test('CSV export: RFC 4180 quoting, CRLF, formula cells defused; JSON lines one alert a line', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`);
  assert.equal(csvField('+1'), "'+1");
  assert.equal(csvField('@SUM(A1)'), "'@SUM(A1)");
  assert.equal(csvHeader(), 'id,received,time,priority,rule,source,hostname,namespace,user,tags,output\r\n');
  const row = csvRow(sum({ id: 7, received: Date.UTC(2026, 0, 2, 3, 4, 5), time: '2026-01-02T03:04:00.000000000Z', rule: 'R, with comma', tags: ['a', 'b'], output: 'x "y"\nz', user: 'u' }));
  assert.equal(row, '7,2026-01-02T03:04:05.000Z,2026-01-02T03:04:00.000000000Z,Warning,"R, with comma",k8s_audit,,,u,"a,b","x ""y""\nz"\r\n');
  assert.equal(jsonLine('{"a":1}'), '{"a":1}\n');
  assert.equal(exportFileName('csv', Date.UTC(2026, 0, 2, 3, 4, 5, 678)), 'logwarden-alerts-20260102T030405Z.csv');
});

test('mutes: stored, listed soonest-ending first, hidden by the muted filter, dropped when they end', async () => {
  const clock = new Clock();
  const s = await MemoryAlertStore.open({ maxAlerts: 100, retention: 0, logger, now: clock.now });
  s.addSync([
    alert('A', 'Warning', { 'ka.user.name': 'alice', 'ka.target.namespace': 'prod' }),
    alert('A', 'Warning', { 'ka.user.name': 'bob', 'ka.target.namespace': 'prod' }),
    alert('B', 'Notice', { 'ka.user.name': 'alice' }),
  ]);
  const long = await s.addMute({ rule: 'B', until: clock.t + 3600_000 });
  const short = await s.addMute({ rule: 'A', namespace: 'prod', user: 'alice', until: clock.t + 60_000, comment: 'known', by: 'admin' });
  assert.deepEqual(await s.mutes(), [short, long]);
  assert.equal(short.created, clock.t);
  const rules = async (muted?: 'hide' | 'only') => (await s.query(muted ? { muted } : {}, { limit: 10 })).alerts.map((a) => `${a.rule}/${a.user}`);
  assert.deepEqual(await rules('hide'), ['A/bob']);
  assert.deepEqual(await rules('only'), ['B/alice', 'A/alice']);
  assert.equal((await s.counts({ muted: 'hide' }, 3600_000, 10)).total, 1);
  clock.t += 60_000;
  assert.deepEqual(await s.mutes(), [long], 'a mute ends at its until');
  assert.deepEqual(await rules('hide'), ['A/bob', 'A/alice']);
  assert.equal(await s.removeMute(short.id), undefined, 'an ended mute cannot be removed');
  assert.deepEqual(await s.removeMute(long.id), long);
  assert.deepEqual(await s.mutes(), []);
  await s.close();
});

test('mutes survive a restart in the SQLite file; ended ones are not loaded', async () => {
  const clock = new Clock();
  const dbPath = join(mkdtempSync(join(tmpdir(), 'logwarden-mutes-')), 'alerts.db');
  const s1 = await MemoryAlertStore.open({ maxAlerts: 100, retention: 0, dbPath, logger, now: clock.now });
  const keep = await s1.addMute({ rule: 'A', namespace: 'prod', until: clock.t + 3600_000, silence: 'abc-123', by: 'admin', comment: 'c' });
  await s1.addMute({ rule: 'B', until: clock.t + 60_000 });
  const gone = await s1.addMute({ rule: 'C', until: clock.t + 120_000 });
  assert.ok(await s1.removeMute(gone.id));
  await s1.close();
  clock.t += 90_000;
  const s2 = await MemoryAlertStore.open({ maxAlerts: 100, retention: 0, dbPath, logger, now: clock.now });
  assert.deepEqual(await s2.mutes(), [keep]);
  const next = await s2.addMute({ rule: 'D', until: clock.t + 600_000 });
  assert.ok(next.id > gone.id, 'ids are not reused');
  await s2.close();
});

test('a mute request is checked field by field', () => {
  const now = 1_800_000_000_000;
  assert.deepEqual(readMute({ rule: 'R', namespace: 'ns', user: null, duration: 3600, comment: '' }, now), { rule: 'R', namespace: 'ns', until: now + 3600_000 });
  assert.deepEqual(readMute({ rule: 'R', until: now + 120_000 }, now), { rule: 'R', until: now + 120_000 });
  const bad: Array<[unknown, RegExp]> = [
    [[], /JSON object/],
    [{ rule: '', duration: 600 }, /rule/],
    [{ rule: 'R' }, /either duration/],
    [{ rule: 'R', duration: 600, until: now + 600_000 }, /either duration/],
    [{ rule: 'R', duration: 10 }, /duration: expected whole seconds from 60/],
    [{ rule: 'R', duration: 1e9 }, /duration/],
    [{ rule: 'R', duration: 60.5 }, /duration/],
    [{ rule: 'R', until: now - 1 }, /until/],
    [{ rule: 'R', duration: 600, namespace: 5 }, /namespace/],
    [{ rule: 'R', duration: 600, comment: 'x'.repeat(1001) }, /comment/],
    [{ rule: 'R', duration: 600, admin: true }, /unknown field "admin"/],
  ];
  for (const [body, re] of bad) assert.throws(() => readMute(body, now), re, JSON.stringify(body).slice(0, 80));
});

test('silence matchers are the labels the alertmanager output puts on the alert', () => {
  assert.deepEqual(silenceMatchers({ rule: 'Attach/Exec Pod', namespace: 'default', user: 'alice' }), [
    { name: 'rule', value: 'Attach/Exec Pod', isRegex: false, isEqual: true },
    { name: 'ka_target_namespace', value: 'default', isRegex: false, isEqual: true },
    { name: 'ka_user_name', value: 'alice', isRegex: false, isEqual: true },
  ]);
  assert.deepEqual(silenceMatchers({ rule: 'R' }), [{ name: 'rule', value: 'R', isRegex: false, isEqual: true }]);
});

test('counts list the hostnames and sources seen, for the filter choices', async () => {
  const s = await MemoryAlertStore.open({ maxAlerts: 100, retention: 0, logger });
  s.addSync([alert('A', 'Warning', {}, { hostname: 'n2' }), alert('B', 'Warning', {}, { source: 'syscall' }), alert('C', 'Warning', {}, { hostname: undefined })]);
  const st = await s.counts({ hostname: ['n2'] }, 3600_000, 10);
  assert.deepEqual(st.values.hostnames, ['n2', 'node-1']);
  assert.deepEqual(st.values.sources, ['k8s_audit', 'syscall']);
  assert.equal(st.total, 1);
  await s.close();
});

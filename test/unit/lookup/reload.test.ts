/** lookup filter: the table follows its file, and a bad or missing file never stops events. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { lookup } from '../../../src/filters/lookup/index.js';
import { buildFilters, counterValue, tempDir, writePipeline } from '../../support/filter-pipeline.js';
import { until } from '../../support/harness.js';

const noEmit = { emit: () => assert.fail('lookup must not emit') };
const ev = (u: string): LogEvent => ({ tag: 't', time: new EventTime(1, 0), record: { u } });

async function setup(csv: string) {
  const dir = tempDir();
  const table = join(dir, 'teams.csv');
  writeFileSync(table, csv);
  const file = writePipeline(dir, { pipeline: { filters: [{ name: 'lookup', match: '*', file: 'teams.csv', lookup_key: '$u', result_key: 'team', reload_interval: '20ms' }] } });
  const built = await buildFilters(file, lookup);
  const f = built.filters[0]!;
  const team = (u: string) => f.filter([ev(u)], noEmit)[0]!.record.team;
  const reloads = (result: string) => counterValue(built.metrics, 'logwarden_lookup_reloads_total', { result });
  return { ...built, f, dir, table, team, reloads };
}

test('the table is reloaded when its file changes, also when replaced by rename', async (t) => {
  const s = await setup('user,team\nalice,payments\n');
  t.after(() => s.f.close?.());
  assert.equal(s.team('alice'), 'payments');
  assert.equal(s.team('bob'), undefined);
  writeFileSync(s.table, 'user,team\nalice,search\nbob,infra\n');
  await until(async () => (await s.reloads('ok')) === 1, 'the reload');
  assert.equal(s.team('alice'), 'search');
  assert.equal(s.team('bob'), 'infra');
  assert.equal(await counterValue(s.metrics, 'logwarden_lookup_table_rows'), 2);

  // An atomic replace (write elsewhere, rename over), as editors and config tools do.
  writeFileSync(join(s.dir, 'next.csv'), 'user,team\ncarol,security\n');
  renameSync(join(s.dir, 'next.csv'), s.table);
  await until(async () => (await s.reloads('ok')) === 2, 'the second reload');
  assert.equal(s.team('carol'), 'security');
  assert.equal(s.team('alice'), undefined);
  assert.ok(s.logs.some((l) => l.msg === 'lookup table reloaded' && l.rows === 1));
});

test('a malformed rewrite keeps the previous table, logs where, counts it', async (t) => {
  const s = await setup('user,team\nalice,payments\n');
  t.after(() => s.f.close?.());
  writeFileSync(s.table, 'user,team\nalice,search\nbob,"infra\n');
  await until(async () => (await s.reloads('failed')) === 1, 'the failed reload');
  assert.equal(s.team('alice'), 'payments');
  const warn = s.logs.find((l) => l.level === 40);
  assert.match(String(warn?.msg), /cannot reload lookup table .*teams\.csv:3: malformed CSV: Quote Not Closed.*; keeping the previous table/);
  assert.equal(await s.reloads('ok'), 0);

  writeFileSync(s.table, 'user,team\nalice,search\n');
  await until(async () => (await s.reloads('ok')) === 1, 'the reload after the fix');
  assert.equal(s.team('alice'), 'search');
});

test('a table file that disappears at run time: events keep flowing with the previous table, then it comes back', async (t) => {
  const s = await setup('user,team\nalice,payments\n');
  t.after(() => s.f.close?.());
  rmSync(s.table);
  await until(async () => (await s.reloads('failed')) >= 1, 'the failed reload');
  const out = s.f.filter([ev('alice'), ev('nobody')], noEmit);
  assert.equal(out.length, 2, 'no event is dropped');
  assert.equal(out[0]!.record.team, 'payments');
  assert.match(String(s.logs.find((l) => l.level === 40)?.msg), /cannot reload lookup table .*teams\.csv: ENOENT/);
  assert.equal(await counterValue(s.metrics, 'logwarden_lookup_records_total', { result: 'found' }), 1);

  writeFileSync(s.table, 'user,team\nalice,back\n');
  await until(async () => (await s.reloads('ok')) === 1, 'the reload once the file is back');
  assert.equal(s.team('alice'), 'back');
});

test('a reload that changes the table shape against the options is refused', async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'ns.yaml'), 'kube-system:\n  owner: platform\n');
  const file = writePipeline(dir, { pipeline: { filters: [{ name: 'lookup', match: '*', file: 'ns.yaml', lookup_key: '$u', reload_interval: '20ms' }] } });
  const { filters, metrics, logs } = await buildFilters(file, lookup);
  const f = filters[0]!;
  t.after(() => f.close?.());
  writeFileSync(join(dir, 'ns.yaml'), 'kube-system: platform\n');
  await until(async () => (await counterValue(metrics, 'logwarden_lookup_reloads_total', { result: 'failed' })) === 1, 'the failed reload');
  assert.match(String(logs.find((l) => l.level === 40)?.msg), /maps each key to one value, which has no field name: set result_key/);
  assert.equal(f.filter([ev('kube-system')], noEmit)[0]!.record.owner, 'platform');
});

test('reload_interval 0 never reloads; close stops watching', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 't.csv'), 'user,team\nalice,a\n');
  const file = writePipeline(dir, { pipeline: { filters: [{ name: 'lookup', match: '*', file: 't.csv', lookup_key: '$u', result_key: 'team', reload_interval: 0 }] } });
  const { filters } = await buildFilters(file, lookup);
  writeFileSync(join(dir, 't.csv'), 'user,team\nalice,b\n');
  await sleep(300);
  assert.equal(filters[0]!.filter([ev('alice')], noEmit)[0]!.record.team, 'a');

  const s = await setup('user,team\nalice,a\n');
  await s.f.close?.();
  writeFileSync(s.table, 'user,team\nalice,b\n');
  await sleep(300);
  assert.equal(s.team('alice'), 'a');
  assert.equal(await s.reloads('ok'), 0);
});

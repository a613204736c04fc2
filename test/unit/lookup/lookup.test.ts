/** lookup filter: every option, CSV and YAML tables, load-time errors with positions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, ConfigErrors } from '../../../src/config/errors.js';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { encode } from '../../../src/core/msgpack.js';
import type { FilterInstance } from '../../../src/core/plugin.js';
import { lookup } from '../../../src/filters/lookup/index.js';
import { buildFilters, counterValue, tempDir, writePipeline, type BuiltFilters } from '../../support/filter-pipeline.js';
import { assertSameRecord, plain, recordsAround, wire } from '../../support/bytes-records.js';
import { WireEvent } from '../../../src/core/wire-event.js';

const noEmit = { emit: () => assert.fail('lookup must not emit') };
const T0 = new EventTime(1700000000, 0);
const ev = (record: Record<string, unknown>): LogEvent => ({ tag: 'kube.audit', time: T0, record });

const USERS_CSV = 'username,team,owner\nalice,payments,carol\nbob,"search, infra",dave\n';

async function build(files: Record<string, string>, options: Record<string, unknown>): Promise<BuiltFilters & { f: FilterInstance; dir: string }> {
  const dir = tempDir();
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const file = writePipeline(dir, { pipeline: { filters: [{ name: 'lookup', match: '*', reload_interval: 0, ...options }] } });
  const built = await buildFilters(file, lookup);
  return { ...built, f: built.filters[0]!, dir };
}

async function errorsOf(files: Record<string, string>, pipelineText: string): Promise<string[]> {
  const dir = tempDir();
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const file = writePipeline(dir, pipelineText);
  try {
    await buildFilters(file, lookup);
  } catch (e) {
    const list = e instanceof ConfigErrors ? e.errors : e instanceof ConfigError ? [e] : null;
    if (!list) throw e;
    return list.map((x) => x.message.replaceAll(`${dir}/`, ''));
  }
  return assert.fail('expected a configuration error');
}

const HEAD = 'pipeline:\n  filters:\n    - name: lookup\n      match: "*"\n';

test("a two-column CSV with result_key behaves as Fluent Bit's lookup filter", async () => {
  const { f, metrics } = await build({ 'envs.csv': 'host,environment\nweb-1,prod\ndb-1,staging\n' }, { file: 'envs.csv', lookup_key: '$hostname', result_key: 'env' });
  const inputs = [ev({ hostname: 'web-1', msg: 'a' }), ev({ hostname: 'host' }), ev({ msg: 'no hostname' })];
  const out = f.filter(inputs, noEmit);
  assert.deepEqual(out[0]!.record, { hostname: 'web-1', msg: 'a', env: 'prod' });
  assert.equal(out[1], inputs[1], 'the header row is not data');
  assert.equal(out[2], inputs[2], 'not found and no default: the same event');
  assert.deepEqual(inputs[0]!.record, { hostname: 'web-1', msg: 'a' }, 'the input record is not changed');
  assert.equal(await counterValue(metrics, 'logwarden_lookup_records_total', { result: 'found' }), 1);
  assert.equal(await counterValue(metrics, 'logwarden_lookup_records_total', { result: 'not_found' }), 2);
});

test('a two-column CSV without result_key merges the value under its column name', async () => {
  const { f } = await build({ 'envs.csv': 'host,environment\nweb-1,prod\n' }, { file: 'envs.csv', lookup_key: 'hostname' });
  assert.deepEqual(f.filter([ev({ hostname: 'web-1' })], noEmit)[0]!.record, { hostname: 'web-1', environment: 'prod' });
});

test("a wider CSV merges the row's other columns, or puts them under result_key", async () => {
  const merged = await build({ 'users.csv': USERS_CSV }, { file: 'users.csv', lookup_key: "$user['username']" });
  const record = { verb: 'get', user: { username: 'bob', groups: ['dev'] } };
  assert.deepEqual(merged.f.filter([ev(record)], noEmit)[0]!.record, { ...record, team: 'search, infra', owner: 'dave' });
  const nested = await build({ 'users.csv': USERS_CSV }, { file: 'users.csv', lookup_key: "$user['username']", result_key: 'owner_info' });
  assert.deepEqual(nested.f.filter([ev(record)], noEmit)[0]!.record, { ...record, owner_info: { team: 'search, infra', owner: 'dave' } });
});

test('key_column picks the key column; an array index in the accessor', async () => {
  const { f } = await build({ 'users.csv': USERS_CSV }, { file: 'users.csv', key_column: 'team', lookup_key: '$groups[1]', result_key: 'who' });
  const out = f.filter([ev({ groups: ['x', 'payments'] }), ev({ groups: ['payments'] })], noEmit);
  assert.deepEqual(out[0]!.record.who, { username: 'alice', owner: 'carol' });
  assert.ok(!('who' in out[1]!.record));
});

test('numbers and booleans are looked up by their text', async () => {
  const { f } = await build({ 'uids.csv': 'uid,name\n1001,alice\ntrue,yes\n' }, { file: 'uids.csv', lookup_key: '$uid', result_key: 'name' });
  const out = f.filter([ev({ uid: 1001 }), ev({ uid: true }), ev({ uid: { n: 1001 } })], noEmit);
  assert.deepEqual(
    out.map((e) => e.record.name),
    ['alice', 'yes', undefined],
  );
});

test('ignore_case matches keys case-insensitively', async () => {
  const on = await build({ 'users.csv': USERS_CSV }, { file: 'users.csv', lookup_key: '$u', result_key: 'r', ignore_case: true });
  assert.equal((on.f.filter([ev({ u: 'ALICE' })], noEmit)[0]!.record.r as Record<string, unknown>).team, 'payments');
  const off = await build({ 'users.csv': USERS_CSV }, { file: 'users.csv', lookup_key: '$u', result_key: 'r' });
  assert.ok(!('r' in off.f.filter([ev({ u: 'ALICE' })], noEmit)[0]!.record));
});

test('default: a value under result_key, or fields merged', async () => {
  const value = await build({ 'users.csv': USERS_CSV }, { file: 'users.csv', lookup_key: '$u', result_key: 'team', default: 'unknown' });
  assert.equal(value.f.filter([ev({ u: 'zed' })], noEmit)[0]!.record.team, 'unknown');
  assert.equal(value.f.filter([ev({})], noEmit)[0]!.record.team, 'unknown', 'a record without the key gets the default too');
  const fields = await build({ 'users.csv': USERS_CSV }, { file: 'users.csv', lookup_key: '$u', default: { team: 'none', owner: 'nobody' } });
  assert.deepEqual(fields.f.filter([ev({ u: 'zed' })], noEmit)[0]!.record, { u: 'zed', team: 'none', owner: 'nobody' });
  assert.equal(await counterValue(fields.metrics, 'logwarden_lookup_records_total', { result: 'default' }), 1);
});

test('YAML tables: a map of values, a map of fields, a list of rows', async () => {
  const values = await build({ 'ns.yaml': 'kube-system: platform\n"default": apps\n42: numbers\n' }, { file: 'ns.yaml', lookup_key: "$objectRef['namespace']", result_key: 'owner' });
  const out = values.f.filter([ev({ objectRef: { namespace: 'kube-system' } }), ev({ objectRef: { namespace: 42 } })], noEmit);
  assert.deepEqual(
    out.map((e) => e.record.owner),
    ['platform', 'numbers'],
  );

  const fields = await build({ 'ns.yml': 'kube-system:\n  owner: platform\n  tier: [0, 1]\n' }, { file: 'ns.yml', lookup_key: '$ns' });
  assert.deepEqual(fields.f.filter([ev({ ns: 'kube-system' })], noEmit)[0]!.record, { ns: 'kube-system', owner: 'platform', tier: [0, 1] });

  const rows = await build({ 'users.yaml': '- name: alice\n  team: payments\n- name: bob\n  team: search\n  oncall: true\n' }, { file: 'users.yaml', lookup_key: '$u' });
  assert.deepEqual(rows.f.filter([ev({ u: 'bob' })], noEmit)[0]!.record, { u: 'bob', team: 'search', oncall: true });
  const byTeam = await build({ 'users.yaml': '- name: alice\n  team: payments\n' }, { file: 'users.yaml', lookup_key: '$t', key_column: 'team', result_key: 'x' });
  assert.deepEqual(byTeam.f.filter([ev({ t: 'payments' })], noEmit)[0]!.record.x, { name: 'alice' });
});

test('a result map is a copy per record', async () => {
  const { f } = await build({ 'users.csv': USERS_CSV }, { file: 'users.csv', lookup_key: '$u', result_key: 'r' });
  const [a, b] = f.filter([ev({ u: 'alice' }), ev({ u: 'alice' })], noEmit);
  assert.notEqual(a!.record.r, b!.record.r);
  (a!.record.r as Record<string, unknown>).team = 'changed downstream';
  assert.equal((b!.record.r as Record<string, unknown>).team, 'payments');
});

test('a __proto__ column or key stays data', async () => {
  const csv = await build({ 't.csv': 'k,__proto__,v\na,x,1\n' }, { file: 't.csv', lookup_key: '$k' });
  const [out] = csv.f.filter([ev({ k: 'a' })], noEmit);
  assert.equal(Object.getPrototypeOf(out!.record), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(out!.record, '__proto__')?.value, 'x');
  const yaml = await build({ 't.yaml': 'a:\n  __proto__: {polluted: true}\n' }, { file: 't.yaml', lookup_key: '$k' });
  const [y] = yaml.f.filter([ev({ k: 'a' })], noEmit);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(Object.getOwnPropertyDescriptor(y!.record, '__proto__')?.value, { polluted: true });
  // A record holding a __proto__ key (JSON.parse keeps it as data) is copied without it
  // becoming the copy's prototype.
  const record = JSON.parse('{"k":"a","__proto__":{"evil":1}}') as Record<string, unknown>;
  for (const f of [csv.f, yaml.f]) {
    const [r] = f.filter([ev(record)], noEmit);
    assert.equal(Object.getPrototypeOf(r!.record), Object.prototype);
    assert.equal((r!.record as { evil?: unknown }).evil, undefined);
  }
  const keyed = await build({ 't.csv': 'k,v\na,1\n' }, { file: 't.csv', lookup_key: '$k', result_key: 'r' });
  const [k] = keyed.f.filter([ev(record)], noEmit);
  assert.equal(Object.getPrototypeOf(k!.record), Object.prototype);
  assert.equal(k!.record.r, '1');
});

test('records in bytes: the lookup key read through the view, the result written as edits, the same record as decoded', async () => {
  const files = {
    'envs.csv': 'user,environment\nalice,prod\n-5,negative\n',
    'users.csv': 'user,team,owner\nalice,payments,"carol, ü"\nkube-system,platform,ops\n',
    'ns.yaml': 'alice:\n  __proto__: {polluted: true}\n  nested: {x: [1, 2.5, null]}\n  team: yaml\nkube-system:\n  team: k8s\n',
    'idx.yaml': 'alice:\n  team: yaml\n  7: seven\n',
  };
  const configs: Array<Record<string, unknown>> = [
    { file: 'envs.csv', lookup_key: '$user', result_key: 'env' },
    { file: 'envs.csv', lookup_key: '$user', result_key: 'team' },
    { file: 'envs.csv', lookup_key: 'user' },
    { file: 'envs.csv', lookup_key: '$n', result_key: 'n' },
    { file: 'users.csv', lookup_key: '$user' },
    { file: 'users.csv', lookup_key: '$user', result_key: 'r' },
    { file: 'users.csv', lookup_key: "$k8s['ns']", result_key: '__proto__' },
    { file: 'users.csv', lookup_key: '$user', ignore_case: true, default: { team: 'none', added: [1, { x: 'ü' }] } },
    { file: 'users.csv', lookup_key: '$nothing', result_key: 'r', default: { a: 1 } },
    { file: 'users.csv', lookup_key: '$nothing', result_key: 'r', default: 'plain' },
    { file: 'ns.yaml', lookup_key: '$user' },
    { file: 'ns.yaml', lookup_key: "$k8s['ns']" },
    { file: 'ns.yaml', lookup_key: '$user', result_key: 'team' },
    // A key an object lists first: applied to the decoded record.
    { file: 'idx.yaml', lookup_key: '$user' },
    { file: 'idx.yaml', lookup_key: '$user', result_key: '7' },
  ];
  let checked = 0;
  for (const config of configs) {
    const { f } = await build(files, config);
    for (const [i, bytes] of recordsAround([
      ['user', 'ALICE'.toLowerCase()],
      ['team', 'old'],
    ]).entries()) {
      const what = `${JSON.stringify(config)}, record ${i}`;
      const want = f.filter([plain(bytes, 'kube.audit')], noEmit)[0]!;
      const input = wire(bytes, 'kube.audit');
      const got = f.filter([input], noEmit)[0]!;
      const bytesPath = config.file !== 'idx.yaml'; // every record has a row there
      assert.equal(got === input && input.isBytes, bytesPath, `${what}: the same event, still bytes`);
      assertSameRecord(got, want, bytes, what);
      if (bytesPath) assert.ok(input.isBytes, `${what}: still bytes once written`);
      checked++;
    }
  }
  assert.equal(checked, configs.length * 10);
});

test('records in bytes: a lookup key the view does not read (a sub-key like an index) is read from the decoded record', async () => {
  const { f } = await build({ 'envs.csv': 'k,v\nx,1\n' }, { file: 'envs.csv', lookup_key: "$m['0']", result_key: 'r' });
  const bytes = Buffer.from(encode({ m: { 0: 'x' } }));
  const got = f.filter([wire(bytes, 'kube.audit')], noEmit)[0]!;
  assert.equal(got instanceof WireEvent && got.isBytes, false);
  assert.deepEqual(got.record, { m: { 0: 'x' }, r: '1' });
});

test('duplicate keys: the first row wins, with a warning', async () => {
  const { f, logs } = await build({ 'd.csv': 'k,v\na,1\nb,2\na,3\n' }, { file: 'd.csv', lookup_key: '$k', result_key: 'v' });
  assert.equal(f.filter([ev({ k: 'a' })], noEmit)[0]!.record.v, '1');
  const warn = logs.find((l) => l.level === 40);
  assert.match(String(warn?.msg), /1 duplicate key\(s\); the first row of each key is used/);
  assert.deepEqual(warn?.first, { key: 'a', line: 4 });
});

const loadErrors: Array<[string, Record<string, string>, string, RegExp]> = [
  ['a missing table file', {}, `${HEAD}      file: users.csv\n      lookup_key: $u\n`, /^pipeline\.yaml:5:13: file: cannot read lookup table users\.csv: ENOENT/],
  ['an unknown table format', { 'users.txt': 'a,b\n' }, `${HEAD}      file: users.txt\n      lookup_key: $u\n`, /^pipeline\.yaml:5:13: file: cannot tell the table format of users\.txt/],
  ['a malformed CSV', { 'users.csv': 'a,b\n1,2\n3,"4\n' }, `${HEAD}      file: users.csv\n      lookup_key: $u\n`, /^users\.csv:3:1: file: malformed CSV: Quote Not Closed/],
  [
    'a CSV row with too many fields',
    { 'users.csv': 'a,b\n1,2\n3,4,5\n' },
    `${HEAD}      file: users.csv\n      lookup_key: $u\n`,
    /^users\.csv:3:1: file: malformed CSV: Invalid Record Length: expect 2, got 3/,
  ],
  ['a one-column CSV', { 'users.csv': 'a\n1\n' }, `${HEAD}      file: users.csv\n      lookup_key: $u\n`, /^users\.csv:1:1: file: a lookup table needs at least two columns/],
  ['an empty CSV', { 'users.csv': '' }, `${HEAD}      file: users.csv\n      lookup_key: $u\n`, /^users\.csv:1:1: file: the CSV file is empty/],
  ['a duplicate CSV column', { 'users.csv': 'a,b,a\n' }, `${HEAD}      file: users.csv\n      lookup_key: $u\n`, /^users\.csv:1:1: file: column name "a" appears twice/],
  [
    'key_column not in the header',
    { 'users.csv': USERS_CSV },
    `${HEAD}      file: users.csv\n      lookup_key: $u\n      key_column: login\n`,
    /^pipeline\.yaml:7:19: key_column: no column "login" in the header row \(username, team, owner\)/,
  ],
  ['a YAML syntax error', { 't.yaml': 'a: b\nc: [d\n' }, `${HEAD}      file: t.yaml\n      lookup_key: $u\n`, /^t\.yaml:\d+:\d+: file: YAML syntax error/],
  ['a YAML table mixing values and fields', { 't.yaml': 'a: b\nc:\n  d: e\n' }, `${HEAD}      file: t.yaml\n      lookup_key: $u\n      result_key: r\n`, /^t\.yaml:3:3: file: mixed entries/],
  ['a YAML row that is not a map', { 't.yaml': '- a: 1\n- b\n' }, `${HEAD}      file: t.yaml\n      lookup_key: $u\n`, /^t\.yaml:2:3: file: each row of a YAML list table must be a map/],
  ['a YAML row without the key field', { 't.yaml': '- name: a\n  team: x\n- team: y\n' }, `${HEAD}      file: t.yaml\n      lookup_key: $u\n`, /^t\.yaml:3:3: file: row has no "name" field/],
  ['an empty YAML table', { 't.yaml': '# nothing yet\n' }, `${HEAD}      file: t.yaml\n      lookup_key: $u\n`, /^t\.yaml:\d+:\d+: file: the YAML table is empty/],
  [
    'a YAML map of values without result_key',
    { 't.yaml': 'a: b\n' },
    `${HEAD}      file: t.yaml\n      lookup_key: $u\n`,
    /^pipeline\.yaml:5:13: file: this YAML table maps each key to one value, which has no field name: set result_key/,
  ],
  [
    'key_column with a YAML map table',
    { 't.yaml': 'a: {b: c}\n' },
    `${HEAD}      file: t.yaml\n      lookup_key: $u\n      key_column: k\n`,
    /^pipeline\.yaml:7:19: key_column: key_column applies to CSV tables and YAML lists of rows/,
  ],
  [
    'a bad record accessor',
    { 'u.csv': USERS_CSV },
    `${HEAD}      file: u.csv\n      lookup_key: "$user['name'"\n`,
    /^pipeline\.yaml:6:19: lookup_key: invalid record accessor "\$user\['name'": expected \] after the sub-key/,
  ],
  [
    'an accessor with garbage after a key',
    { 'u.csv': USERS_CSV },
    `${HEAD}      file: u.csv\n      lookup_key: "$user['name']x"\n`,
    /^pipeline\.yaml:6:19: lookup_key: invalid record accessor "\$user\['name'\]x": unexpected 'x' at offset 13/,
  ],
  [
    'a scalar default without result_key',
    { 'u.csv': USERS_CSV },
    `${HEAD}      file: u.csv\n      lookup_key: $u\n      default: nobody\n`,
    /^pipeline\.yaml:7:16: default: without result_key the default is merged into the record, so it must be a map/,
  ],
  ['a missing lookup_key', { 'u.csv': USERS_CSV }, `${HEAD}      file: u.csv\n`, /^pipeline\.yaml:3:7: lookup_key: missing required option 'lookup_key'/],
  [
    'a bad reload_interval',
    { 'u.csv': USERS_CSV },
    `${HEAD}      file: u.csv\n      lookup_key: $u\n      reload_interval: soon\n`,
    /^pipeline\.yaml:7:24: reload_interval: found "soon", expected a duration/,
  ],
  ['a bad ignore_case', { 'u.csv': USERS_CSV }, `${HEAD}      file: u.csv\n      lookup_key: $u\n      ignore_case: maybe\n`, /^pipeline\.yaml:7:20: ignore_case: found "maybe", expected a boolean/],
];

for (const [what, files, pipelineText, expected] of loadErrors) {
  test(`rejected at load time: ${what}`, async () => {
    const errors = await errorsOf(files, pipelineText);
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0]!, expected);
  });
}

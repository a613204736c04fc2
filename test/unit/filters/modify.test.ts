import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modifyFilter } from '../../../src/filters/modify/index.js';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { toJSONLine } from '../../../src/core/json.js';
import { decode, encode } from '../../../src/core/msgpack.js';
import { WireEvent } from '../../../src/core/wire-event.js';
import type { FilterInstance } from '../../../src/core/plugin.js';
import { tempDir, writePipeline } from '../../support/filter-pipeline.js';
import { buildWithParsers, ev, loadErrors, run } from '../../support/parsers-pipeline.js';

async function modify(...filters: Array<Record<string, unknown>>): Promise<FilterInstance[]> {
  const file = writePipeline(tempDir(), { pipeline: { filters: filters.map((f) => ({ name: 'modify', match: '*', ...f })) } });
  return (await buildWithParsers(file, modifyFilter)).filters;
}

/** The filters' record; the same (key order included) when the record arrives as msgpack bytes. */
function through(filters: FilterInstance[], record: Record<string, unknown>): Record<string, unknown> {
  let wire: LogEvent[] = [new WireEvent('app.log', new EventTime(1700000000, 0), encode(record))];
  for (const f of filters) wire = run(f, wire).out;
  let events = [ev(structuredClone(record))];
  for (const f of filters) events = run(f, events).out;
  const raw = wire[0]!.raw;
  assert.equal(toJSONLine(raw !== undefined ? decode(raw) : wire[0]!.record), toJSONLine(events[0]!.record), 'from bytes');
  return events[0]!.record;
}

const MEM = () => ({ 'Mem.total': 1016044, 'Mem.used': 841388, 'Mem.free': 174656, 'Swap.total': 2064380, 'Swap.used': 139888, 'Swap.free': 1924492 });

test('documented example 1: add and rename', async () => {
  const f = await modify({
    add: ['Service1 SOMEVALUE', 'Service3 SOMEVALUE3', 'Mem.total2 TOTALMEM2', 'Mem.total TOTALMEM'],
    rename: ['Mem.free MEMFREE', 'Mem.used MEMUSED', 'Swap.total SWAPTOTAL'],
  });
  const out = through(f, MEM());
  assert.deepEqual(out, {
    'Mem.total': 1016044,
    MEMUSED: 841388,
    MEMFREE: 174656,
    SWAPTOTAL: 2064380,
    'Swap.used': 139888,
    'Swap.free': 1924492,
    Service1: 'SOMEVALUE',
    Service3: 'SOMEVALUE3',
    'Mem.total2': 'TOTALMEM2',
  });
  assert.deepEqual(Object.keys(out).slice(0, 4), ['Mem.total', 'MEMUSED', 'MEMFREE', 'SWAPTOTAL'], 'rename keeps the key in place');
});

test('documented example 2: conditional add and remove across three filters', async () => {
  const f = await modify(
    { condition: ['Key_Does_Not_Exist cpustats', 'Key_Exists Mem.used'], set: 'cpustats UNKNOWN' },
    { condition: 'Key_Value_Does_Not_Equal cpustats KNOWN', add: 'sourcetype memstats' },
    { condition: 'Key_Value_Equals cpustats UNKNOWN', remove_wildcard: ['Mem', 'Swap'], add: 'cpustats_more STILL_UNKNOWN' },
  );
  assert.deepEqual(through(f, MEM()), { cpustats: 'UNKNOWN', sourcetype: 'memstats', cpustats_more: 'STILL_UNKNOWN' });
});

test('documented example 3: emoji keys', async () => {
  const f = await modify({
    remove_wildcard: ['Mem', 'Swap*'],
    set: ['This_plugin_is_on 🔥', '🔥 is_hot', '❄️ is_cold', '💦 is_wet'],
    copy: '🔥 💦',
    rename: '💦 ❄️',
  });
  assert.deepEqual(through(f, MEM()), { This_plugin_is_on: '🔥', '🔥': 'is_hot', '❄️': 'is_cold', '💦': 'is_wet' });
});

test('rules: set moves to the end, hard_rename / hard_copy replace, copy goes after the source, remove_regex, move_to_*', async () => {
  const rec = () => ({ a: 1, b: 2, c: 3, x_1: 'p', x_2: 'q' });
  assert.deepEqual(Object.entries(through(await modify({ set: 'a "new value"' }), rec())), [
    ['b', 2], ['c', 3], ['x_1', 'p'], ['x_2', 'q'], ['a', 'new value'],
  ]);
  assert.deepEqual(Object.entries(through(await modify({ hard_rename: 'a c' }), rec())), [['c', 1], ['b', 2], ['x_1', 'p'], ['x_2', 'q']]);
  assert.deepEqual(through(await modify({ rename: 'a c' }), rec()), rec(), 'rename does not replace');
  assert.deepEqual(Object.entries(through(await modify({ copy: 'a z' }), rec())).slice(0, 3), [['a', 1], ['z', 1], ['b', 2]]);
  assert.deepEqual(through(await modify({ copy: 'a b' }), rec()), rec(), 'copy does not replace');
  assert.deepEqual(Object.entries(through(await modify({ hard_copy: 'a c' }), rec())), [['a', 1], ['c', 1], ['b', 2], ['x_1', 'p'], ['x_2', 'q']]);
  assert.deepEqual(through(await modify({ remove: ['a', 'missing'], remove_regex: '^x_\\d$' }), rec()), { b: 2, c: 3 });
  assert.deepEqual(Object.keys(through(await modify({ move_to_start: 'x_*' }), rec())), ['x_1', 'x_2', 'a', 'b', 'c']);
  assert.deepEqual(Object.keys(through(await modify({ move_to_end: 'a' }), rec())), ['b', 'c', 'x_1', 'x_2', 'a']);
  assert.deepEqual(through(await modify({ add: 'a 9' }), rec()), rec(), 'add does not replace');
  assert.equal(through(await modify({ add: 'msg the rest of  the line' }), rec()).msg, 'the rest of  the line');
});

test('conditions: every kind, record accessors, all must hold', async () => {
  const rec = () => ({ level: 'error', code: 500, ok: true, k8s: { ns: 'prod' }, tag_a: 'x1', tag_b: 'x2' });
  const cases: Array<[string | string[], boolean]> = [
    ["key_exists $k8s['ns']", true],
    ["key_exists $k8s['pod']", false],
    ["key_does_not_exist $k8s['pod']", true],
    ['a_key_matches ^tag_', true],
    ['no_key_matches ^tag_', false],
    ['key_value_equals level error', true],
    ["key_value_equals $k8s['ns'] prod", true],
    ['key_value_equals code 500', false],
    ['key_value_does_not_equal level info', true],
    ['key_value_does_not_equal missing x', false],
    ['key_value_matches level ^err', true],
    ['key_value_matches ok ^true$', true],
    ['key_value_does_not_match level ^err', false],
    ['key_value_does_not_match missing x', false],
    ['matching_keys_have_matching_values ^tag_ ^x\\d$', true],
    ['matching_keys_have_matching_values ^tag_ ^x1$', false],
    ['matching_keys_do_not_have_matching_values ^tag_ ^x1$', true],
    ['matching_keys_have_matching_values ^none_ ^x$', true],
    [['key_exists level', 'key_exists nothere'], false],
  ];
  for (const [condition, applies] of cases) {
    const out = through(await modify({ condition, add: 'hit yes' }), rec());
    assert.equal(out.hit === 'yes', applies, String(condition));
  }
});

test('a __proto__ key is data', async () => {
  const f = await modify({ set: '__proto__ x', copy: 'src __proto__x' });
  const out = through(f, JSON.parse('{"src":"s","__proto__":{"polluted":1}}') as Record<string, unknown>);
  assert.equal(Object.getPrototypeOf(out), Object.prototype);
  assert.equal(out.__proto__ === 'x' || Object.getOwnPropertyDescriptor(out, '__proto__')?.value === 'x', true);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('load-time errors with positions', async () => {
  const dir = tempDir();
  const cases: Array<[string, RegExp]> = [
    ['condition: key_is_there a', /:5:18: condition: 'key_is_there a': unknown condition 'key_is_there'/],
    ['condition: key_value_equals a', /condition: 'key_value_equals a': key_value_equals takes two arguments/],
    ['remove_regex: "(x"', /:5:21: remove_regex: '\(x': invalid regular expression/],
    ['set: onlykey', /set: 'onlykey': expected KEY VALUE/],
    ['condition: key_exists "$a[x]"', /condition: .*expected \['name'\] or \[index\]/],
    ['condition: key_exists a', /modify has no rule/],
    ['set: "\\"open key"', /unterminated quote/],
  ];
  for (const [line, msg] of cases) {
    const file = writePipeline(dir, `pipeline:\n  filters:\n    - name: modify\n      match: "*"\n      ${line}\n`);
    assert.match(await loadErrors(file, modifyFilter), msg, line);
  }
});

test('conditions on one value are read through the view: edits stay on the bytes, results as on the object', async () => {
  const records: Array<Record<string, unknown>> = [
    { a: 1, s: 'yes', n: { x: 'v1', list: ['p', 'q'] }, b: true },
    { a: 2, s: 'no', n: { x: 'other' } },
    { s: 'yes', n: 'flat', b: false },
    { a: null, s: 3, n: { list: ['p'] } },
    { s: Buffer.from('yes'), a: 4 },
  ];
  const configs: Array<[Record<string, unknown>, boolean]> = [
    [{ condition: 'key_exists a', add: 'added 1', rename: 's t' }, true],
    [{ condition: ['key_does_not_exist a', 'key_value_equals s yes'], set: 'hit 1' }, true],
    [{ condition: ["key_value_matches $n['x'] ^v", "key_exists $n['list'][1]"], remove: 'a', hard_rename: 'b c' }, true],
    [{ condition: ['key_value_does_not_equal s yes', 'key_value_does_not_match a ^1$'], add: 'miss 1' }, true],
    [{ condition: 'key_value_equals b true', set: 'bool 1' }, true],
    // Looking at every key, or a sub-key written like an index: the decoded record.
    [{ condition: 'a_key_matches ^s', set: 'k 1' }, false],
    [{ condition: "key_exists $n['list']['1']", set: 'k 1' }, false],
  ];
  for (const [options, bytes] of configs) {
    const fs = await modify(options);
    for (const r of records) {
      const what = `${JSON.stringify(options)} on ${JSON.stringify(r)}`;
      let events: LogEvent[] = [ev(decode(encode(r)) as Record<string, unknown>)];
      for (const f of fs) events = run(f, events).out;
      const e = new WireEvent('t', new EventTime(1, 0), encode(r));
      for (const f of fs) run(f, [e]);
      assert.equal(e.isBytes, bytes, `${what}: ${bytes ? 'still bytes' : 'decoded'}`);
      assert.equal(toJSONLine(bytes ? decode(e.raw!) : e.record), toJSONLine(events[0]!.record), what);
    }
  }
});

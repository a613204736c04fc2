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
    ['b', 2],
    ['c', 3],
    ['x_1', 'p'],
    ['x_2', 'q'],
    ['a', 'new value'],
  ]);
  assert.deepEqual(Object.entries(through(await modify({ hard_rename: 'a c' }), rec())), [
    ['c', 1],
    ['b', 2],
    ['x_1', 'p'],
    ['x_2', 'q'],
  ]);
  assert.deepEqual(through(await modify({ rename: 'a c' }), rec()), rec(), 'rename does not replace');
  assert.deepEqual(Object.entries(through(await modify({ copy: 'a z' }), rec())).slice(0, 3), [
    ['a', 1],
    ['z', 1],
    ['b', 2],
  ]);
  assert.deepEqual(through(await modify({ copy: 'a b' }), rec()), rec(), 'copy does not replace');
  assert.deepEqual(Object.entries(through(await modify({ hard_copy: 'a c' }), rec())), [
    ['a', 1],
    ['c', 1],
    ['b', 2],
    ['x_1', 'p'],
    ['x_2', 'q'],
  ]);
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
  // biome-ignore lint/suspicious/noProto: the test reads the key a decoded record may carry
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
    [{ condition: 'a_key_matches ^s', set: 'k 1' }, true],
    // A sub-key written like an index: the accessor reads it as a map key only (decoded).
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

// --- every rule and condition on records in bytes --------------------------------------------

/** A msgpack map from [key, value] pairs in order (duplicate keys allowed); `rawValue` bytes go in as they are. */
function map(entries: Array<[string, unknown]>): Buffer {
  const n = entries.length;
  const head = n < 16 ? Buffer.from([0x80 | n]) : Buffer.from([0xde, n >> 8, n & 0xff]);
  return Buffer.concat([head, ...entries.flatMap(([k, v]) => [encode(k), RAW.has(v as Buffer) ? (v as Buffer) : encode(v)])]);
}
const RAW = new WeakSet<Buffer>();
const rawValue = (b: Buffer) => {
  RAW.add(b);
  return b;
};
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const INDEX_KEY = /^(0|[1-9][0-9]*)$/;

/**
 * Records as bytes: `exact` when the bytes are what encoding their decoded record gives and no
 * key is one an object orders first (an array index), so the result can be compared byte for byte.
 */
const BYTE_RECORDS: Array<{ bytes: Buffer; exact: boolean; note: string }> = [
  { note: 'mem', bytes: encode(MEM()), exact: true },
  { note: 'empty', bytes: encode({}), exact: true },
  { note: 'plain', bytes: encode({ a: 1, b: 2, c: 3, x_1: 'p', x_2: 'q' }), exact: true },
  { note: '__proto__', bytes: encode(JSON.parse('{"src":"s","__proto__":{"polluted":1},"x_a":"v","a":"x1"}')), exact: true },
  {
    note: 'types',
    bytes: encode({
      level: 'error',
      code: 500,
      ok: true,
      k8s: { ns: 'prod', labels: { app: 'x' } },
      tag_a: 'x1',
      tag_b: 'x2',
      n: null,
      bin: Buffer.from([1, 2]),
      f: 1.5,
      big: 2n ** 60n,
      arr: [1, 'a', { b: 2 }],
      t: new EventTime(5, 6),
    }),
    exact: true,
  },
  { note: 'booleans', bytes: encode({ s: 'yes', a: true, tag_a: false, tag_b: 'true', tag_c: 'x3' }), exact: true },
  { note: 'unicode', bytes: encode({ '🔥': 'is_hot', ü: 'é', 'Mem.ü': 1, Swap日本: 'x', tag_é: 'xé' }), exact: true },
  {
    note: 'top-level duplicates',
    bytes: map([
      ['a', 1],
      ['tag_b', 'x'],
      ['a', 'x9'],
      ['Mem.x', 2],
      ['c', { y: 1 }],
      ['Mem.x', { y: 1 }],
      ['tag_b', 7],
    ]),
    exact: false,
  },
  {
    note: 'nested duplicates',
    bytes: map([
      [
        'n',
        rawValue(
          map([
            ['x', 1],
            ['x', 2],
          ]),
        ),
      ],
      ['a', 'v'],
      ['tag_a', 'x1'],
    ]),
    exact: false,
  },
  { note: 'float64 1.0', bytes: Buffer.concat([Buffer.from([0x82]), encode('a'), Buffer.from([0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]), encode('tag_a'), encode('x1')]), exact: false },
  { note: 'many keys', bytes: encode(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [i % 3 ? `Mem.k${i}` : `tag_${i}`, i % 2 ? `x${i}` : { n: i }]))), exact: true },
  { note: 'index keys', bytes: encode({ b: 1, 1: 'x1', a: 'v', 20: 2, tag_1: 'x' }), exact: false },
];

const BYTE_CONFIGS: Array<Array<Record<string, unknown>>> = [
  [{ remove_wildcard: ['Mem', 'Swap*'] }],
  [{ remove_regex: ['^x_\\d$', '^(a|ü|__proto__|1)$'] }],
  [{ remove_wildcard: '*' }],
  [{ copy: 'a z' }],
  [{ copy: ['a b', 'missing z', 'src __proto__x'] }],
  [{ hard_copy: ['a c', 'tag_b tag_b', 'k8s k8s_copy'] }],
  [{ hard_copy: ['🔥 ü', 'src __proto__', '__proto__ p2'] }],
  [{ copy: 'a z', add: 'z not-added', set: 'a changed', hard_copy: 'z a' }],
  [{ move_to_start: 'x_*' }],
  [{ move_to_end: ['a', 'Mem.'] }],
  [{ move_to_start: ['tag_', 'Mem.k1'], move_to_end: 'tag_3' }],
  [{ remove_wildcard: 'Mem', copy: 'a Mem.copy', move_to_start: 'Mem', hard_copy: 'tag_a a', rename: 'b Mem.b', add: 'tag_c x' }],
  [{ condition: 'a_key_matches ^tag_', set: 'hit 1', copy: 'tag_a tag_z' }],
  [{ condition: 'no_key_matches ^Mem', add: 'none yes', move_to_end: 'a' }],
  [{ condition: 'matching_keys_have_matching_values ^tag_ ^x\\d$', hard_copy: 'a tag_a', remove_regex: '^b$' }],
  [{ condition: 'matching_keys_have_matching_values ^(a|tag_b)$ ^(true|x9)$', set: 'hit 1' }],
  [{ condition: 'matching_keys_do_not_have_matching_values ^tag_a$ ^false$', set: 'hit 1' }],
  [{ condition: 'matching_keys_do_not_have_matching_values ^tag_ ^x1$', remove_regex: '^tag_' }],
  [{ condition: ['a_key_matches ^.', 'key_exists a', 'no_key_matches ^zzz'], move_to_start: 'a', copy: 'a a2' }],
  // The conditions see the record as the filters before left it (their edits still pending).
  [{ rename: 'a tag_s' }, { condition: 'a_key_matches ^tag_s$', set: 'hit 1', copy: 'tag_s tag_t' }],
  [{ remove_wildcard: 'tag_' }, { condition: 'no_key_matches ^tag_', add: 'none yes' }],
  [{ set: 'tag_z x9' }, { condition: 'matching_keys_have_matching_values ^tag_ ^x', move_to_start: 'tag_' }],
  [
    { copy: 'a tag_q', move_to_start: 'tag_q' },
    { condition: 'matching_keys_do_not_have_matching_values ^tag_q$ ^x9$', remove_wildcard: 'Mem' },
  ],
];

test('every rule and condition on a record in bytes: the bytes and JSON of the decoded path, nothing decoded', async () => {
  const { RecordView } = await import('../../../src/core/record-view.js');
  const { JsonWriter, writeRecordJSON } = await import('../../../src/core/msgpack-json.js');
  const viewDecode = RecordView.prototype.decode;
  let decoded = 0;
  RecordView.prototype.decode = function (this: InstanceType<typeof RecordView>) {
    decoded++;
    return viewDecode.call(this);
  };
  let compared = 0;
  try {
    for (const config of BYTE_CONFIGS) {
      const fs = await modify(...config);
      for (const { bytes, exact, note } of BYTE_RECORDS) {
        const what = `${JSON.stringify(config)} on ${note}`;
        let events: LogEvent[] = [ev(decode(bytes) as Record<string, unknown>)];
        for (const f of fs) events = run(f, events).out;
        const expected = events[0]!.record;
        const e = new WireEvent('t', new EventTime(1, 0), bytes);
        for (const f of fs) run(f, [e]);
        const indexKeys = Object.keys(expected).some((k) => INDEX_KEY.test(k));
        // A copy from a key an object lists first is placed by the object.
        if (!indexKeys) assert.ok(e.isBytes, `${what}: still bytes`);
        const raw = e.raw;
        if (raw === undefined) {
          assert.equal(toJSONLine(e.record), toJSONLine(expected), what);
          continue;
        }
        assert.ok(e.isBytes, `${what}: still bytes once written`);
        assert.equal(toJSONLine(decode(raw)), toJSONLine(expected), what);
        if (exact || (!indexKeys && note === 'top-level duplicates' && hex(raw) !== hex(bytes))) {
          assert.equal(hex(raw), hex(encode(expected)), `${what}: byte for byte`);
          const w = new JsonWriter();
          writeRecordJSON(w, raw);
          assert.equal(w.view().toString(), toJSONLine(expected), `${what}: JSON written from the bytes`);
          compared++;
        }
      }
    }
  } finally {
    RecordView.prototype.decode = viewDecode;
  }
  assert.equal(decoded, 0, 'no record decoded through the view');
  assert.ok(compared >= BYTE_CONFIGS.length * 8, `${compared} byte-for-byte comparisons`);
});

test('copy from a key an object orders first (an array index) falls back to the decoded record, with the same result', async () => {
  const fs = await modify({ copy: '1 z' });
  const bytes = encode({ b: 1, 1: 'x1', a: 'v' });
  const e = new WireEvent('t', new EventTime(1, 0), bytes);
  run(fs[0]!, [e]);
  assert.equal(e.raw, undefined, 'decoded');
  assert.deepEqual(Object.entries(e.record), [
    ['1', 'x1'],
    ['z', 'x1'],
    ['b', 1],
    ['a', 'v'],
  ]);
  assert.equal(toJSONLine(e.record), toJSONLine(through(fs, decode(bytes) as Record<string, unknown>)));
});

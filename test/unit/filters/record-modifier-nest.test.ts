import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nestFilter } from '../../../src/filters/nest/index.js';
import { EventTime } from '../../../src/core/event.js';
import { toJSONLine } from '../../../src/core/json.js';
import { decode, encode } from '../../../src/core/msgpack.js';
import { WireEvent } from '../../../src/core/wire-event.js';
import { recordModifierFilter } from '../../../src/filters/record_modifier/index.js';
import { modifyFilter } from '../../../src/filters/modify/index.js';
import { JsonWriter, writeRecordJSON } from '../../../src/core/msgpack-json.js';
import { RecordView } from '../../../src/core/record-view.js';
import type { LogEvent } from '../../../src/core/event.js';
import type { AnyPlugin, FilterInstance } from '../../../src/core/plugin.js';
import { tempDir, writePipeline } from '../../support/filter-pipeline.js';
import { buildWithParsers, ev, loadErrors, run } from '../../support/parsers-pipeline.js';

async function one(plugin: AnyPlugin, options: Record<string, unknown>): Promise<FilterInstance> {
  const file = writePipeline(tempDir(), { pipeline: { filters: [{ name: plugin.name, match: '*', ...options }] } });
  return (await buildWithParsers(file, plugin)).filters[0]!;
}
/** The filter's record, checked to be the same (key order included) when the record arrives as msgpack bytes. */
const apply = (f: FilterInstance, r: Record<string, unknown>) => {
  const fromBytes = run(f, [new WireEvent('app.log', new EventTime(1700000000, 0), encode(r))]).out[0]!;
  const got = run(f, [ev(structuredClone(r))]).out[0]!.record;
  const raw = fromBytes.raw;
  assert.equal(toJSONLine(raw !== undefined ? decode(raw) : fromBytes.record), toJSONLine(got), 'from bytes');
  return got;
};
const MEM = () => ({ 'Mem.total': 1016024, 'Mem.used': 716672, 'Mem.free': 299352, 'Swap.total': 2064376, 'Swap.used': 32656, 'Swap.free': 2031720 });

test('record_modifier: record appends (the value is the rest of the line), replacing a same-named key', async () => {
  const f = await one(recordModifierFilter, { record: ['hostname ${HOSTNAME:-myhost}', 'product Awesome Tool', 'a replaced'] });
  assert.deepEqual(Object.entries(apply(f, { a: 1, b: 2 })), [
    ['b', 2],
    ['hostname', 'myhost'],
    ['product', 'Awesome Tool'],
    ['a', 'replaced'],
  ]);
});

test('record_modifier: remove_key and allowlist_key / whitelist_key (case-insensitive, trailing * for a prefix)', async () => {
  const rm = await one(recordModifierFilter, { remove_key: ['swap.total', 'Mem.*'] });
  assert.deepEqual(apply(rm, MEM()), { 'Swap.used': 32656, 'Swap.free': 2031720 });
  const allow = await one(recordModifierFilter, { allowlist_key: ['mem.TOTAL', 'Swap*'] });
  assert.deepEqual(apply(allow, MEM()), { 'Mem.total': 1016024, 'Swap.total': 2064376, 'Swap.used': 32656, 'Swap.free': 2031720 });
  const white = await one(recordModifierFilter, { whitelist_key: 'Mem.free' });
  assert.deepEqual(apply(white, MEM()), { 'Mem.free': 299352 });
});

test('record_modifier: a record left without any field is dropped, as Fluent Bit drops it', async () => {
  const allow = await one(recordModifierFilter, { allowlist_key: 'keep' });
  const { out } = run(allow, [ev({ keep: 1, other: 2 }), ev({ other: 3 }), ev({}), ev({ KEEP: 4 })]);
  assert.deepEqual(
    out.map((e) => e.record),
    [{ keep: 1 }, { KEEP: 4 }],
  );
  const rm = await one(recordModifierFilter, { remove_key: 'a', record: 'b 1' });
  assert.deepEqual(
    run(rm, [ev({ a: 1 })]).out.map((e) => e.record),
    [{ b: '1' }],
    'appended fields keep the record',
  );
});

test('record_modifier: uuid_key adds a v4 UUID per record', async () => {
  const f = await one(recordModifierFilter, { uuid_key: 'uuid', record: 'a b' });
  const { out } = run(f, [ev({}), new WireEvent('t', new EventTime(1, 0), encode({ uuid: 'old', x: 1 }))]);
  assert.deepEqual(Object.keys(out[1]!.record), ['x', 'a', 'uuid'], 'from bytes, in Fluent Bit order');
  assert.match(String(out[0]!.record.uuid), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(out[0]!.record.uuid, out[1]!.record.uuid);
});

test('record_modifier: load-time errors', async () => {
  const dir = tempDir();
  const f1 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: record_modifier\n      match: "*"\n      remove_key: a\n      allowlist_key: b\n');
  assert.match(await loadErrors(f1, recordModifierFilter), /:6:22: allowlist_key: remove_key and allowlist_key exclude each other/);
  const f2 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: record_modifier\n      match: "*"\n      record: lonely\n');
  assert.match(await loadErrors(f2, recordModifierFilter), /:5:15: record: 'lonely': expected KEY VALUE/);
  const f3 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: record_modifier\n      match: "*"\n');
  assert.match(await loadErrors(f3, recordModifierFilter), /needs record, remove_key, allowlist_key or uuid_key/);
});

test('nest: the documented example (Mem.* under Memstats, prefix removed)', async () => {
  const f = await one(nestFilter, { operation: 'nest', wildcard: 'Mem.*', nest_under: 'Memstats', remove_prefix: 'Mem.' });
  assert.deepEqual(apply(f, MEM()), {
    'Swap.total': 2064376,
    'Swap.used': 32656,
    'Swap.free': 2031720,
    Memstats: { total: 1016024, used: 716672, free: 299352 },
  });
  assert.deepEqual(apply(f, { other: 1 }), { other: 1 }, 'nothing to nest: unchanged');
});

test('nest: several wildcards, exact names, add_prefix', async () => {
  const f = await one(nestFilter, { operation: 'nest', wildcard: ['Swap.used', 'Mem.f*'], nest_under: 'sub', add_prefix: 'x_' });
  assert.deepEqual(apply(f, MEM()), {
    'Mem.total': 1016024,
    'Mem.used': 716672,
    'Swap.total': 2064376,
    'Swap.free': 2031720,
    sub: { 'x_Mem.free': 299352, 'x_Swap.used': 32656 },
  });
});

test('lift: the nested map moves up with prefixes; a non-map is left alone', async () => {
  const f = await one(nestFilter, { operation: 'lift', nested_under: 'Stats', add_prefix: 'Lifted_' });
  assert.deepEqual(apply(f, { a: 1, Stats: { Mem: 2, Swap: 3 } }), { a: 1, Lifted_Mem: 2, Lifted_Swap: 3 });
  assert.deepEqual(apply(f, { a: 1, Stats: 'text' }), { a: 1, Stats: 'text' });
  const g = await one(nestFilter, { operation: 'lift', nested_under: 'kubernetes', remove_prefix: 'pod_' });
  assert.deepEqual(apply(g, { kubernetes: { pod_name: 'p', namespace: 'n' } }), { name: 'p', namespace: 'n' });
});

test('nest: load-time errors', async () => {
  const dir = tempDir();
  const f1 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: nest\n      match: "*"\n      operation: nest\n      wildcard: a*\n');
  assert.match(await loadErrors(f1, nestFilter), /:5:18: nest_under: operation nest needs nest_under/);
  const f2 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: nest\n      match: "*"\n      operation: lift\n      nested_under: a\n      wildcard: b\n');
  assert.match(await loadErrors(f2, nestFilter), /:7:17: wildcard: wildcard does not apply to operation lift/);
  const f3 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: nest\n      match: "*"\n      operation: squash\n');
  assert.match(await loadErrors(f3, nestFilter), /operation: found "squash", expected one of nest, lift/);
});

// --- remove_key and allowlist_key on records in bytes ------------------------------------------

/** A msgpack map from [key, value] pairs in order (duplicate keys allowed). */
function map(entries: Array<[string, unknown]>): Buffer {
  const n = entries.length;
  const head = n < 16 ? Buffer.from([0x80 | n]) : Buffer.from([0xde, n >> 8, n & 0xff]);
  return Buffer.concat([head, ...entries.flatMap(([k, v]) => [encode(k), encode(v)])]);
}
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Records as bytes; `exact`: the bytes encoding their decoded record gives (compared byte for byte). */
const BYTE_RECORDS: Array<{ bytes: Buffer; exact: boolean; note: string }> = [
  { note: 'mem', bytes: encode(MEM()), exact: true },
  { note: 'empty', bytes: encode({}), exact: true },
  { note: 'keep', bytes: encode({ keep: 1, other: 2, KEEP_too: { n: [1, 2] } }), exact: true },
  { note: '__proto__', bytes: encode(JSON.parse('{"a":"s","__proto__":{"polluted":1},"keep":"v"}')), exact: true },
  { note: 'types', bytes: encode({ n: null, bin: Buffer.from([1, 2]), f: 1.5, big: 2n ** 60n, t: new EventTime(5, 6), ok: false, 'mem.used': 3 }), exact: true },
  { note: 'unicode', bytes: encode({ Ü: 'é', 'Mem.ü': 1, Swap日本: 'x', '🔥': 'hot' }), exact: true },
  {
    note: 'duplicates',
    bytes: map([
      ['keep', 1],
      ['Mem.x', 2],
      ['keep', 'last'],
      ['a', { y: 1 }],
      ['Mem.x', 3],
    ]),
    exact: false,
  },
  { note: 'only removable', bytes: encode({ 'Mem.a': 1, 'mem.B': 2 }), exact: true },
  { note: 'many keys', bytes: encode(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [i % 3 ? `Mem.k${i}` : `Swap.k${i}`, i % 2 ? `v${i}` : { n: i }]))), exact: true },
];

const BYTE_CONFIGS: Array<Array<[AnyPlugin, Record<string, unknown>]>> = [
  [[recordModifierFilter, { remove_key: ['swap.total', 'Mem.*'] }]],
  [[recordModifierFilter, { remove_key: ['__PROTO__', 'ü', 'a'] }]],
  [[recordModifierFilter, { remove_key: '*' }]],
  [[recordModifierFilter, { remove_key: 'nothing-matches' }]],
  [[recordModifierFilter, { allowlist_key: ['mem.TOTAL', 'Swap*'] }]],
  [[recordModifierFilter, { allowlist_key: 'keep*' }]],
  [[recordModifierFilter, { whitelist_key: ['__proto__', '🔥'] }]],
  [[recordModifierFilter, { allowlist_key: 'none' }]],
  [[recordModifierFilter, { remove_key: 'keep', record: ['b 1', 'Mem.x replaced'] }]],
  [[recordModifierFilter, { allowlist_key: 'mem.*', record: 'keep appended' }]],
  // After other filters: the keys as their pending edits leave them.
  [
    [modifyFilter, { rename: 'other keep', set: 'Mem.set x' }],
    [recordModifierFilter, { allowlist_key: 'keep' }],
  ],
  [
    [modifyFilter, { add: 'added 1' }],
    [recordModifierFilter, { remove_key: 'added' }],
  ],
  [
    [recordModifierFilter, { remove_key: 'mem.*' }],
    [modifyFilter, { copy: 'keep keep2', move_to_start: 'keep2' }],
    [recordModifierFilter, { allowlist_key: ['keep*', 'Swap.*'] }],
  ],
];

test('record_modifier on records in bytes: remove_key and allowlist_key give the bytes and JSON of the decoded path, nothing decoded', async () => {
  const viewDecode = RecordView.prototype.decode;
  let decoded = 0;
  RecordView.prototype.decode = function (this: RecordView) {
    decoded++;
    return viewDecode.call(this);
  };
  let compared = 0;
  let dropped = 0;
  try {
    for (const config of BYTE_CONFIGS) {
      const file = writePipeline(tempDir(), { pipeline: { filters: config.map(([p, o]) => ({ name: p.name, match: '*', ...o })) } });
      const fs = (await buildWithParsers(file, ...new Set(config.map(([p]) => p)))).filters;
      for (const { bytes, exact, note } of BYTE_RECORDS) {
        const what = `${JSON.stringify(config.map(([p, o]) => [p.name, o]))} on ${note}`;
        let want: LogEvent[] = [ev(decode(bytes) as Record<string, unknown>)];
        let got: LogEvent[] = [new WireEvent('app.log', new EventTime(1700000000, 0), bytes)];
        for (const f of fs) {
          want = run(f, want).out;
          got = run(f, got).out;
        }
        assert.equal(got.length, want.length, `${what}: dropped as the decoded record is`);
        if (want.length === 0) {
          dropped++;
          continue;
        }
        const e = got[0] as WireEvent;
        assert.ok(e.isBytes, `${what}: still bytes`);
        const raw = e.raw!;
        assert.ok(e.isBytes, `${what}: still bytes once written`);
        const expected = want[0]!.record;
        assert.equal(toJSONLine(decode(raw)), toJSONLine(expected), what);
        // A duplicate key stays as it came only where nothing was written.
        if (exact || hex(raw) !== hex(bytes)) {
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
  assert.ok(compared >= 60, `${compared} byte-for-byte comparisons`);
  assert.ok(dropped >= 20, `${dropped} records dropped`);
  assert.equal(compared + dropped, BYTE_CONFIGS.length * BYTE_RECORDS.length - 1, 'only the duplicates untouched left as they came');
});

test('record_modifier: uuid_key with allowlist_key on bytes keeps the allowed keys and appends the UUID', async () => {
  const f = await one(recordModifierFilter, { allowlist_key: 'keep', uuid_key: 'id' });
  const out = run(f, [new WireEvent('t', new EventTime(1, 0), encode({ other: 1, keep: 2 })), new WireEvent('t', new EventTime(1, 0), encode({ other: 1 }))]).out as WireEvent[];
  assert.equal(out.length, 2, 'the UUID is a field: nothing dropped');
  assert.ok(out.every((e) => e.isBytes));
  const [a, b] = out.map((e) => decode(e.raw!) as Record<string, unknown>);
  assert.deepEqual(Object.keys(a!), ['keep', 'id']);
  assert.deepEqual(Object.keys(b!), ['id']);
  assert.match(String(a!.id), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

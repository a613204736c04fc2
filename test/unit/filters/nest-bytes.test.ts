/**
 * nest on records that arrive as msgpack bytes: the filter records an edit instead of decoding,
 * and the bytes it writes are the bytes the decoded record would encode to.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { toJSONLine } from '../../../src/core/json.js';
import { decode, encode } from '../../../src/core/msgpack.js';
import { WireEvent } from '../../../src/core/wire-event.js';
import { nestFilter } from '../../../src/filters/nest/index.js';
import { modifyFilter } from '../../../src/filters/modify/index.js';
import type { AnyPlugin, FilterInstance } from '../../../src/core/plugin.js';
import { tempDir, writePipeline } from '../../support/filter-pipeline.js';
import { buildWithParsers, ev, run } from '../../support/parsers-pipeline.js';

async function chain(...filters: Array<[AnyPlugin, Record<string, unknown>]>): Promise<FilterInstance[]> {
  const file = writePipeline(tempDir(), { pipeline: { filters: filters.map(([p, o]) => ({ name: p.name, match: '*', ...o })) } });
  return (await buildWithParsers(file, ...new Set(filters.map(([p]) => p)))).filters;
}

function through(fs: FilterInstance[], events: LogEvent[]): LogEvent[] {
  for (const f of fs) events = run(f, events).out;
  return events;
}

/** A msgpack map from encoded keys and values, in order (duplicate keys allowed). */
function map(entries: Array<[string, unknown]>): Buffer {
  const n = entries.length;
  const head = n < 16 ? Buffer.from([0x80 | n]) : Buffer.from([0xde, n >> 8, n & 0xff]);
  return Buffer.concat([head, ...entries.flatMap(([k, v]) => [encode(k), Buffer.isBuffer(v) && (v as Buffer & { raw?: true }).raw ? v : encode(v)])]);
}
/** Bytes placed as they are inside `map` (a nested map with duplicate keys). */
const rawValue = (b: Buffer) => Object.assign(b, { raw: true as const });

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

const MEM = { 'Mem.total': 1016024, 'Mem.used': 716672, 'Mem.free': 299352, 'Swap.total': 2064376, 'Swap.used': 32656, 'Swap.free': 2031720 };

/** Records as bytes: missing keys, non-map values, duplicate keys, names that collide. */
const RECORDS: Buffer[] = [
  encode(MEM),
  encode({}),
  encode({ other: 1, list: [1, 2] }),
  encode({ Memstats: 'old', 'Mem.a': 1, b: 2 }),
  encode({ 'Mem.x': { deep: [1, { a: 2 }] }, 'Mem.y': null, z: true, 'Mem.z': 'é'.repeat(40) }),
  encode({ 'Mem.a': 1, a: 2, x_a: 3 }),
  encode({ 'Mem.ü': 'é', ü: 1 }),
  map([
    ['Mem.a', 1],
    ['b', 2],
    ['Mem.a', 3],
  ]),
  encode({ Stats: { Mem: 2, Swap: 3 }, a: 1 }),
  encode({ Stats: 'text', a: 1 }),
  encode({ Stats: [1, { Mem: 1 }], a: 1 }),
  encode({ Stats: null }),
  encode({ Stats: {}, after: 1 }),
  encode({ Mem: 'old', Stats: { Mem: 1, Swap: { x: 1 } }, Swap: 'old' }),
  encode({ Stats: { pod_name: 1, name: 2, pod_id: 'p' }, name: 0 }),
  encode({ Stats: { Stats: 'inner', b: Buffer.from([1, 2]) } }),
  encode({ Stats: Buffer.from([1, 2]), a: 1 }),
  map([
    [
      'Stats',
      rawValue(
        map([
          ['a', 1],
          ['b', 2],
          ['a', 3],
        ]),
      ),
    ],
    ['a', 'top'],
  ]),
  encode(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [i % 3 ? `Mem.k${i}` : `k${i}`, i % 2 ? 'v'.repeat(i * 10) : { n: i }]))),
];

const CONFIGS: Array<Array<[AnyPlugin, Record<string, unknown>]>> = [
  [[nestFilter, { operation: 'nest', wildcard: 'Mem.*', nest_under: 'Memstats', remove_prefix: 'Mem.' }]],
  [[nestFilter, { operation: 'nest', wildcard: ['Mem.*', 'a', 'Memstats'], nest_under: 'Memstats', add_prefix: 'x_' }]],
  [[nestFilter, { operation: 'nest', wildcard: ['Mem.*', 'a'], nest_under: 'a', remove_prefix: 'Mem.' }]],
  [[nestFilter, { operation: 'nest', wildcard: '*', nest_under: 'all' }]],
  [[nestFilter, { operation: 'lift', nested_under: 'Stats' }]],
  [[nestFilter, { operation: 'lift', nested_under: 'Stats', add_prefix: 'L_' }]],
  [[nestFilter, { operation: 'lift', nested_under: 'Stats', remove_prefix: 'pod_' }]],
  // Chains: several pending edits written in one pass.
  [
    [nestFilter, { operation: 'nest', wildcard: ['Mem.*', 'Stats'], nest_under: 'Stats', remove_prefix: 'Mem.' }],
    [nestFilter, { operation: 'lift', nested_under: 'Stats', add_prefix: 'up_' }],
  ],
  [
    [modifyFilter, { add: 'Mem.added 1', rename: 'b Mem.b', remove: 'z' }],
    [nestFilter, { operation: 'nest', wildcard: 'Mem.*', nest_under: 'm' }],
    [nestFilter, { operation: 'nest', wildcard: 'm', nest_under: 'outer' }],
    [modifyFilter, { add: 'outer replaced-if-missing', set: 'after 2' }],
  ],
  [
    [nestFilter, { operation: 'nest', wildcard: 'Mem.*', nest_under: 'Memstats' }],
    [modifyFilter, { copy: 'Memstats M2', move_to_start: 'M', remove_regex: '^(b|z)$', hard_copy: 'Stats Memstats' }],
    [nestFilter, { operation: 'lift', nested_under: 'M2', add_prefix: 'l_' }],
  ],
];

test('nest and lift: the bytes written are the bytes of the decoded record, and nothing is decoded', async () => {
  let checked = 0;
  for (const config of CONFIGS) {
    const fs = await chain(...config);
    for (const [i, bytes] of RECORDS.entries()) {
      const what = `config ${JSON.stringify(config.map(([p, o]) => [p.name, o]))}, record ${i}`;
      const expected = through(fs, [ev(decode(bytes) as Record<string, unknown>)])[0]!.record;
      const got = through(fs, [new WireEvent('app.log', new EventTime(1700000000, 0), bytes)])[0]! as WireEvent;
      assert.ok(got.isBytes, `${what}: still bytes`);
      const raw = got.raw!;
      assert.ok(got.isBytes, `${what}: still bytes once written`);
      assert.equal(toJSONLine(decode(raw)), toJSONLine(expected), what);
      // Byte for byte where the input is what encoding its record gives (a duplicate key the
      // filter does not touch stays as it came).
      if (hex(encode(decode(bytes))) === hex(bytes)) assert.equal(hex(raw), hex(encode(expected)), `${what}: byte for byte`);
      else assert.equal(toJSONLine(decode(raw)), toJSONLine(expected), what);
      checked++;
    }
  }
  assert.equal(checked, CONFIGS.length * RECORDS.length);
});

test('nest from bytes keeps the untouched values as their own bytes (a float64 stays float64)', async () => {
  const [f] = await chain([nestFilter, { operation: 'nest', wildcard: 'a', nest_under: 'n' }]);
  // 1.0 as float64: decoding and encoding again would write the integer 1.
  const bytes = Buffer.concat([Buffer.from([0x82]), encode('a'), Buffer.from([0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]), encode('b'), Buffer.from([0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0])]);
  const e = run(f!, [new WireEvent('t', new EventTime(1, 0), bytes)]).out[0] as WireEvent;
  const want = Buffer.concat([
    Buffer.from([0x82]),
    encode('b'),
    Buffer.from([0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0]),
    encode('n'),
    Buffer.from([0x81]),
    encode('a'),
    Buffer.from([0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]),
  ]);
  assert.equal(hex(e.raw!), hex(want));
  assert.ok(e.isBytes);
});

test('lift of an extension value and names an object would reorder fall back to the decoded record, with the same result', async () => {
  const cases: Array<[Array<[AnyPlugin, Record<string, unknown>]>, Record<string, unknown>]> = [
    [[[nestFilter, { operation: 'lift', nested_under: 'Stats' }]], { Stats: new EventTime(5, 6), a: 1 }],
    [[[nestFilter, { operation: 'lift', nested_under: 'Stats', remove_prefix: 'x' }]], { Stats: { x1: 'a', 1: 'b' } }],
    [[[nestFilter, { operation: 'nest', wildcard: ['x*', '1'], nest_under: 'n', remove_prefix: 'x' }]], { x1: 'a', 1: 'b', c: 3 }],
  ];
  for (const [config, record] of cases) {
    const fs = await chain(...config);
    const bytes = encode(record);
    const expected = through(fs, [ev(decode(bytes) as Record<string, unknown>)])[0]!.record;
    const got = through(fs, [new WireEvent('t', new EventTime(1, 0), bytes)])[0]! as WireEvent;
    const raw = got.raw;
    assert.equal(raw, undefined, 'decoded');
    assert.equal(toJSONLine(got.record), toJSONLine(expected), JSON.stringify(record));
  }
});

test('modify after nest answers for the moved keys from the nested record, still in bytes', async () => {
  const fs = await chain([nestFilter, { operation: 'nest', wildcard: 'Mem.*', nest_under: 'Memstats' }], [modifyFilter, { add: ['Mem.total moved', 'Memstats not-added'], rename: 'Memstats stats' }]);
  const got = through(fs, [new WireEvent('t', new EventTime(1, 0), encode(MEM))])[0]! as WireEvent;
  assert.ok(got.isBytes);
  assert.deepEqual(decode(got.raw!), {
    'Swap.total': 2064376,
    'Swap.used': 32656,
    'Swap.free': 2031720,
    stats: { 'Mem.total': 1016024, 'Mem.used': 716672, 'Mem.free': 299352 },
    'Mem.total': 'moved',
  });
  assert.ok(got.isBytes);
});

/**
 * The record view answers as decoding the record and reading it would, and edits applied to the
 * bytes give the record that decoding, editing the object and encoding would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { EventTime } from '../../../src/core/event.js';
import { toJSONLine } from '../../../src/core/json.js';
import { decode, encode } from '../../../src/core/msgpack.js';
import { applyEdit } from '../../../src/core/record-edit.js';
import { applyEdits } from '../../../src/core/record-splice.js';
import { RecordView, UNSUPPORTED, ViewUnsupported, type Edit, type PathPart } from '../../../src/core/record-view.js';
import { WireEvent } from '../../../src/core/wire-event.js';
import { conformanceDir, falcoCorpus } from '../../support/paths.js';

/** What decode-then-read gives: own properties of maps, canonical indexes of arrays. */
function readDecoded(v: unknown, path: readonly PathPart[]): unknown {
  let cur = v;
  for (const part of path) {
    if (Array.isArray(cur)) {
      const i = typeof part === 'number' ? part : /^(0|[1-9][0-9]*)$/.test(part) ? Number(part) : -1;
      if (i < 0 || i >= cur.length) return undefined;
      cur = cur[i];
    } else if (cur !== null && typeof cur === 'object' && !(cur instanceof Uint8Array) && typeof part === 'string') {
      if (!Object.hasOwn(cur, part)) return undefined;
      cur = (cur as Record<string, unknown>)[part];
    } else return undefined;
  }
  return cur;
}

function viewGet(bytes: Uint8Array, path: readonly PathPart[]): unknown {
  return new RecordView().reset(bytes).get(path);
}

/** msgpack map built by hand: [key bytes, value bytes] pairs (duplicates and odd keys allowed). */
function map(entries: Array<[Buffer, Buffer]>): Buffer {
  const head = entries.length < 16 ? Buffer.from([0x80 | entries.length]) : Buffer.from([0xde, entries.length >> 8, entries.length & 0xff]);
  return Buffer.concat([head, ...entries.flat()]);
}
const k = (s: string) => encode(s);

test('every msgpack type reads as decode gives it', () => {
  const record = {
    pos: 5,
    neg: -7,
    u8: 200,
    u16: 60000,
    u32: 4000000000,
    i8: -100,
    i16: -30000,
    i32: -2000000000,
    big: 2n ** 60n,
    negBig: -(2n ** 60n),
    f64: 1.5,
    f32ish: 0.1,
    nil: null,
    t: true,
    f: false,
    ascii: 'hello',
    utf8: 'héllo ✓ 𝄞',
    long: 'x'.repeat(70000),
    bin: Buffer.from([0, 1, 2, 255]),
    time: new EventTime(1700000000, 5),
    arr: [1, 'two', { three: 3 }],
    nested: { 'a.b': { c: [10, 20, { d: 'deep' }] } },
    empty: {},
  };
  const bytes = encode(record);
  const decoded = decode(bytes);
  for (const path of [
    ...Object.keys(record).map((x) => [x]),
    ['arr', 0],
    ['arr', '1'],
    ['arr', 2, 'three'],
    ['arr', '01'],
    ['arr', 3],
    ['nested', 'a.b', 'c', 2, 'd'],
    ['nested', 'a', 'b'],
    ['nested', 'a.b', 'c', 'length'],
    ['ascii', 'length'],
    ['missing'],
    ['missing', 'x'],
    ['nil', 'x'],
    ['empty', 'x'],
  ] as PathPart[][]) {
    assert.deepEqual(viewGet(bytes, path), readDecoded(decoded, path), `path ${JSON.stringify(path)}`);
  }
  // float32 goes through the codec (its rounding), as decode.
  const f32 = Buffer.concat([Buffer.from([0x81]), k('f'), Buffer.from([0xca, 0x3d, 0xcc, 0xcc, 0xcd])]);
  assert.equal(viewGet(f32, ['f']), (decode(f32) as Record<string, unknown>).f);
});

test('a duplicate key reads as its last value, at the top and nested', () => {
  const inner = map([
    [k('x'), encode(1)],
    [k('x'), encode(2)],
  ]);
  const bytes = map([
    [k('a'), encode('first')],
    [k('n'), inner],
    [k('a'), encode('last')],
  ]);
  const decoded = decode(bytes);
  assert.equal(viewGet(bytes, ['a']), readDecoded(decoded, ['a']));
  assert.equal(viewGet(bytes, ['a']), 'last');
  assert.equal(viewGet(bytes, ['n', 'x']), readDecoded(decoded, ['n', 'x']));
});

test('a __proto__ key is data: read as decode keeps it, never a prototype', () => {
  const bytes = map([
    [k('__proto__'), encode({ polluted: true })],
    [k('constructor'), encode('c')],
  ]);
  const decoded = decode(bytes) as Record<string, unknown>;
  assert.deepEqual(viewGet(bytes, ['__proto__']), readDecoded(decoded, ['__proto__']));
  assert.equal(viewGet(bytes, ['__proto__', 'polluted']), true);
  assert.equal(viewGet(bytes, ['constructor']), 'c');
  assert.equal(viewGet(encode({ a: 1 }), ['constructor']), undefined, 'no inherited property is found');
  // Inside a value the view builds itself (small maps) as inside one the codec builds.
  const nested = map([
    [
      k('m'),
      map([
        [k('__proto__'), encode({ x: 1 })],
        [k('ü'), encode(2)],
      ]),
    ],
    [k('s'), map([[k('__proto__'), encode({ x: 1 })]])],
  ]);
  const dec = decode(nested) as Record<string, unknown>;
  for (const key of ['m', 's']) {
    const got = viewGet(nested, [key]) as Record<string, unknown>;
    assert.deepEqual(got, dec[key]);
    assert.equal(Object.getPrototypeOf(got), Object.prototype);
    assert.deepEqual(Object.getOwnPropertyDescriptor(got, '__proto__')?.value, { x: 1 });
  }
  const ev = new WireEvent('t', new EventTime(1, 0), bytes);
  ev.edit({ op: 'put', key: '__proto__', value: 'x', move: false });
  ev.edit({ op: 'put', key: 'toString', value: 'y', move: true });
  const out = decode(ev.raw!) as Record<string, unknown>;
  assert.equal(Object.getOwnPropertyDescriptor(out, '__proto__')?.value, 'x');
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(typeof ({} as { toString: unknown }).toString, 'function');
});

test('keys that are not strings and truncated bytes: the view hands over to decoding, never loops', () => {
  const binKey = Buffer.concat([Buffer.from([0x81, 0xc4, 0x01, 0x61]), encode(1)]);
  assert.throws(() => viewGet(binKey, ['a']), ViewUnsupported);
  const intKey = Buffer.concat([Buffer.from([0x81, 0x05]), encode(1)]);
  assert.throws(() => viewGet(intKey, ['a']), ViewUnsupported);
  const nestedIntKey = Buffer.concat([Buffer.from([0x81]), k('m'), Buffer.from([0x81, 0x05]), encode(1)]);
  assert.equal(viewGet(nestedIntKey, ['x']), undefined, 'other keys still read');
  assert.throws(() => viewGet(nestedIntKey, ['m', 'a']), ViewUnsupported);
  assert.throws(() => viewGet(encode([1, 2]), ['a']), ViewUnsupported, 'not a map');
  const full = encode({ user: { username: 'u', groups: ['a', 'b'] }, verb: 'get', n: 'x'.repeat(300) });
  for (let cut = 0; cut < full.length; cut++) {
    const part = full.subarray(0, cut);
    for (const path of [['verb'], ['user', 'groups'], ['n'], ['zzz']]) {
      try {
        viewGet(part, path);
      } catch (e) {
        assert.equal(e, UNSUPPORTED, `cut at ${cut}: ${(e as Error).message}`);
      }
    }
  }
  // A map32 header claiming 4 billion entries over a few bytes: refused at once.
  const hostile = Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 0x01]);
  assert.throws(() => viewGet(hostile, ['a']), ViewUnsupported);
  assert.throws(() => applyEdits(hostile, [{ op: 'remove', path: ['a'] }]), ViewUnsupported);
});

// --- edits ---------------------------------------------------------------------------------

const auditEvents: Array<Record<string, unknown>> = [
  ...(parse(readFileSync(join(conformanceDir, 'k8s-audit-policy', 'cases.yaml'), 'utf8')) as Array<{ event: Record<string, unknown> }>).map((c) => c.event),
  ...readdirSync(join(falcoCorpus, 'events'))
    .flatMap((f) => readFileSync(join(falcoCorpus, 'events', f), 'utf8').split('\n'))
    .filter((l) => l.trim().startsWith('{'))
    .flatMap((l) => {
      try {
        const v = JSON.parse(l) as Record<string, unknown>;
        return v.kind === 'Event' ? [v] : [];
      } catch {
        return [];
      }
    }),
];

/** A small deterministic generator (the same edit sets every run). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

const KEYS = ['level', 'stage', 'verb', 'requestObject', 'responseObject', 'cluster', 'user', 'annotations', '__proto__', 'objectRef', 'new.key', 'ü'];
const NESTED: PathPart[][] = [
  ['requestObject', 'metadata', 'managedFields'],
  ['requestObject', 'spec', 'containers', 0, 'securityContext'],
  ['requestObject', 'items', 1, 'metadata', 'managedFields'],
  ['user', 'groups'],
  ['objectRef', 'name'],
  ['objectRef', 'missing', 'x'],
  ['responseObject', 'metadata'],
  ['verb', 'x'],
];
const VALUES: unknown[] = ['bench', '', 'Metadata', 42, null, { a: [1, 2] }, ['x'], true, 'ñ'.repeat(40)];

function randomEdits(r: () => number): Edit[] {
  const n = 1 + Math.floor(r() * 5);
  const out: Edit[] = [];
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)]!;
  for (let i = 0; i < n; i++) {
    const kind = Math.floor(r() * 9);
    if (kind === 6) {
      const prefix = pick(['re', 'u', 'zz', '', '__']);
      const keys = new Set([pick(KEYS), pick(KEYS)]);
      out.push({ op: 'removeKeys', match: (k) => keys.has(k) || (prefix !== '' && k.startsWith(prefix)) });
    } else if (kind === 7) out.push({ op: 'copy', key: pick(KEYS), to: pick(KEYS) });
    else if (kind === 8) {
      const prefix = pick(['re', 'u', 'o', 'zz', 'new', 'ü']);
      out.push({ op: 'move', match: (k) => k.startsWith(prefix), toStart: r() < 0.5 });
    } else if (kind === 0) out.push({ op: 'put', key: pick(KEYS), value: pick(VALUES), move: r() < 0.5 });
    else if (kind === 1) out.push({ op: 'remove', path: [pick(KEYS)] });
    else if (kind === 2) out.push({ op: 'remove', path: pick(NESTED) });
    else if (kind === 3) out.push({ op: 'rename', key: pick(KEYS), to: pick(KEYS) });
    else {
      // nest / lift with the names a prefix change gives (collisions included: 'x' + 'a' / 'xa').
      const strip = pick(['', 're', 'u', 'x']);
      const add = pick(['', 'x', 'p_']);
      const name = (k: string) => add + (strip !== '' && k.startsWith(strip) ? k.slice(strip.length) : k);
      if (kind === 4) {
        const keys = new Set([pick(KEYS), pick(KEYS)]);
        const prefix = pick(['re', 'u', 'zz', '']);
        out.push({ op: 'nest', under: pick(KEYS), match: (k) => keys.has(k) || (prefix !== '' && k.startsWith(prefix)), name });
      } else out.push({ op: 'lift', under: pick(['user', 'objectRef', 'annotations', 'requestObject', 'verb', 'missing', ...KEYS]), name });
    }
  }
  return out;
}

test('edits applied to the bytes give the record decode-apply-encode gives (conformance events x edit sets)', () => {
  assert.ok(auditEvents.length >= 46, `${auditEvents.length} events`);
  const r = rng(17);
  let spliced = 0;
  for (const [i, event] of auditEvents.entries()) {
    for (let round = 0; round < 12; round++) {
      const edits = randomEdits(r);
      const bytes = encode(event);
      let expected = decode(bytes) as Record<string, unknown>;
      for (const e of edits) expected = applyEdit(expected, e);
      const what = `event ${i}, edits ${JSON.stringify(edits)}`;
      let got: Buffer | undefined;
      try {
        got = applyEdits(bytes, edits);
      } catch (e) {
        assert.equal(e, UNSUPPORTED, what);
      }
      if (got !== undefined) {
        spliced++;
        assert.equal(toJSONLine(decode(got)), toJSONLine(expected), what);
        // The view over the edited bytes (its index adopted from the splice) reads them right.
        const view = new RecordView().reset(got);
        for (const key of KEYS) assert.deepEqual(view.get([key]), readDecoded(expected, [key]), `${what}: ${key}`);
      }
      // Through the event: the bytes, and the record when it is read instead.
      const a = new WireEvent('t', new EventTime(1, 0), bytes);
      const b = new WireEvent('t', new EventTime(1, 0), bytes);
      for (const e of edits) {
        a.edit(e);
        b.edit(e);
      }
      const raw = a.raw;
      assert.equal(toJSONLine(raw !== undefined ? decode(raw) : a.record), toJSONLine(expected), what);
      assert.equal(toJSONLine(b.record), toJSONLine(expected), what);
    }
  }
  assert.ok(spliced > auditEvents.length * 10, `most edit sets apply to the bytes (${spliced})`);
});

test('edits with duplicate keys keep the first place and the last value, as decoding', () => {
  const bytes = map([
    [k('a'), encode(1)],
    [k('b'), encode({ x: 1 })],
    [k('a'), encode(2)],
  ]);
  for (const edits of [[{ op: 'put', key: 'c', value: 3, move: false }], [{ op: 'remove', path: ['a'] }], [{ op: 'rename', key: 'a', to: 'z' }], [{ op: 'remove', path: ['b', 'x'] }]] as Edit[][]) {
    let expected = decode(bytes) as Record<string, unknown>;
    for (const e of edits) expected = applyEdit(expected, e);
    assert.equal(toJSONLine(decode(applyEdits(bytes, edits))), toJSONLine(expected), JSON.stringify(edits));
  }
  // A nested duplicate an edit names: left to the object path.
  const dupNested = map([
    [
      k('m'),
      map([
        [k('x'), encode({ y: 1 })],
        [k('x'), encode({ y: 2 })],
      ]),
    ],
  ]);
  assert.throws(() => applyEdits(dupNested, [{ op: 'remove', path: ['m', 'x', 'y'] }]), ViewUnsupported);
  const ev = new WireEvent('t', new EventTime(1, 0), dupNested);
  ev.edit({ op: 'remove', path: ['m', 'x', 'y'] });
  assert.equal(ev.raw, undefined, 'decoded instead');
  assert.deepEqual(ev.record, { m: { x: {} } });
});

test('hasKey answers from the pending edits and the bytes without applying them', () => {
  const ev = new WireEvent('t', new EventTime(1, 0), encode({ a: 1, b: 2 }));
  const view = new RecordView();
  assert.equal(ev.hasKey('a', view), true);
  assert.equal(ev.hasKey('c', view), false);
  ev.edit({ op: 'put', key: 'c', value: 'x', move: false });
  ev.edit({ op: 'remove', path: ['a'] });
  ev.edit({ op: 'rename', key: 'b', to: 'd' });
  assert.equal(ev.hasKey('c', view), true);
  assert.equal(ev.hasKey('a', view), false);
  assert.equal(ev.hasKey('b', view), false);
  assert.equal(ev.hasKey('d', view), true);
  assert.ok(ev.isBytes, 'still bytes');
  assert.deepEqual(decode(ev.raw!), { d: 2, c: 'x' });
});

test('the forward input indexes each record as it frames it (map32 too): views read it as decode does', async (t) => {
  const { decodeFrame } = await import('../../../src/inputs/forward/protocol.js');
  const records: Array<Record<string, unknown>> = [
    { a: 1, 'a.b': { c: 'd' }, big: 2n ** 60n, s: 'é' },
    {},
    Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i % 2 ? 'v'.repeat(i * 10) : { n: i }])),
  ];
  const binKey = Buffer.concat([Buffer.from([0x82, 0xc4, 0x01, 0x61]), encode(1), k('b'), encode(2)]);
  // Fluent Bit writes every record map as map32, duplicates included.
  const map32 = (pairs: Array<[string, unknown]>) => {
    const head = Buffer.alloc(5);
    head[0] = 0xdf;
    head.writeUInt32BE(pairs.length, 1);
    return Buffer.concat([head, ...pairs.flatMap(([key, v]) => [k(key), encode(v)])]);
  };
  const wide = [
    map32([
      ['kind', 'Event'],
      ['verb', 'get'],
      ['user', { username: 'u' }],
    ]),
    map32([
      ['a', 1],
      ['b', 2],
      ['a', 3],
    ]),
  ];
  records.push({ kind: 'Event', verb: 'get', user: { username: 'u' } }, { a: 3, b: 2 });
  const entries = Buffer.concat([
    ...records.slice(0, 3).map((r) => Buffer.concat([Buffer.from([0x92]), encode(new EventTime(1, 2)), encode(r)])),
    ...wide.map((r) => Buffer.concat([Buffer.from([0x92]), encode(new EventTime(1, 2)), r])),
    Buffer.concat([Buffer.from([0x92]), encode(new EventTime(1, 2)), binKey]),
  ]);
  // The view must not index again what the input indexed.
  const proto = RecordView.prototype as unknown as { index: () => void };
  const index = proto.index;
  let indexed = 0;
  proto.index = function (this: RecordView) {
    indexed++;
    index.call(this);
  };
  t.after(() => {
    proto.index = index;
  });
  for (const packed of [false, true]) {
    const frame = packed ? Buffer.concat([Buffer.from([0x92]), encode('t'), encode(entries)]) : Buffer.concat([Buffer.from([0x92]), encode('t'), Buffer.from([0x96]), entries]);
    const msg = decodeFrame(frame) as unknown as { events: WireEvent[] };
    assert.equal(msg.events.length, 6);
    const view = new RecordView();
    for (const [i, e] of msg.events.entries()) {
      const want = decode(e.raw!) as Record<string, unknown>;
      if (i < 5) assert.deepEqual(want, records[i]);
      if (i === 5) {
        assert.equal(e.open(view), false, 'a binary key: not readable in place');
        continue;
      }
      indexed = 0;
      assert.ok(e.open(view), `record ${i}`);
      if (Object.keys(want).length) assert.equal(indexed, 0, `record ${i}: indexed by the input`);
      for (const key of Object.keys(want)) assert.deepEqual(view.get([key]), want[key], `record ${i} key ${key}`);
      assert.equal(view.get(['nope']), undefined);
      e.edit({ op: 'put', key: 'z', value: 1, move: false });
      assert.deepEqual(decode(e.raw!), { ...want, z: 1 });
    }
  }
});

test('short strings read again come back as equal strings, colliding or not, ASCII only', async () => {
  const { asciiText } = await import('../../../src/core/record-bytes.js');
  const words = Array.from({ length: 20000 }, (_, i) => `w${i.toString(36)}`);
  words.push('', 'x'.repeat(64), 'y'.repeat(65), 'get', 'list');
  for (let round = 0; round < 2; round++) {
    for (const w of words) {
      const b = Buffer.from(`..${w}..`, 'latin1');
      assert.equal(asciiText(b, 2, 2 + w.length), w);
    }
  }
  assert.equal(asciiText(Buffer.from('aé'), 0, 3), undefined, 'not ASCII: left to the UTF-8 decoder');
  assert.equal(asciiText(Buffer.from([0x61, 0x80]), 0, 2), undefined);
  const view = new RecordView();
  view.reset(encode({ verb: 'get', v2: 'get' }));
  assert.equal(view.get(['verb']), 'get');
  assert.equal(view.get(['v2']), 'get');
});

test('copy, removeKeys and move on the bytes: places, duplicates and a copy that shares its value', () => {
  const bytes = map([
    [k('a'), encode(1)],
    [k('__proto__'), encode({ x: 1 })],
    [k('b'), encode({ x: 1, y: 2 })],
    [k('a'), encode(2)],
    [k('ü'), encode('é')],
  ]);
  const cases: Array<[Edit[], string]> = [
    [[{ op: 'copy', key: 'a', to: 'z' }], '{"a":2,"z":2,"__proto__":{"x":1},"b":{"x":1,"y":2},"ü":"é"}'],
    [[{ op: 'copy', key: 'b', to: '__proto__' }], '{"a":2,"b":{"x":1,"y":2},"__proto__":{"x":1,"y":2},"ü":"é"}'],
    [[{ op: 'removeKeys', match: (key) => key === 'a' || key === '__proto__' }], '{"b":{"x":1,"y":2},"ü":"é"}'],
    [[{ op: 'move', match: (key) => key === 'ü' || key === 'a', toStart: true }], '{"a":2,"ü":"é","__proto__":{"x":1},"b":{"x":1,"y":2}}'],
    [
      [
        { op: 'move', match: (key) => key.startsWith('_'), toStart: false },
        { op: 'copy', key: 'ü', to: 'u' },
      ],
      '{"a":2,"b":{"x":1,"y":2},"ü":"é","u":"é","__proto__":{"x":1}}',
    ],
  ];
  for (const [edits, json] of cases) {
    let expected = decode(bytes) as Record<string, unknown>;
    for (const e of edits) expected = applyEdit(expected, e);
    assert.equal(toJSONLine(expected), json, 'the object');
    const got = applyEdits(bytes, edits);
    assert.equal(got.toString('hex'), encode(expected).toString('hex'), JSON.stringify(edits));
  }
  // Removing inside a value a copy shares with its source removes it from both in the object:
  // left to the object, with the object's result.
  const edits: Edit[] = [
    { op: 'copy', key: 'b', to: 'c' },
    { op: 'remove', path: ['b', 'x'] },
  ];
  assert.throws(() => applyEdits(bytes, edits), ViewUnsupported);
  const ev = new WireEvent('t', new EventTime(1, 0), bytes);
  for (const e of edits) ev.edit(e);
  assert.equal(ev.raw, undefined, 'decoded instead');
  assert.equal(toJSONLine(ev.record), '{"a":2,"__proto__":{"x":1},"b":{"y":2},"c":{"y":2},"ü":"é"}');
});

test('hasKey answers for removeKeys, copy and move edits without applying them', () => {
  const ev = new WireEvent('t', new EventTime(1, 0), encode({ a: 1, b: 2, tag_x: 3 }));
  const view = new RecordView();
  ev.edit({ op: 'removeKeys', match: (key) => key.startsWith('tag_') });
  ev.edit({ op: 'copy', key: 'a', to: 'tag_y' });
  ev.edit({ op: 'move', match: (key) => key === 'b', toStart: true });
  assert.equal(ev.hasKey('tag_x', view), false);
  assert.equal(ev.hasKey('tag_y', view), true);
  assert.equal(ev.hasKey('a', view), true);
  assert.equal(ev.hasKey('b', view), true);
  assert.equal(ev.hasKey('c', view), false);
  assert.ok(ev.isBytes, 'still bytes');
  assert.deepEqual(Object.entries(decode(ev.raw!) as object), [
    ['b', 2],
    ['a', 1],
    ['tag_y', 1],
  ]);
});

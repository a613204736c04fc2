/** msgpack → JSON from bytes must give exactly the text of decode + JSON serialisation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Encoder } from '@msgpack/msgpack';
import { JsonWriter, writeRecordJSON } from '../../../src/core/msgpack-json.js';
import { decode } from '../../../src/core/msgpack.js';
import { toJSONLine } from '../../../src/core/json.js';
import { falcoCorpus } from '../../support/paths.js';

const enc = new Encoder({ useBigInt64: true });

function viaBytes(raw: Uint8Array, prefix?: string): string {
  const w = new JsonWriter(16);
  if (prefix !== undefined) {
    w.byte(0x7b);
    w.text(prefix);
  }
  writeRecordJSON(w, raw, prefix !== undefined);
  return w.view().toString('utf8');
}

function same(raw: Uint8Array, what: string): void {
  assert.equal(viaBytes(raw), toJSONLine(decode(raw)), what);
}

test('every conformance audit event: bytes path equals the object path', () => {
  const dir = join(falcoCorpus, 'events');
  let n = 0;
  for (const f of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const v = JSON.parse(line) as unknown;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) continue;
      same(enc.encode(v), f);
      n++;
    }
  }
  assert.ok(n > 40);
});

test('escapes, unicode, numbers of every width, nesting, nil and booleans', () => {
  const rec = {
    quote: 'say "hi"\\ now',
    ctrl: 'a\nb\tc\rd\b\f\u0001\u001f',
    uni: 'café ✓ 𝄞 日本',
    del: '\u007f',
    ints: [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1],
    floats: [0.5, -1.25, 1e300, Math.PI, 1e-7],
    big: [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n],
    nested: { a: [{ b: null, c: true, d: false }], e: {} },
    empty: '',
    long: 'x'.repeat(70_000),
  };
  same(enc.encode(rec), 'mixed record');
  same(enc.encode({}), 'empty map');
});

test('long strings (the native scan): each byte that needs escaping, anywhere, and non-ASCII text', () => {
  const base = 'abcdefghij'.repeat(300);
  const specials = ['"', '\\', '\n', '\u0000', '\u0001', '\u001f', '\t', '\u007f', 'é', '✓', '𝄞'];
  for (const c of specials) {
    for (const at of [0, 1500, base.length]) {
      const s = base.slice(0, at) + c + base.slice(at);
      same(enc.encode({ s }), `long string with ${JSON.stringify(c)} at ${at}`);
    }
  }
  same(enc.encode({ s: base }), 'long clean string');
  // invalid UTF-8 inside a long string: {"s": str8/str16 of 2000 bytes with 0xff in the middle}
  const bytes = Buffer.alloc(2000, 0x61);
  bytes[1000] = 0xff;
  const raw = Buffer.concat([Buffer.from([0x81, 0xa1, 0x73, 0xda, 0x07, 0xd0]), bytes]);
  same(raw, 'long string with invalid UTF-8');
});

test('values only the object path handles give the same text: ext, binary keys, invalid UTF-8, binary values', () => {
  // {"t": ext type 5 (4 bytes)}
  same(Buffer.from([0x81, 0xa1, 0x74, 0xd6, 0x05, 1, 2, 3, 4]), 'ext value');
  // {<bin "k">: "v"}
  same(Buffer.from([0x81, 0xc4, 0x01, 0x6b, 0xa1, 0x76]), 'binary key');
  // {"s": <str with invalid UTF-8>}
  same(Buffer.from([0x81, 0xa1, 0x73, 0xa2, 0xff, 0xfe]), 'invalid utf8');
  // {"b": <bin "ok">}
  same(Buffer.from([0x81, 0xa1, 0x62, 0xc4, 0x02, 0x6f, 0x6b]), 'binary value');
});

test('digits: integers written digit by digit, zero-padded to a width', () => {
  const w = new JsonWriter(4);
  for (const [n, width, want] of [
    [0, 1, '0'],
    [7, 6, '000007'],
    [1714564800, 1, '1714564800'],
    [123456, 6, '123456'],
    [Number.MAX_SAFE_INTEGER, 1, String(Number.MAX_SAFE_INTEGER)],
  ] as const) {
    w.reset();
    w.digits(n, width);
    assert.equal(w.view().toString(), want);
  }
});

test('a member the caller opened the object with comes first, also for an empty map and on the slow path', () => {
  assert.equal(viaBytes(enc.encode({ a: 1 }), '"date":1.5'), '{"date":1.5,"a":1}');
  assert.equal(viaBytes(enc.encode({}), '"date":1.5'), '{"date":1.5}');
  assert.equal(viaBytes(Buffer.from([0x81, 0xc4, 0x01, 0x6b, 0xa1, 0x76]), '"d":2'), '{"d":2,"k":"v"}');
});

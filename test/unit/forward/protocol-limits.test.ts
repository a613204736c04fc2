/** decodeFrame refuses what the framer cannot see: entries nested too deep, invalid extension values, times no date holds. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { decodeFrame, ProtocolError } from '../../../src/inputs/forward/protocol.js';
import { pack, WireTime } from '../../support/forward-client.js';

const deep = (n: number) => Buffer.concat([Buffer.alloc(n, 0x91), Buffer.from([0xc0])]);
const record = (value: Buffer) => Buffer.concat([Buffer.from([0x81]), pack('v'), value]);
const entry = (rec: Buffer) => Buffer.concat([Buffer.from([0x92]), pack(new WireTime(1_700_000_000, 0)), rec]);
const bin = (b: Buffer) => Buffer.concat([Buffer.from([0xc6, b.length >>> 24, (b.length >>> 16) & 255, (b.length >>> 8) & 255, b.length & 255]), b]);
const packed = (entries: Buffer, gzip = false) => Buffer.concat([Buffer.from([0x93]), pack('t'), bin(gzip ? gzipSync(entries) : entries), pack(gzip ? { compressed: 'gzip' } : {})]);
const forward = (...entries: Buffer[]) => Buffer.concat([Buffer.from([0x92]), pack('t'), Buffer.from([0x90 | entries.length]), ...entries]);
const refusal = (frame: Buffer): string => {
  try {
    decodeFrame(frame);
  } catch (e) {
    assert.ok(e instanceof ProtocolError, String(e));
    return `${e.reason}: ${e.message}`;
  }
  return 'accepted';
};

test('PackedForward and CompressedPackedForward: 256 levels from the entry pass, 257 are refused', () => {
  for (const gzip of [false, true]) {
    assert.equal(refusal(packed(entry(record(deep(254))), gzip)), 'accepted');
    assert.match(
      refusal(packed(Buffer.concat([entry(record(Buffer.from([0x01]))), entry(record(deep(255)))]), gzip)),
      /^too_deep: refused (Compressed)?PackedForward entry: nested deeper than 256 levels$/,
    );
  }
  // Metadata (Forward Protocol v1.5) counts too: [[time, {meta}], record].
  const metaEntry = Buffer.concat([Buffer.from([0x92, 0x92]), pack(new WireTime(1, 0)), record(deep(254)), pack({ a: 1 })]);
  assert.match(refusal(packed(metaEntry)), /^too_deep/);
});

test('an invalid timestamp extension or a reserved type in a record, metadata or Message mode is bad_ext', () => {
  const badTs = Buffer.from([0xd4, 0xff, 0x00]);
  assert.match(refusal(packed(entry(record(badTs)))), /^bad_ext: refused PackedForward entry: msgpack timestamp extension of 1 bytes/);
  assert.match(refusal(forward(entry(record(Buffer.from([0xd4, 0x80, 0x00]))))), /^bad_ext: refused Forward entry: reserved msgpack extension type -128/);
  const metaEntry = Buffer.concat([Buffer.from([0x92, 0x92]), pack(new WireTime(1, 0)), record(badTs), pack({ a: 1 })]);
  assert.match(refusal(packed(metaEntry)), /^bad_ext/);
  const message = Buffer.concat([Buffer.from([0x93]), pack('t'), pack(new WireTime(1, 0)), record(badTs)]);
  assert.match(refusal(message), /^bad_ext: refused message: msgpack timestamp/);
  // A valid msgpack timestamp in a record is data like any other.
  assert.equal(refusal(packed(entry(record(Buffer.from([0xd6, 0xff, 0x65, 0x53, 0xf1, 0x00]))))), 'accepted');
});

test('times no date can hold are bad_time', () => {
  for (const t of [1e300, 8.64e12, Number.MAX_SAFE_INTEGER]) {
    const frame = Buffer.concat([Buffer.from([0x93]), pack('t'), pack(t), pack({ a: 1 })]);
    assert.match(refusal(frame), /^bad_time/, String(t));
  }
  assert.equal(refusal(Buffer.concat([Buffer.from([0x93]), pack('t'), pack(1_700_000_000.5), pack({ a: 1 })])), 'accepted');
});

test('metadata: an empty map in any width (Fluent Bit writes map32) is no metadata; a map with entries is kept', () => {
  const rec = record(pack('x'));
  const withMeta = (meta: Buffer) => Buffer.concat([Buffer.from([0x92, 0x92]), pack(new WireTime(1, 0)), meta, rec]);
  const map32 = (pairs: Buffer) => Buffer.concat([Buffer.from([0xdf, 0, 0, 0, pairs.length ? 1 : 0]), pairs]);
  const empties = [Buffer.from([0x80]), Buffer.from([0xde, 0, 0]), map32(Buffer.alloc(0))];
  for (const meta of empties) {
    for (const frame of [forward(withMeta(meta)), packed(withMeta(meta))]) {
      const m = decodeFrame(frame);
      assert.equal(m.type, 'events');
      if (m.type !== 'events') continue;
      assert.equal(m.events.length, 1);
      assert.equal(m.events[0]!.metadata, undefined, meta.toString('hex'));
      assert.deepEqual(m.events[0]!.record, { v: 'x' });
    }
  }
  const m = decodeFrame(forward(withMeta(map32(Buffer.concat([pack('otlp'), pack({ a: 1 })])))));
  assert.ok(m.type === 'events');
  assert.deepEqual(m.events[0]!.metadata, { otlp: { a: 1 } });
});

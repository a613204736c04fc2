/** checkValue (nesting and extension values checked while skipping) and how the decoder takes extension values. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode } from '../../../src/core/msgpack.js';
import { checkValue, ScanError, skipValue } from '../../../src/core/msgpack-scan.js';

const deep = (n: number) => Buffer.concat([Buffer.alloc(n, 0x91), Buffer.from([0xc0])]);
const reason = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ScanError);
    return e.reason;
  }
  return 'accepted';
};

test('checkValue ends where skipValue does on ordinary values', () => {
  const values = [{ a: [1, 2, { b: 'x'.repeat(300) }], c: Buffer.alloc(70_000), d: 2n ** 63n, e: -1.5 }, [], {}, null, 'é', new Date(1_700_000_000_123)];
  for (const v of values) {
    const b = encode(v);
    assert.equal(checkValue(b, 0), skipValue(b, 0));
    assert.equal(checkValue(b, 0), b.length);
  }
});

test('nesting: 256 levels pass, 257 do not; 100,000 levels cost no stack', () => {
  assert.equal(
    reason(() => checkValue(deep(256), 0)),
    'accepted',
  );
  assert.equal(
    reason(() => checkValue(deep(257), 0)),
    'too_deep',
  );
  assert.equal(
    reason(() => checkValue(deep(100_000), 0)),
    'too_deep',
  );
  assert.equal(
    reason(() => checkValue(deep(20), 0, 10)),
    'too_deep',
  );
  // Empty containers do not open a level.
  assert.equal(
    reason(() => checkValue(Buffer.concat([Buffer.alloc(255, 0x91), Buffer.from([0x90])]), 0)),
    'accepted',
  );
  assert.equal(
    reason(() => checkValue(Buffer.from([0x92, 0x01]), 0)),
    'malformed',
  );
});

test('msgpack timestamps (ext -1): 4, 8 and 12 bytes with sound values pass and decode to their Date', () => {
  const t32 = Buffer.from([0xd6, 0xff, 0x65, 0x53, 0xf1, 0x00]); // 1700000000
  const t64 = Buffer.alloc(10);
  t64[0] = 0xd7;
  t64[1] = 0xff;
  t64.writeUInt32BE((123_000_000 << 2) >>> 0, 2);
  t64.writeUInt32BE(1_700_000_000, 6);
  const t96 = Buffer.alloc(15);
  t96.set([0xc7, 12, 0xff]);
  t96.writeUInt32BE(5_000_000, 3);
  t96.writeBigInt64BE(-1n, 7);
  for (const [b, ms] of [
    [t32, 1_700_000_000_000],
    [t64, 1_700_000_000_123],
    [t96, -995],
  ] as const) {
    assert.equal(checkValue(b, 0), b.length);
    const d = decode(b);
    assert.ok(d instanceof Date);
    assert.equal(d.getTime(), ms);
  }
});

test('invalid timestamps and reserved types are refused, and decode as their bytes, never an Invalid Date', () => {
  const badNs = Buffer.alloc(10);
  badNs[0] = 0xd7;
  badNs[1] = 0xff;
  badNs.writeUInt32BE(0xffffffff, 2);
  const farSec = Buffer.alloc(15);
  farSec.set([0xc7, 12, 0xff]);
  farSec.writeBigInt64BE(2n ** 62n, 7);
  const cases = [Buffer.from([0xd4, 0xff, 0x00]), Buffer.from([0xd5, 0xff, 0, 0]), badNs, farSec, Buffer.from([0xd4, 0xfe, 0x01]), Buffer.from([0xc7, 0, 0x80])];
  for (const b of cases) {
    assert.equal(
      reason(() => checkValue(Buffer.concat([Buffer.from([0x81, 0xa1, 0x74]), b]), 0)),
      'bad_ext',
      b.toString('hex'),
    );
    const v = decode(b);
    assert.ok(Buffer.isBuffer(v), `${b.toString('hex')} decodes as bytes`);
  }
  // Application types (EventTime is 0) are not checked; with exts off, nothing is.
  assert.equal(
    reason(() => checkValue(Buffer.from([0xd4, 0x05, 0x01]), 0)),
    'accepted',
  );
  assert.equal(
    reason(() => checkValue(Buffer.from([0xd4, 0xff, 0x00]), 0, 256, false)),
    'accepted',
  );
});

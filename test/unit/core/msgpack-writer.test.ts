/** MsgpackWriter writes what the codec writes for the same values, byte for byte. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, encode } from '../../../src/core/msgpack.js';
import { MsgpackWriter } from '../../../src/core/msgpack-writer.js';

test("strings of every header width, numbers of every form, BigInts, arrays and maps: the codec's bytes", () => {
  const w = new MsgpackWriter(8);
  const strings = [
    '',
    'a',
    'x'.repeat(10),
    'x'.repeat(11),
    'x'.repeat(31),
    'x'.repeat(32),
    'é'.repeat(15),
    'é'.repeat(16),
    '🚀'.repeat(63),
    '🚀'.repeat(64),
    'y'.repeat(255),
    'y'.repeat(256),
    'z'.repeat(65535),
    'z'.repeat(65536),
    'ü\u0000"\\',
  ];
  for (const s of strings) {
    w.str(s);
    assert.deepEqual(w.take(), encode(s), `string of ${s.length}`);
  }
  const numbers = [
    0,
    -0,
    1,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2 ** 32 - 1,
    2 ** 32,
    2 ** 40,
    -1,
    -32,
    -33,
    -128,
    -129,
    -32768,
    -32769,
    -(2 ** 31),
    -(2 ** 31) - 1,
    1.5,
    -2.25,
    Number.MAX_SAFE_INTEGER,
    1e300,
  ];
  for (const n of numbers) {
    w.num(n);
    assert.deepEqual(w.take(), encode(n), `number ${n}`);
  }
  for (const b of [0n, 5n, 1540561114902914000n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n]) {
    w.big(b);
    assert.deepEqual(w.take(), encode(b), `BigInt ${b}`);
  }
  for (const n of [0, 15, 16, 65535, 65536]) {
    w.array(n);
    for (let i = 0; i < n; i++) w.nil();
    assert.deepEqual(w.take(), encode(new Array(n).fill(null)), `array of ${n}`);
    w.map(n);
    const o: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      w.str(`k${i}`);
      w.num(i);
      o[`k${i}`] = i;
    }
    const bytes = w.take();
    assert.deepEqual(bytes, encode(o), `map of ${n}`);
    assert.deepEqual(decode(bytes), o);
  }
  w.raw(encode({ a: [1, 'b'] }));
  assert.deepEqual(decode(w.take()), { a: [1, 'b'] });
});

test('take: what was written, copied out; earlier results are never written over', () => {
  const w = new MsgpackWriter(4);
  const out: Buffer[] = [];
  for (let i = 0; i < 5000; i++) {
    w.str(`value ${i} ${'p'.repeat(i % 300)}`);
    out.push(w.take());
  }
  w.str('q'.repeat(200_000));
  const big = w.take();
  out.forEach((b, i) => {
    assert.equal(decode(b), `value ${i} ${'p'.repeat(i % 300)}`);
  });
  assert.equal((decode(big) as string).length, 200_000);
});

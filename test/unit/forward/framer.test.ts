/**
 * The forward framer finds top-level msgpack values in a byte stream: whatever the segments the
 * stream arrives in (split at every byte boundary, one byte at a time, several frames at once),
 * the frames it reports are the values that were sent, byte for byte; its buffer stays within
 * buffer_max_size and the budget shared by the connections.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BudgetExhausted, BufferBudget, FrameTooLarge, Framer, MalformedFrame } from '../../../src/forward-protocol/framer.js';
import { bin32Header, ext8Time, fixarray, pack, str32Header, WireTime } from '../../support/forward-client.js';

/** Values of every msgpack family the scanner skips by header, length or nesting. */
const FRAMES: Buffer[] = [
  Buffer.from([0xc0]), // nil (heartbeat)
  pack(['tag', 1_700_000_000, { msg: 'message mode', n: -5, f: 1.5, t: true, z: null }]),
  pack([
    'fw',
    [
      [new WireTime(1_700_000_000, 1), { a: 'x'.repeat(40) }],
      [new WireTime(1_700_000_001, 2), { b: [1, 2, [3, { c: 4 }]] }],
    ],
    { chunk: 'c1' },
  ]),
  Buffer.concat([fixarray(2), pack('str8'), pack('y'.repeat(200))]), // str8
  Buffer.concat([fixarray(2), pack('str16'), pack('z'.repeat(300))]), // str16
  Buffer.concat([fixarray(2), pack('bin32'), bin32Header(3), Buffer.from([1, 2, 3])]),
  Buffer.concat([fixarray(2), pack('str32'), str32Header(2), Buffer.from('ok')]),
  Buffer.concat([fixarray(3), pack('ext8'), ext8Time(1_700_000_000, 9), pack({})]),
  pack({ map16: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])) }),
  pack(Array.from({ length: 20 }, (_, i) => i * 1000)), // array16 with uint16 items
  pack([2 ** 40, -(2 ** 40), 0xffffffff, -129, 3.25]), // 64/32-bit ints and float64
  pack(new Uint8Array(300)), // bin16
];
const STREAM = Buffer.concat(FRAMES);

function collect(framer: Framer, segments: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  // A frame is a view valid only during the call: copy it.
  for (const s of segments) framer.push(s, (f) => out.push(Buffer.from(f)));
  return out;
}

test('a stream cut in two at every byte boundary gives the same frames', () => {
  for (let at = 0; at <= STREAM.length; at++) {
    const got = collect(new Framer(4096, 1 << 20), [STREAM.subarray(0, at), STREAM.subarray(at)]);
    assert.deepEqual(got, FRAMES, `cut at ${at}`);
  }
});

test('one byte at a time, and every frame in one push', () => {
  const bytes = Array.from({ length: STREAM.length }, (_, i) => STREAM.subarray(i, i + 1));
  const f = new Framer(4096, 1 << 20);
  assert.deepEqual(collect(f, bytes), FRAMES);
  assert.equal(f.frames, FRAMES.length);
  assert.equal(f.buffered, 0);
  const all = new Framer(4096, 1 << 20);
  assert.deepEqual(collect(all, [STREAM]), FRAMES);
  assert.equal(all.frames, FRAMES.length);
});

test('a partial frame is held, not reported, until its last byte', () => {
  const frame = FRAMES[2]!;
  const f = new Framer(4096, 1 << 20);
  assert.deepEqual(collect(f, [frame.subarray(0, frame.length - 1)]), []);
  assert.equal(f.buffered, frame.length - 1);
  assert.deepEqual(collect(f, [frame.subarray(frame.length - 1), FRAMES[0]!, FRAMES[1]!.subarray(0, 3)]), [frame, FRAMES[0]]);
  assert.equal(f.buffered, 3);
});

test('the buffer grows past buffer_chunk_size for a large frame and shrinks back after it', () => {
  const big = Buffer.concat([fixarray(2), pack('big'), pack('b'.repeat(100_000))]);
  const f = new Framer(8192, 1 << 20);
  const got: number[] = [];
  for (let i = 0; i < big.length; i += 1000) f.push(big.subarray(i, i + 1000), (fr) => got.push(fr.length));
  assert.deepEqual(got, [big.length]);
  assert.equal(f.capacity, 8192, 'back to buffer_chunk_size once the frame is done');
  // A first small segment takes 4 KiB, not the whole chunk size.
  const small = new Framer(65536, 1 << 20);
  small.push(FRAMES[1]!.subarray(0, 5), () => undefined);
  assert.equal(small.capacity, 4096);
});

test('buffer_max_size: a frame over it is refused, as soon as a header says so', () => {
  const max = 16 * 1024;
  // The str32 header declares 1 MiB: refused before the payload arrives.
  const f = new Framer(4096, max);
  assert.throws(
    () => f.push(Buffer.concat([fixarray(2), pack('t'), str32Header(1 << 20)]), () => undefined),
    (e: unknown) => {
      assert.ok(e instanceof FrameTooLarge);
      assert.equal(e.max, max);
      assert.ok(e.size > max);
      return true;
    },
  );
  // Many small values add up: refused once the held bytes pass the cap.
  const g = new Framer(4096, max);
  const header = Buffer.from([0xdd, 0x00, 0x01, 0x00, 0x00]); // array32 of 65536 items
  assert.throws(() => {
    g.push(header, () => undefined);
    for (let i = 0; i < 1000; i++) g.push(pack('x'.repeat(100)), () => undefined);
  }, FrameTooLarge);
  // A frame of exactly the cap fits; raising maxSize later (after authentication) lets more in.
  const exact = Buffer.concat([Buffer.from([0xc4, 0xfb]), Buffer.alloc(0xfb)]); // bin8 of 251: 253 bytes
  const h = new Framer(64, 253);
  assert.deepEqual(collect(h, [exact]), [exact]);
  const over = Buffer.concat([Buffer.from([0xc5, 0x01, 0x00]), Buffer.alloc(256)]);
  assert.throws(() => collect(new Framer(64, 253), [over]), FrameTooLarge);
  const raised = new Framer(64, 253);
  raised.maxSize = 1024;
  assert.deepEqual(collect(raised, [over]), [over]);
});

test('malformed input: an invalid type byte, nesting past 256 levels, a bad extension', () => {
  assert.throws(
    () => collect(new Framer(4096, 1 << 20), [Buffer.from([0x92, 0xc1])]),
    (e: unknown) => e instanceof MalformedFrame && e.reason === 'malformed',
  );
  const deep = Buffer.concat([Buffer.alloc(257, 0x91), Buffer.from([0xc0])]);
  assert.throws(() => collect(new Framer(4096, 1 << 20), [deep]), /nesting deeper than 256 levels/);
  const ok = Buffer.concat([Buffer.alloc(256, 0x91), Buffer.from([0xc0])]);
  assert.deepEqual(collect(new Framer(4096, 1 << 20), [ok]), [ok]);
  // A timestamp extension (type -1) of 1 byte is no valid timestamp.
  assert.throws(
    () => collect(new Framer(4096, 1 << 20), [Buffer.from([0x92, 0xd4, 0xff, 0x00, 0xc0])]),
    (e: unknown) => e instanceof MalformedFrame && e.reason === 'bad_ext',
  );
});

test('the shared budget bounds the buffers of all connections; release gives the bytes back', () => {
  const budget = new BufferBudget(10_000);
  const a = new Framer(4096, 1 << 20, budget);
  const b = new Framer(4096, 1 << 20, budget);
  const partial = (n: number) => Buffer.concat([fixarray(2), pack('t'), str32Header(100_000), Buffer.alloc(n)]);
  a.push(partial(4000), () => undefined);
  assert.equal(budget.used, a.capacity);
  b.push(partial(4000), () => undefined);
  assert.equal(budget.used, a.capacity + b.capacity);
  assert.throws(() => a.push(Buffer.alloc(3000), () => undefined), BudgetExhausted);
  const before = budget.used;
  b.release();
  assert.equal(budget.used, before - 4096);
  assert.equal(b.capacity, 0);
  // After release the connection's data is ignored and nothing is taken.
  b.push(FRAMES[1]!, () => assert.fail('a released framer reports nothing'));
  assert.equal(budget.used, before - 4096);
});

test('a frame handler that releases the framer stops the scan', () => {
  const f = new Framer(4096, 1 << 20);
  const got: Buffer[] = [];
  f.push(STREAM, (fr) => {
    got.push(Buffer.from(fr));
    if (got.length === 2) f.release();
  });
  assert.deepEqual(got, FRAMES.slice(0, 2));
});

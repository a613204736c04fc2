/** The chunk file format and its CRC-32: round trips, and every way a file can be torn or corrupt. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { crc32, crc32Table } from '../../../src/core/storage/crc32.js';
import { CorruptChunk, decodeChunk, encodeChunk, readHeader, type Segment } from '../../../src/core/storage/chunk-file.js';

test('CRC-32: the check value of the IEEE polynomial, and the table form equals zlib on random data', () => {
  assert.equal(crc32Table(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  const native = (zlib as unknown as { crc32?: (b: Uint8Array, p?: number) => number }).crc32;
  for (let i = 0; i < 20; i++) {
    const b = randomBytes(1 + Math.floor(Math.random() * 5000));
    const cut = Math.floor(b.length / 2);
    assert.equal(crc32Table(b.subarray(cut), crc32Table(b.subarray(0, cut))), crc32Table(b), 'running checksum');
    if (native) assert.equal(crc32Table(b), native(b) >>> 0);
  }
});

function sample(): Segment[] {
  const rec: Record<string, unknown> = { verb: 'create', big: 2n ** 60n, nested: { a: [1, 'x', null] }, bin: Buffer.from([0, 255]) };
  Object.defineProperty(rec, '__proto__', { value: 'data', enumerable: true, writable: true, configurable: true });
  const events: LogEvent[] = [
    { tag: 'kube.audit', time: new EventTime(1_700_000_000, 123_456_789), record: rec },
    { tag: 'kube.audit', time: new EventTime(1_700_000_001, 1), record: { n: 1 }, metadata: { m: 'x' } },
  ];
  return [
    { tag: 'kube.audit', outputs: [0, 1], events },
    { tag: 'falco', outputs: [1], events: [{ tag: 'falco', time: new EventTime(5, 6), record: { rule: 'r' } }] },
  ];
}

test('a chunk round-trips: tags, nanosecond times, metadata, 64-bit integers, binary, a __proto__ key as data', () => {
  for (const checksum of [true, false]) {
    const { head, body } = encodeChunk({ input: 'forward.0', outputs: ['loki.0', 'am'], records: 3, created: 42 }, sample(), checksum);
    const file = Buffer.concat([head, body]);
    const { header, segments } = decodeChunk(file);
    assert.deepEqual(header, { input: 'forward.0', outputs: ['loki.0', 'am'], records: 3, created: 42 });
    assert.equal(segments.length, 2);
    assert.deepEqual(segments[0]!.outputs, [0, 1]);
    const [a, b] = segments[0]!.events;
    assert.equal(a!.time.sec, 1_700_000_000);
    assert.equal(a!.time.nsec, 123_456_789);
    assert.equal(a!.record.big, 2n ** 60n);
    assert.deepEqual(a!.record.bin, Buffer.from([0, 255]));
    assert.equal(Object.getPrototypeOf(a!.record), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(a!.record, '__proto__')?.value, 'data');
    assert.deepEqual(b!.metadata, { m: 'x' });
    assert.equal(segments[1]!.events[0]!.tag, 'falco');
    assert.equal(readHeader(file.subarray(0, head.length), file.length).header.input, 'forward.0');
  }
});

test('torn, bit-flipped and foreign files are told apart', () => {
  const { head, body } = encodeChunk(
    { input: 'i', outputs: ['o'], records: 3, created: 1 },
    sample().map((s) => ({ ...s, outputs: [0] })),
    true,
  );
  const file = Buffer.concat([head, body]);
  const reason = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof CorruptChunk, String(e));
      return e.reason;
    }
    return 'accepted';
  };
  assert.equal(
    reason(() => decodeChunk(file.subarray(0, file.length - 1))),
    'torn',
  );
  assert.equal(
    reason(() => decodeChunk(file.subarray(0, 10))),
    'torn',
  );
  assert.equal(
    reason(() => decodeChunk(Buffer.concat([file, Buffer.from([0])]))),
    'torn',
  );
  for (const at of [head.length - 2, head.length + 5, file.length - 1]) {
    const flipped = Buffer.from(file);
    flipped.writeUInt8(flipped.readUInt8(at) ^ 0x10, at);
    assert.equal(
      reason(() => decodeChunk(flipped)),
      'checksum',
      `bit flipped at ${at}`,
    );
  }
  const foreign = Buffer.from(file);
  foreign.write('XXXX', 0);
  assert.equal(
    reason(() => decodeChunk(foreign)),
    'format',
  );
  // Without a checksum, a body that no longer decodes is still caught.
  const plain = encodeChunk({ input: 'i', outputs: ['o'], records: 1, created: 1 }, [{ tag: 't', outputs: [0], events: [{ tag: 't', time: new EventTime(1, 2), record: { a: 1 } }] }], false);
  const broken = Buffer.concat([plain.head, Buffer.alloc(plain.body.length, 0xc1)]);
  assert.equal(
    reason(() => decodeChunk(broken)),
    'format',
  );
});

test('records still in bytes (edits pending, metadata) are stored as the same bytes as their objects', async () => {
  const { encode } = await import('../../../src/core/msgpack.js');
  const { WireEvent } = await import('../../../src/core/wire-event.js');
  const records = [{ a: 1, b: { c: 'x' } }, { big: 2n ** 60n, s: 'é' }, { k: [1, 2, 3] }];
  const wire = (r: Record<string, unknown>, i: number, meta?: Record<string, unknown>) => {
    const e = new WireEvent('t', new EventTime(1700000000 + i, i), encode(r), meta);
    e.edit({ op: 'put', key: 'cluster', value: 'bench', move: false });
    e.edit({ op: 'remove', path: ['a'] });
    return e;
  };
  const plain = (r: Record<string, unknown>, i: number, meta?: Record<string, unknown>): LogEvent => {
    const rec = structuredClone(r) as Record<string, unknown>;
    rec.cluster = 'bench';
    delete rec.a;
    return meta === undefined ? { tag: 't', time: new EventTime(1700000000 + i, i), record: rec } : { tag: 't', time: new EventTime(1700000000 + i, i), record: rec, metadata: meta };
  };
  const seg = (events: LogEvent[]): Segment[] => [
    { tag: 't', outputs: [0], events },
    { tag: 'u', outputs: [0, 1], events: events.slice(1) },
  ];
  const header = { input: 'forward.0', outputs: ['a', 'b'], records: 5, created: 1 };
  const fromBytes = encodeChunk(header, seg(records.map((r, i) => wire(r, i, i === 1 ? { m: 1 } : undefined))), true);
  const fromObjects = encodeChunk(header, seg(records.map((r, i) => plain(r, i, i === 1 ? { m: 1 } : undefined))), true);
  assert.deepEqual(Buffer.concat([fromBytes.head, fromBytes.body]), Buffer.concat([fromObjects.head, fromObjects.body]));
  const back = decodeChunk(Buffer.concat([fromBytes.head, fromBytes.body]));
  assert.deepEqual(back.segments[0]!.events[1]!.record, { big: 2n ** 60n, s: 'é', cluster: 'bench' });
});

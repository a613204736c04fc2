/**
 * Records as msgpack bytes for filter tests that compare the bytes path (a WireEvent, read
 * through the record view, changed by edits) with the decoded path (a plain event): varied
 * records around the fields a filter reads, and the comparison itself.
 */
import assert from 'node:assert/strict';
import { EventTime, type LogEvent, type LogRecord } from '../../src/core/event.js';
import { toJSONLine } from '../../src/core/json.js';
import { JsonWriter, writeRecordJSON } from '../../src/core/msgpack-json.js';
import { decode, encode } from '../../src/core/msgpack.js';
import { WireEvent } from '../../src/core/wire-event.js';

/** Bytes placed as they are inside `map` (a nested map with duplicate keys). */
export const rawValue = (b: Buffer): Buffer => Object.assign(b, { raw: true as const });

/** A msgpack map from keys and values, in order (duplicate keys allowed; rawValue bytes as they are). */
export function map(entries: Array<[string, unknown]>): Buffer {
  const n = entries.length;
  const head = n < 16 ? Buffer.from([0x80 | n]) : Buffer.from([0xde, n >> 8, n & 0xff]);
  return Buffer.concat([head, ...entries.flatMap(([k, v]) => [encode(k), Buffer.isBuffer(v) && (v as Buffer & { raw?: true }).raw ? v : encode(v)])]);
}

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/**
 * Records holding `fields` (the keys a filter reads, in order) among others: nested maps,
 * non-string values, unicode, a `__proto__` key, duplicate keys (of another key and of a field
 * itself, the last value the one decoding keeps), a key that looks like an array index, a
 * record of 40 keys, and the fields alone.
 */
export function recordsAround(fields: Array<[string, unknown]>): Buffer[] {
  const f = Object.fromEntries(fields);
  const first = fields[0]!;
  return [
    encode({ ...f }),
    encode({ a: 1, ...f, z: 'end' }),
    encode({ ü: 'é'.repeat(40), ...f, n: -5, big: 2n ** 60n, fl: 1.5, t: true, nul: null, bin: Buffer.from([1, 2, 3]), 日本: '語' }),
    encode({ k8s: { ns: 'kube-system', labels: { app: 'web', 'a.b': [1, { c: 2 }] } }, ...f, list: [1, 'two', { three: 3 }] }),
    map([['a', 1], ...fields, ['a', 2], ['b', { x: 1 }]]),
    map([[first[0], 'an earlier value'], ['mid', 1], ...fields]),
    map([['__proto__', { evil: 1 }], ...fields, ['after', 'x']]),
    map([
      ...fields,
      [
        'k8s',
        rawValue(
          map([
            ['ns', 'a'],
            ['ns', 'b'],
            ['__proto__', { polluted: true }],
          ]),
        ),
      ],
    ]),
    encode({ 7: 'seven', ...f, s: 'x' }),
    encode(Object.fromEntries([...Array.from({ length: 40 }, (_, i) => [`k${i}`, i % 2 ? 'v'.repeat(i * 7) : { n: i }]), ...fields])),
  ];
}

/** The event's record as msgpack: its bytes while it is bytes, else the decoded record encoded. */
export function recordBytes(e: LogEvent): Buffer {
  const raw = e instanceof WireEvent ? e.raw : undefined;
  return raw !== undefined ? Buffer.from(raw) : encode(e.record);
}

/** The record as an output writes it as JSON: from its bytes while it is bytes, else from the object. */
export function outputJSON(e: LogEvent): string {
  const raw = e instanceof WireEvent ? e.raw : undefined;
  if (raw === undefined) return toJSONLine(e.record);
  const w = new JsonWriter();
  writeRecordJSON(w, raw);
  return w.buf.toString('utf8', 0, w.len);
}

export const T = new EventTime(1700000000, 0);

export function wire(bytes: Buffer, tag = 'app.log', metadata?: LogRecord): WireEvent {
  return new WireEvent(tag, T, bytes, metadata);
}

export function plain(bytes: Buffer, tag = 'app.log'): LogEvent {
  return { tag, time: T, record: decode(bytes) as LogRecord };
}

/**
 * `got` (through the bytes path) holds the same record as `want` (through the decoded path):
 * the same JSON once decoded; where `input` is what encoding its decoded record gives (no
 * duplicate key, keys in an object's order), the same msgpack byte for byte and the same JSON
 * as the outputs write it (from the bytes for a record still in bytes).
 */
export function assertSameRecord(got: LogEvent, want: LogEvent, input: Buffer, what: string): void {
  assert.equal(got.tag, want.tag, `${what}: tag`);
  assert.equal(got.time.compare(want.time), 0, `${what}: time`);
  const bytes = recordBytes(got);
  assert.equal(toJSONLine(decode(bytes)), toJSONLine(want.record), `${what}: JSON`);
  if (hex(encode(decode(input))) === hex(input)) {
    assert.equal(hex(bytes), hex(encode(want.record)), `${what}: msgpack byte for byte`);
    // (bin values aside: the outputs write those as text from bytes, as an array-like object from an object)
    if (!hasBin(want.record)) assert.equal(outputJSON(got), toJSONLine(want.record), `${what}: JSON as written`);
  }
}

function hasBin(v: unknown): boolean {
  if (v instanceof Uint8Array) return true;
  if (v === null || typeof v !== 'object') return false;
  return Object.values(v).some(hasBin);
}

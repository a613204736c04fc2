/**
 * A value kept as its msgpack bytes (RawMsgpack, detect's include_event) is written by every
 * writer as the decoded value would be: the same JSON text (json_lines, out_file, stdout, Loki
 * line, the web page's store) and, in msgpack (forward, chunk files), its bytes in place.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { recordJSON, toJSONLine } from '../../../src/core/json.js';
import { cloneRecord, decode, encode, RawMsgpack } from '../../../src/core/msgpack.js';
import { compileAccessor } from '../../../src/core/record-accessor.js';
import { decodeChunk, encodeChunk } from '../../../src/core/storage/chunk-file.js';
import { compileFormat } from '../../../src/outputs/format.js';
import { encodeEntries } from '../../../src/outputs/forward/frame.js';
import { formatLine } from '../../../src/outputs/loki/line.js';

/** A fixmap of `pairs` (key and value already encoded). */
function map(pairs: Array<[string, Buffer]>): Buffer {
  return Buffer.concat([Buffer.from([0x80 | pairs.length]), ...pairs.flatMap(([k, v]) => [encode(k), v])]);
}

// An audit event with what plain JSON cannot hold: unicode, binary, ext values, 64-bit integers.
const eventBytes = map([
  ['kind', encode('Event')],
  ['auditID', encode('a1b2')],
  ['user', encode({ username: 'jürgen 🚀', groups: ['system:masters', 'ü\u0000"\\'] })],
  ['objectRef', encode({ resource: 'pods', name: 'x'.repeat(300), namespace: 'défaut' })],
  ['bin', encode(Buffer.from('binary ☃ value'))],
  ['ext', Buffer.from([0xd6, 0x05, 1, 2, 3, 4])], // fixext4 of type 5
  ['at', encode(new EventTime(1714564800, 123456789))],
  ['big', encode(2n ** 63n + 5n)],
  ['neg', encode(-(2n ** 62n))],
  ['float', encode(0.1)],
  ['nested', encode({ a: [1, { b: null, c: true, d: [[], {}] }], e: -7 })],
]);
const decoded = decode(eventBytes) as Record<string, unknown>;

function alert(event: unknown): Record<string, unknown> {
  return { hostname: 'h', output: 'Notice x', output_fields: { 'ka.user.name': 'jürgen 🚀', n: 2n ** 60n }, priority: 'Notice', rule: 'r', audit_event: event };
}
/** A RawMsgpack that fails the test when something decodes it. */
function undecoded(bytes: Uint8Array): RawMsgpack {
  const r = new RawMsgpack(Buffer.from(bytes));
  Object.defineProperty(r, 'value', { get: () => assert.fail('decoded') });
  return r;
}
const asEvents = (record: Record<string, unknown>): LogEvent[] => [{ tag: 'falco', time: new EventTime(1714564800, 5), record }];

describe('RawMsgpack', () => {
  it('JSON writers give the text of the decoded value', () => {
    const raw = alert(undecoded(eventBytes));
    const old = alert(decoded);
    assert.equal(toJSONLine(raw), toJSONLine(old));
    assert.equal(toJSONLine(raw.audit_event), toJSONLine(decoded));
    assert.equal(recordJSON(raw), toJSONLine(old));
    for (const format of ['json_lines', 'json', 'out_file', 'csv', 'template']) {
      const f = compileFormat({ format, template: '{audit_event}' });
      assert.equal(String(f(asEvents(raw))), String(f(asEvents(old))), format);
    }
    assert.equal(formatLine(raw, 'json', 'off'), formatLine(old, 'json', 'off'));
    assert.equal(formatLine(alert(new RawMsgpack(eventBytes)), 'key_value', 'off'), formatLine(old, 'key_value', 'off'));
    assert.match(toJSONLine(raw), /"audit_event":\{"kind":"Event","auditID":"a1b2","user":\{"username":"jürgen 🚀"/);
    assert.match(toJSONLine(raw), /"big":9223372036854775813,/);
    // Outside toJSONLine, JSON.stringify sees the decoded value.
    assert.equal(JSON.stringify({ e: new RawMsgpack(encode({ a: 'ü' })) }), '{"e":{"a":"ü"}}');
  });

  it('an event that is not a map, and nested toJSONLine calls', () => {
    const arr = new RawMsgpack(encode([1, 'two', Buffer.from('3')]));
    assert.equal(toJSONLine({ a: arr, b: [arr, { c: arr }] }), '{"a":[1,"two","3"],"b":[[1,"two","3"],{"c":[1,"two","3"]}]}');
  });

  it('msgpack writers put the bytes in place', () => {
    const raw = alert(undecoded(eventBytes));
    const rest = alert(undefined);
    delete rest.audit_event;
    const head = encode(rest);
    assert.equal(head[0], 0x85);
    const expected = Buffer.concat([Buffer.from([0x86]), head.subarray(1), encode('audit_event'), eventBytes]);
    assert.deepEqual(encode(raw), expected, 'the event bytes verbatim, ext values kept');
    // What the decoded object gave: the same record once read back.
    assert.deepEqual(decode(encode(raw)), decode(encode(alert(decoded))));

    // An event msgpackr writes the same way (no ext values): byte-identical to the old path.
    const plain = { kind: 'Event', user: { username: 'ü🚀' }, big: 2n ** 64n - 1n, bin: Buffer.from([0, 255]), l: [1.5, -1, null] };
    const plainRaw = alert(undecoded(encode(plain)));
    const plainOld = alert(decode(encode(plain)));
    assert.deepEqual(encode(plainRaw), encode(plainOld));
    const fmt = { timeAsInteger: false, retainMetadata: false, compress: 'text' as const, sendOptions: false, requireAck: false, extraOptions: [] };
    assert.deepEqual(encodeEntries(asEvents(plainRaw), fmt), encodeEntries(asEvents(plainOld), fmt));
    assert.deepEqual(Buffer.from(compileFormat({ format: 'msgpack' })(asEvents(plainRaw))), Buffer.from(compileFormat({ format: 'msgpack' })(asEvents(plainOld))));
    assert.ok(encodeEntries(asEvents(raw), fmt).includes(eventBytes));
  });

  it('survives a chunk file round trip', () => {
    const raw = alert(undecoded(eventBytes));
    const header = { input: 'detect', outputs: ['out'], records: 1, created: 1 };
    const seg = (record: Record<string, unknown>) => [{ tag: 'falco', outputs: [0], events: asEvents(record) }];
    const a = encodeChunk(header, seg(raw), true);
    assert.ok(a.body.includes(eventBytes));
    const back = decodeChunk(Buffer.concat([a.head, a.body]));
    const got = back.segments[0]!.events[0]!.record;
    assert.deepEqual(got, decode(encode(alert(decoded))));
    assert.equal(toJSONLine(got), toJSONLine(alert(decoded)));
  });

  it('a cloned record writes its bin values as the record does, and owns them', () => {
    const record = decode(encode({ b: Buffer.from('AB'), list: [Buffer.from('C')], m: { d: Buffer.from([0]) } })) as Record<string, unknown>;
    const copy = cloneRecord(record);
    assert.equal(toJSONLine(copy), toJSONLine(record));
    assert.equal(toJSONLine(copy), '{"b":"AB","list":["C"],"m":{"d":"\\u0000"}}');
    (copy.b as Buffer)[0] = 0x5a;
    assert.equal((record.b as Buffer).toString(), 'AB');
  });

  it('record accessors read and change the event as an object', () => {
    const r = new RawMsgpack(Buffer.from(eventBytes));
    const raw = alert(r);
    const copy = cloneRecord(raw);
    assert.ok(copy.audit_event instanceof RawMsgpack, 'a cloned record keeps the bytes');
    assert.equal(compileAccessor("$audit_event['user']['username']").get(raw), 'jürgen 🚀');
    assert.deepEqual(compileAccessor('$audit_event').get(raw), decoded);
    assert.equal(compileAccessor("$audit_event['objectRef']['resource']").set(raw, 'secrets'), true);
    assert.equal((raw.audit_event as Record<string, Record<string, unknown>>).objectRef!.resource, 'secrets');
    assert.equal(compileAccessor("$audit_event['auditID']").delete(raw), true);
    assert.equal(toJSONLine(raw).includes('a1b2'), false);
    // The clone still holds the event as it was.
    assert.equal(compileAccessor("$audit_event['objectRef']['resource']").get(copy), 'pods');
    assert.equal(toJSONLine(copy), toJSONLine(alert(decoded)));
  });
});

/**
 * decodeFrame's mode detection, from the second element of the frame as the Forward Protocol v1
 * spec defines it: an array is Forward mode, str/bin is PackedForward (CompressedPackedForward
 * when gzip), a time is Message mode; nil alone is a heartbeat and a 6-element PING array the
 * handshake. Frames are built with @msgpack/msgpack (test/support/forward-client.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import type { LogEvent } from '../../../src/core/event.js';
import { decodeFrame, ProtocolError, type EventsMessage, type ForwardMessage } from '../../../src/inputs/forward/protocol.js';
import { bin32Header, ext8Time, fixarray, pack, str32Header, WireTime } from '../../support/forward-client.js';

const T = 1_700_000_000;

function events(m: ForwardMessage): EventsMessage {
  assert.equal(m.type, 'events');
  return m as EventsMessage;
}

/** [tag, sec, nsec, record, metadata] of each event. */
const view = (evs: LogEvent[]) => evs.map((e) => [e.tag, e.time.sec, e.time.nsec, e.record, e.metadata]);

/** A PackedForward payload: the entries' msgpack, one after the other. */
const entries = (...es: unknown[]) => Buffer.concat(es.map((e) => pack(e)));

function refusal(frame: Buffer): string {
  try {
    decodeFrame(frame);
  } catch (e) {
    assert.ok(e instanceof ProtocolError, String(e));
    return e.reason;
  }
  return 'accepted';
}

test('nil alone is a heartbeat', () => {
  assert.deepEqual(decodeFrame(Buffer.from([0xc0])), { type: 'heartbeat' });
});

test('Message mode: the second element is a time (integer, float or EventTime)', () => {
  const int = events(decodeFrame(pack(['app', T, { msg: 'a' }])));
  assert.equal(int.mode, 'message');
  assert.deepEqual(view(int.events), [['app', T, 0, { msg: 'a' }, undefined]]);
  assert.equal(int.chunk, undefined);

  const float = events(decodeFrame(pack(['app', T + 0.25, { msg: 'b' }])));
  assert.equal(float.mode, 'message');
  assert.equal(float.events[0]!.time.sec, T);
  assert.ok(Math.abs(float.events[0]!.time.nsec - 250_000_000) < 1000, String(float.events[0]!.time.nsec));

  const et = events(decodeFrame(pack(['app', new WireTime(T, 123_456_789), { msg: 'c' }, { chunk: 'c-1' }])));
  assert.equal(et.mode, 'message');
  assert.deepEqual(view(et.events), [['app', T, 123_456_789, { msg: 'c' }, undefined]]);
  assert.equal(et.chunk, 'c-1');

  // The ext8 form of EventTime, which msgpack libraries do not emit.
  const ext8 = Buffer.concat([fixarray(3), pack('app'), ext8Time(T, 7), pack({ msg: 'd' })]);
  assert.deepEqual(view(events(decodeFrame(ext8)).events), [['app', T, 7, { msg: 'd' }, undefined]]);

  assert.equal(refusal(pack(['app', T])), 'bad_message', 'a time without a record');
  assert.equal(refusal(pack(['app', T, 'not a map'])), 'bad_record');
});

test('Forward mode: the second element is an array of [time, record] entries, with v1.5 metadata', () => {
  const m = events(
    decodeFrame(
      pack([
        'fw',
        [
          [T, { i: 0 }],
          [new WireTime(T + 1, 5), { i: 1 }],
          [[new WireTime(T + 2, 6), { otel: 'x' }], { i: 2 }],
          [[new WireTime(T + 3, 0), {}], { i: 3 }],
        ],
        { chunk: 'fw-1' },
      ]),
    ),
  );
  assert.equal(m.mode, 'forward');
  assert.equal(m.tag, 'fw');
  assert.equal(m.chunk, 'fw-1');
  assert.deepEqual(view(m.events), [
    ['fw', T, 0, { i: 0 }, undefined],
    ['fw', T + 1, 5, { i: 1 }, undefined],
    ['fw', T + 2, 6, { i: 2 }, { otel: 'x' }],
    ['fw', T + 3, 0, { i: 3 }, undefined],
  ]);
  const bare = events(decodeFrame(pack(['fw', [[T, { only: true }]]])));
  assert.equal(bare.mode, 'forward');
  assert.equal(bare.chunk, undefined);
  assert.equal(events(decodeFrame(pack(['fw', []]))).events.length, 0);
  assert.equal(refusal(pack(['fw', [[T, 'no map']]])), 'bad_record');
  assert.equal(refusal(pack(['fw', [[T]]])), 'bad_entry');
});

test('PackedForward: the entries in a bin or a str (as Fluentd sends them), read as bytes', () => {
  const payload = entries([T, { i: 0 }], [new WireTime(T, 9), { s: 'é' }], [[new WireTime(T + 1, 0), { m: 1 }], { i: 2 }]);
  const asBin = Buffer.concat([fixarray(3), pack('pk'), bin32Header(payload.length), payload, pack({ chunk: 'p-1' })]);
  const asStr = Buffer.concat([fixarray(2), pack('pk'), str32Header(payload.length), payload]);
  const expected = [
    ['pk', T, 0, { i: 0 }, undefined],
    ['pk', T, 9, { s: 'é' }, undefined],
    ['pk', T + 1, 0, { i: 2 }, { m: 1 }],
  ];
  const b = events(decodeFrame(asBin));
  assert.equal(b.mode, 'packed');
  assert.equal(b.chunk, 'p-1');
  assert.equal(b.size, payload.length);
  assert.deepEqual(view(b.events), expected);
  const s = events(decodeFrame(asStr));
  assert.equal(s.mode, 'packed');
  assert.equal(s.chunk, undefined);
  assert.deepEqual(view(s.events), expected);
  // The payload is the frame's only copy of the records: decoding must not depend on the frame's buffer afterwards.
  asBin.fill(0);
  assert.deepEqual(view(b.events), expected);
});

test('CompressedPackedForward: gzip payloads (several members too) with or without the option', () => {
  const payload = entries([T, { i: 0 }], [T + 1, { i: 1 }]);
  const gz = gzipSync(payload);
  const withOption = events(decodeFrame(Buffer.concat([fixarray(3), pack('gz'), bin32Header(gz.length), gz, pack({ compressed: 'gzip', chunk: 'g-1' })])));
  assert.equal(withOption.mode, 'compressed');
  assert.equal(withOption.chunk, 'g-1');
  assert.equal(withOption.size, payload.length, 'the size is the inflated size');
  assert.deepEqual(view(withOption.events), [
    ['gz', T, 0, { i: 0 }, undefined],
    ['gz', T + 1, 0, { i: 1 }, undefined],
  ]);
  // The gzip magic decides, as in Fluent Bit: no option, still inflated.
  const noOption = events(decodeFrame(Buffer.concat([fixarray(2), pack('gz'), bin32Header(gz.length), gz])));
  assert.equal(noOption.mode, 'compressed');
  assert.equal(noOption.events.length, 2);
  // Fluent Bit compresses each chunk it appends as its own gzip member.
  const members = Buffer.concat([gzipSync(entries([T, { i: 0 }])), gzipSync(entries([T, { i: 1 }], [T, { i: 2 }]))]);
  const multi = events(decodeFrame(Buffer.concat([fixarray(3), pack('gz'), bin32Header(members.length), members, pack({ compressed: 'gzip' })])));
  assert.deepEqual(
    multi.events.map((e) => e.record.i),
    [0, 1, 2],
  );

  const notGzip = Buffer.concat([fixarray(3), pack('gz'), bin32Header(payload.length), payload, pack({ compressed: 'gzip' })]);
  assert.equal(refusal(notGzip), 'bad_gzip', 'the option says gzip, the payload is not');
  assert.equal(refusal(Buffer.concat([fixarray(3), pack('gz'), bin32Header(payload.length), payload, pack({ compressed: 'lz4' })])), 'bad_compression');
});

test('PING: a 6-element array tagged PING; every field kept as its bytes', () => {
  const salt = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28]); // not UTF-8
  const frame = Buffer.concat([fixarray(6), pack('PING'), pack('client-1'), Buffer.from([0xa0 | salt.length]), salt, pack('ab12'), pack('alice'), pack('')]);
  const m = decodeFrame(frame);
  assert.equal(m.type, 'ping');
  if (m.type !== 'ping') return;
  assert.equal(m.hostname.toString(), 'client-1');
  assert.deepEqual(m.sharedKeySalt, salt, 'a str salt is not read as text');
  assert.equal(m.sharedKeyDigest.toString(), 'ab12');
  assert.equal(m.username.toString(), 'alice');
  assert.equal(m.passwordDigest.length, 0);
  // The tag PING with another shape is an ordinary message (Message mode here).
  assert.equal(events(decodeFrame(pack(['PING', T, { a: 1 }]))).mode, 'message');
});

test('frames that are none of the modes are refused with a reason', () => {
  assert.equal(refusal(pack({ tag: 'x' })), 'not_array');
  assert.equal(refusal(pack(['only-tag'])), 'bad_message');
  assert.equal(refusal(pack([42, [[T, {}]]])), 'bad_tag');
  assert.equal(refusal(pack(['t', T, {}, {}, 'fifth'])), 'bad_message');
  assert.equal(refusal(pack(['t', [[T, {}]], 'option not a map'])), 'bad_option');
});

/**
 * The file / stdout formats: json_date_key in every json_date_format (Fluent Bit's forms), the
 * same text for records in bytes and decoded, and the writers a caller releases being reused
 * without touching bytes still held.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { encode } from '../../../src/core/msgpack.js';
import { WireEvent } from '../../../src/core/wire-event.js';
import { compileFormat } from '../../../src/outputs/format.js';

const record = { verb: 'get', n: 1, big: 2n ** 60n, s: 'é"\n' };
const time = new EventTime(1714564800, 123456789);

function events(t: EventTime): LogEvent[] {
  return [new WireEvent('kube.audit', t, encode(record)), { tag: 'kube.audit', time: t, record: { ...record } }];
}

const text = (data: string | Buffer) => (typeof data === 'string' ? data : data.toString('utf8'));

test('json_date_key in every json_date_format, from bytes and from objects alike', () => {
  const body = '"verb":"get","n":1,"big":1152921504606846976,"s":"é\\"\\n"';
  const cases: Array<[string, EventTime, string]> = [
    ['double', time, '1714564800.123456'],
    ['double', new EventTime(1714564800, 5000), '1714564800.000005'],
    ['double', new EventTime(0, 999), '0.000000'],
    ['epoch', time, '1714564800'],
    ['epoch_ms', time, '1714564800123'],
    ['iso8601', time, '"2024-05-01T12:00:00.123456Z"'],
    ['java_sql_timestamp', time, '"2024-05-01 12:00:00.123456"'],
  ];
  for (const [fmt, t, want] of cases) {
    const f = compileFormat({ format: 'json_lines', json_date_key: 'date', json_date_format: fmt });
    const line = `{"date":${want},${body}}\n`;
    assert.equal(text(f(events(t))), line + line, fmt);
    const arr = compileFormat({ format: 'json', json_date_key: 'ts', json_date_format: fmt });
    const member = `{"ts":${want},${body}}`;
    assert.equal(text(arr(events(t))), `[${member},${member}]\n`, `json ${fmt}`);
  }
  const none = compileFormat({ format: 'json_lines', json_date_key: 'false' });
  assert.equal(text(none(events(time))), `{${body}}\n{${body}}\n`);
  const empty = compileFormat({ format: 'json_lines', json_date_key: 'date' });
  const blank: LogEvent[] = [new WireEvent('t', time, encode({})), { tag: 't', time, record: {} }];
  assert.equal(text(empty(blank)), '{"date":1714564800.123456}\n{"date":1714564800.123456}\n');
  const outFile = compileFormat({ format: 'out_file' });
  assert.equal(text(outFile(events(time))), `kube.audit: [1714564800.123456789, {${body}}]\n`.repeat(2));
});

test('a released batch buffer is reused; one still held is never written over', () => {
  const f = compileFormat({ format: 'json_lines', json_date_key: 'date' });
  const a = f(events(time)) as Buffer;
  const aText = a.toString();
  const b = f(events(new EventTime(1, 0))) as Buffer;
  assert.notEqual(a.buffer, b.buffer, 'two batches in flight: two buffers');
  assert.equal(a.toString(), aText);
  f.release(a);
  const c = f(events(new EventTime(2, 0))) as Buffer;
  assert.equal(c.buffer, a.buffer, 'the released buffer serves the next batch');
  assert.match(c.toString(), /^\{"date":2\.000000,/);
  assert.match(b.toString(), /^\{"date":1\.000000,/, 'the batch still held is intact');
  f.release(Buffer.from('not ours'));
  f.release('text');
  const d = f(events(time)) as Buffer;
  assert.notEqual(d.buffer, b.buffer);
  assert.notEqual(d.buffer, c.buffer);
});

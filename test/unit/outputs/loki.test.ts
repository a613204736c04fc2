/**
 * The loki output's pure parts: record accessors, label parsing and sanitising, line formats
 * (Fluent Bit's json / key_value / drop_single_key), the stream limit, and the push encodings
 * decoded back with Loki's own push.proto.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { EventTime } from '../../../src/core/event.js';
import { compileAccessor, without, type Accessor } from '../../../src/outputs/loki/accessor.js';
import { encodeJSON, encodeProtobuf, labelString, type Stream } from '../../../src/outputs/loki/encode.js';
import { LabelSet, parseLabelEntry, sanitizeLabelName, sanitizeLabelValue, splitList, StreamTracker, MAX_LABEL_NAMES } from '../../../src/outputs/loki/labels.js';
import { formatLine } from '../../../src/outputs/loki/line.js';
import { parseLabelString } from '../../support/loki-server.js';
import { repoRoot } from '../../support/paths.js';

const acc = (s: string) => compileAccessor(s) as Accessor;

test('record accessor patterns compile to paths named as Fluent Bit names labels', () => {
  assert.equal(acc('$log').name, 'log');
  assert.deepEqual(acc(`$kubernetes['labels']["app"]`).path, ['kubernetes', 'labels', 'app']);
  assert.equal(acc(`$kubernetes['namespace_name']`).name, 'kubernetes_namespace_name');
  assert.equal(acc("$items[0]['name']").name, 'items_0_name');
  assert.match(compileAccessor('log') as string, /starts with \$/);
  assert.match(compileAccessor('$1abc') as string, /key name after \$/);
  assert.match(compileAccessor("$a['b'") as string, /expected \] after the sub-key/);
});

test('lookups walk own properties only; removal copies instead of changing the shared record', () => {
  const rec = JSON.parse('{"__proto__":{"x":"data"},"a":{"b":1,"c":[{"d":2}]}}') as Record<string, unknown>;
  assert.equal(acc("$__proto__['x']").get(rec), 'data');
  assert.equal(acc('$constructor').get({}), undefined);
  assert.equal(acc("$a['c'][0]['d']").get(rec), 2);
  const before = JSON.stringify(rec);
  const out = without(rec, [['a', 'b'], ['__proto__']]);
  assert.equal(JSON.stringify(rec), before);
  assert.deepEqual(JSON.parse(JSON.stringify(out)), { a: { c: [{ d: 2 }] } });
  assert.equal(without(rec, [['missing']]), rec);
  const kept = without(rec, [['a', 'b']]);
  assert.equal(Object.getPrototypeOf(kept), Object.prototype);
  assert.equal(JSON.stringify(kept), '{"__proto__":{"x":"data"},"a":{"c":[{"d":2}]}}');
});

test('comma lists keep commas inside accessor brackets', () => {
  assert.deepEqual(splitList(["job=a, $b['x,y'], c=$d"]), ['job=a', "$b['x,y']", 'c=$d']);
  assert.deepEqual(splitList(['a=1', 'b=2,c=3']), ['a=1', 'b=2', 'c=3']);
  assert.deepEqual(splitList(undefined), []);
});

test('label entries: static, name=$accessor, $accessor; invalid ones explain themselves', () => {
  assert.deepEqual(parseLabelEntry('job=audit'), { kind: 'static', name: 'job', value: 'audit' });
  const d = parseLabelEntry("verb=$verb");
  assert.equal(d && typeof d === 'object' && d.kind, 'dynamic');
  const k = parseLabelEntry("$kubernetes['pod-name']");
  assert.ok(typeof k === 'object' && k.name === 'kubernetes_pod_name');
  assert.match(parseLabelEntry('job') as string, /expected name=value/);
  assert.match(parseLabelEntry('job=') as string, /empty value/);
  assert.match(parseLabelEntry('app.kubernetes.io/name=x') as string, /invalid label name/);
});

test("label names are made valid as Fluent Bit does; values are valid UTF-8 within Loki's length", () => {
  assert.equal(sanitizeLabelName('app.kubernetes.io/name'), 'app_kubernetes_io_name');
  assert.equal(sanitizeLabelName('9lives'), '_9lives');
  assert.equal(sanitizeLabelName('ok_Name1'), 'ok_Name1');
  assert.equal(sanitizeLabelValue('a\uD800b'), 'a\uFFFDb');
  assert.equal(sanitizeLabelValue('x'.repeat(3000)).length, 2048);
});

test('a label set: first writer wins, at most 15 names, default job label when empty', () => {
  const templates = ['job=a', '$job', '$x', ...Array.from({ length: 20 }, (_, i) => `$f${i}`)].map((e) => parseLabelEntry(e)) as never[];
  const set = new LabelSet(templates, false, ['job', 'logwarden']);
  const rec: Record<string, unknown> = { job: 'from-record', x: 5 };
  for (let i = 0; i < 20; i++) rec[`f${i}`] = `v${i}`;
  const r = set.evaluate(rec);
  assert.equal(r.labels.length, MAX_LABEL_NAMES);
  assert.deepEqual(r.labels.find(([k]) => k === 'job'), ['job', 'a']);
  assert.deepEqual(r.labels.find(([k]) => k === 'x'), ['x', '5']);
  // job, x, f0..f12 fill the 15 names; f13..f19 are dropped (the duplicate $job is not counted).
  assert.equal(r.dropped, 7);
  assert.ok(r.dynamic);
  assert.deepEqual(
    r.labels.map(([k]) => k),
    [...r.labels.map(([k]) => k)].sort(),
  );
  const none = new LabelSet([parseLabelEntry('$missing') as never], false, ['job', 'logwarden']).evaluate({ other: 1 });
  assert.deepEqual(none, { labels: [['job', 'logwarden']], dynamic: false, dropped: 0 });
  const k8s = new LabelSet([], true, ['job', 'logwarden']).evaluate({ kubernetes: { labels: { 'app.kubernetes.io/name': 'api', n: 1 } } });
  assert.deepEqual(k8s.labels, [['app_kubernetes_io_name', 'api']]);
});

test('line formats: json, key_value, drop_single_key on and raw', () => {
  const rec = { msg: 'hello "x"', n: 3, f: 1.5, ok: true, nil: null, arr: ['a', 1], map: { k: 'v', m: { z: 2 } } };
  assert.equal(formatLine(rec, 'json', 'off'), JSON.stringify(rec));
  assert.equal(formatLine(rec, 'key_value', 'off'), 'msg="hello "x"" n=3 f=1.5 ok=true nil=null arr="["a" 1]" map="map[k:"v" m:"map[z:2]"]"');
  assert.equal(formatLine({ log: 'line' }, 'json', 'on'), '"line"');
  assert.equal(formatLine({ log: 'line' }, 'json', 'raw'), 'line');
  assert.equal(formatLine({ log: 'line' }, 'key_value', 'on'), 'line');
  assert.equal(formatLine({ log: { a: 1 } }, 'json', 'raw'), '{"a":1}');
  assert.equal(formatLine({ log: 0.1 }, 'key_value', 'on'), '0.1');
  assert.equal(formatLine({ a: 1, b: 2 }, 'json', 'on'), '{"a":1,"b":2}');
  assert.equal(formatLine({ big: 1e300 }, 'key_value', 'off'), 'big=1e+300');
});

test('streams beyond max_streams are refused until idle ones expire', () => {
  const t = new StreamTracker(2, 1000);
  assert.ok(t.admit('a', 0));
  assert.ok(t.admit('b', 10));
  assert.ok(!t.admit('c', 20));
  assert.ok(t.admit('a', 500), 'a known stream is always admitted');
  assert.ok(!t.admit('c', 1005), 'b is idle only from 1010');
  assert.ok(t.admit('c', 2100), 'a and b expired');
  assert.equal(t.size, 1);
  assert.ok(t.admit('d', 2200));
  assert.ok(!t.admit('e', 2300));
});

const root = new protobuf.Root().loadSync(join(repoRoot, 'test', 'support', 'loki-push.proto'));
const PushRequest = root.lookupType('logproto.PushRequest');

test("protobuf bodies decode with Loki's push.proto; the labels string parses back to the same labels", () => {
  const tricky = 'quote " backslash \\ newline \n tab \t unicode é 日本';
  const streams: Stream[] = [
    {
      labels: [['job', 'audit'], ['v', tricky]],
      entries: [
        { time: new EventTime(1_700_000_000, 123_456_789), line: '{"a":1}', meta: [['trace_id', 'abc']] },
        { time: new EventTime(1_700_000_001, 0), line: '', meta: undefined },
      ],
    },
    { labels: [['job', 'b']], entries: [{ time: new EventTime(0, 5), line: 'x', meta: undefined }] },
  ];
  const msg = PushRequest.toObject(PushRequest.decode(encodeProtobuf(streams)), { defaults: true, longs: String }) as {
    streams: Array<{ labels: string; entries: Array<{ timestamp: { seconds: string; nanos: number }; line: string; structuredMetadata: Array<{ name: string; value: string }> }> }>;
  };
  assert.equal(msg.streams.length, 2);
  assert.deepEqual(parseLabelString(msg.streams[0]!.labels), { job: 'audit', v: tricky });
  assert.deepEqual(msg.streams[0]!.entries.map((e) => [e.timestamp.seconds, e.timestamp.nanos, e.line, e.structuredMetadata]), [
    ['1700000000', 123456789, '{"a":1}', [{ name: 'trace_id', value: 'abc' }]],
    ['1700000001', 0, '', []],
  ]);
  assert.deepEqual(msg.streams[1]!.entries[0]!.timestamp, { seconds: '0', nanos: 5 });
  assert.equal(labelString([['a', 'b'], ['c', 'd']]), '{a="b", c="d"}');
});

test('JSON bodies carry nanosecond timestamps as strings and structured metadata as a third element', () => {
  const doc = JSON.parse(
    encodeJSON([{ labels: [['job', 'a']], entries: [{ time: new EventTime(1_700_000_000, 5), line: 'l', meta: [['k', 'v']] }, { time: new EventTime(1, 0), line: 'm', meta: undefined }] }]),
  );
  assert.deepEqual(doc, { streams: [{ stream: { job: 'a' }, values: [['1700000000000000005', 'l', { k: 'v' }], ['1000000000', 'm']] }] });
});

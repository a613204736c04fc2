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
import {
  LabelSet,
  LabelWarnings,
  labelMapTemplates,
  parseLabelEntry,
  renderLabelValue,
  sanitizeLabelName,
  sanitizeLabelValue,
  splitList,
  StreamTracker,
  MAX_LABEL_NAMES,
} from '../../../src/outputs/loki/labels.js';
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
  const d = parseLabelEntry('verb=$verb');
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
  assert.deepEqual(
    r.labels.find(([k]) => k === 'job'),
    ['job', 'a'],
  );
  assert.deepEqual(
    r.labels.find(([k]) => k === 'x'),
    ['x', '5'],
  );
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

test("label values: lists are sorted and joined with ',' as falcosidekick sends tags, binary as hex (Fluent Bit 5); nested lists cannot be rendered", () => {
  assert.equal(renderLabelValue(['mitre_execution', 'container', 'T1059']), 'T1059,container,mitre_execution');
  assert.equal(renderLabelValue(['b', 2, true, 'a']), '2,a,b,true');
  assert.equal(renderLabelValue([]), '');
  assert.equal(renderLabelValue('text'), 'text');
  assert.equal(renderLabelValue(1.5), '1.500000');
  assert.equal(renderLabelValue({ k: 'v' }), '{"k":"v"}');
  assert.equal(renderLabelValue(undefined), undefined);
  assert.equal(renderLabelValue([['nested']]), null);
  assert.equal(renderLabelValue([{ k: 'v' }]), null);
  assert.equal(renderLabelValue(new Uint8Array([1, 0xab])), '01ab');
  assert.equal(renderLabelValue([new Uint8Array([0xff]), 'a']), 'a,ff');
});

test("names starting with '__' are reserved: a config error when written, skipped (and reported) from auto_kubernetes_labels", () => {
  assert.match(parseLabelEntry('__name__=x') as string, /reserved by Loki/);
  assert.match(parseLabelEntry('$__meta') as string, /starts with '__', which Loki reserves/);
  const rec = JSON.parse('{"kubernetes":{"labels":{"__proto__":"p","__name__":"n","app":"api","_ok":"y"}}}') as Record<string, unknown>;
  const r = new LabelSet([], true, ['job', 'logwarden']).evaluate(rec);
  assert.deepEqual(r.labels, [
    ['_ok', 'y'],
    ['app', 'api'],
  ]);
  assert.deepEqual(r.skipped, [
    { name: '__proto__', reason: 'reserved', detail: '__proto__' },
    { name: '__name__', reason: 'reserved', detail: '__name__' },
  ]);
  const l = new LabelSet([parseLabelEntry('$tags') as never, parseLabelEntry('$deep') as never], false, ['job', 'logwarden']).evaluate({ tags: ['b', 'a'], deep: [{ k: 1 }] });
  assert.deepEqual(l.labels, [['tags', 'a,b']]);
  assert.deepEqual(l.skipped, [{ name: 'deep', reason: 'unrenderable', detail: 'list of maps or lists' }]);
  const empty = new LabelSet([parseLabelEntry('$tags') as never], false, ['job', 'logwarden']).evaluate({ tags: [] });
  assert.deepEqual(empty, { labels: [['job', 'logwarden']], dynamic: false, dropped: 0 });
});

test('label warnings: once per label and reason per period, a bounded number of names', () => {
  const w = new LabelWarnings(1000, 2);
  assert.equal(w.shouldWarn('a', 'reserved', 0), true);
  assert.equal(w.shouldWarn('a', 'reserved', 500), false);
  assert.equal(w.shouldWarn('a', 'unrenderable', 500), true);
  assert.equal(w.shouldWarn('a', 'reserved', 1500), true);
  // Two names and reasons known: further names share one warning per period.
  assert.equal(w.shouldWarn('b', 'reserved', 1500), true);
  assert.equal(w.shouldWarn('c', 'reserved', 1500), false);
  assert.equal(w.shouldWarn('a', 'unrenderable', 1600), true);
});

test("label_map_path documents: leaves are label names, key paths are accessors (Fluent Bit's labelmap.json)", () => {
  const t = labelMapTemplates({ kubernetes: { container_name: 'container', pod_name: 'pod', namespace_name: 'namespace', labels: { team: 'team' } } });
  assert.ok(Array.isArray(t));
  assert.deepEqual(
    (t as Array<{ name: string; kind: string; accessor: Accessor }>).map((x) => [x.name, x.kind, x.accessor.pattern]),
    [
      ['container', 'dynamic', "$kubernetes['container_name']"],
      ['pod', 'dynamic', "$kubernetes['pod_name']"],
      ['namespace', 'dynamic', "$kubernetes['namespace_name']"],
      ['team', 'dynamic', "$kubernetes['labels']['team']"],
    ],
  );
  const set = new LabelSet(t as never, false, ['job', 'logwarden']);
  assert.deepEqual(set.evaluate({ kubernetes: { container_name: 'promtail', pod_name: 'promtail-xxx', namespace_name: 'prod', labels: { team: 'lalala' } } }).labels, [
    ['container', 'promtail'],
    ['namespace', 'prod'],
    ['pod', 'promtail-xxx'],
    ['team', 'lalala'],
  ]);
  assert.match(labelMapTemplates([]) as string, /must be a JSON object/);
  assert.match(labelMapTemplates({ a: 1 }) as string, /at a: expected a label name/);
  assert.match(labelMapTemplates({ a: { b: 'bad-name' } }) as string, /at a\.b: invalid label name 'bad-name'/);
  assert.match(labelMapTemplates({ a: '__x' }) as string, /reserved/);
  assert.match(labelMapTemplates({ "it's": 'x' }) as string, /quote/);
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
      labels: [
        ['job', 'audit'],
        ['v', tricky],
      ],
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
  assert.deepEqual(
    msg.streams[0]!.entries.map((e) => [e.timestamp.seconds, e.timestamp.nanos, e.line, e.structuredMetadata]),
    [
      ['1700000000', 123456789, '{"a":1}', [{ name: 'trace_id', value: 'abc' }]],
      ['1700000001', 0, '', []],
    ],
  );
  assert.deepEqual(msg.streams[1]!.entries[0]!.timestamp, { seconds: '0', nanos: 5 });
  assert.equal(
    labelString([
      ['a', 'b'],
      ['c', 'd'],
    ]),
    '{a="b", c="d"}',
  );
});

test('JSON bodies carry nanosecond timestamps as strings and structured metadata as a third element', () => {
  const doc = JSON.parse(
    encodeJSON([
      {
        labels: [['job', 'a']],
        entries: [
          { time: new EventTime(1_700_000_000, 5), line: 'l', meta: [['k', 'v']] },
          { time: new EventTime(1, 0), line: 'm', meta: undefined },
        ],
      },
    ]),
  );
  assert.deepEqual(doc, {
    streams: [
      {
        stream: { job: 'a' },
        values: [
          ['1700000000000000005', 'l', { k: 'v' }],
          ['1000000000', 'm'],
        ],
      },
    ],
  });
});

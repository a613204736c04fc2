import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parserFilter } from '../../../src/filters/parser/index.js';
import { counterValue, tempDir, writePipeline } from '../../support/filter-pipeline.js';
import { buildWithParsers, ev, loadErrors, run } from '../../support/parsers-pipeline.js';
import { assertSameRecord, plain, recordsAround, wire } from '../../support/bytes-records.js';
import { toJSONLine } from '../../../src/core/json.js';
import { decode, encode } from '../../../src/core/msgpack.js';
import { modifyFilter } from '../../../src/filters/modify/index.js';
import type { LogEvent } from '../../../src/core/event.js';
import type { WireEvent } from '../../../src/core/wire-event.js';

const DUMMY = { name: 'dummy_test', format: 'regex', regex: '^(?<INT>[^ ]+) (?<FLOAT>[^ ]+) (?<BOOL>[^ ]+) (?<STRING>.+)$' };

async function filterOf(filter: Record<string, unknown>, parsers: unknown[] = [DUMMY]) {
  const dir = tempDir();
  const file = writePipeline(dir, { parsers, pipeline: { filters: [{ name: 'parser', match: '*', ...filter }] } });
  return buildWithParsers(file, parserFilter);
}

test('the documented dummy_test example: the parsed fields replace the record', async () => {
  const { filters } = await filterOf({ key_name: 'data', parser: 'dummy_test' });
  const { out } = run(filters[0]!, [ev({ data: '100 0.5 true This is example' })]);
  assert.deepEqual(out[0]!.record, { INT: '100', FLOAT: '0.5', BOOL: 'true', STRING: 'This is example' });
});

test('reserve_data keeps the other fields; preserve_key keeps key_name too', async () => {
  const input = () => ev({ data: '100 0.5 true This is example', key1: 'value1', key2: 'value2' });
  const parsed = { INT: '100', FLOAT: '0.5', BOOL: 'true', STRING: 'This is example' };
  let { filters } = await filterOf({ key_name: 'data', parser: 'dummy_test', reserve_data: true });
  assert.deepEqual(run(filters[0]!, [input()]).out[0]!.record, { ...parsed, key1: 'value1', key2: 'value2' });
  ({ filters } = await filterOf({ key_name: 'data', parser: 'dummy_test', reserve_data: true, preserve_key: true }));
  assert.deepEqual(run(filters[0]!, [input()]).out[0]!.record, { ...parsed, data: '100 0.5 true This is example', key1: 'value1', key2: 'value2' });
  ({ filters } = await filterOf({ key_name: 'data', parser: 'dummy_test', preserve_key: true }));
  assert.deepEqual(run(filters[0]!, [input()]).out[0]!.record, { ...parsed, data: '100 0.5 true This is example' });
});

test('on a name clash with reserve_data the original field wins, in its place (as Fluent Bit writes the duplicate out)', async () => {
  let { filters } = await filterOf({ key_name: 'log', parser: 'json', reserve_data: true }, []);
  let { out } = run(filters[0]!, [ev({ log: '{"level":"info","msg":"hi"}', level: 'from-record', z: 1 })]);
  assert.deepEqual(Object.entries(out[0]!.record), [
    ['msg', 'hi'],
    ['level', 'from-record'],
    ['z', 1],
  ]);
  // preserve_key without reserve_data: a parsed field named like key_name gives way to it.
  ({ filters } = await filterOf({ key_name: 'log', parser: 'json', preserve_key: true }, []));
  ({ out } = run(filters[0]!, [ev({ log: '{"log":"inner","a":1}' })]));
  assert.deepEqual(Object.entries(out[0]!.record), [
    ['a', 1],
    ['log', '{"log":"inner","a":1}'],
  ]);
});

test('several parsers: the first that matches wins; the parsed time becomes the event time', async () => {
  const { filters } = await filterOf({ key_name: 'log', parser: ['json', 'apache2', 'dummy_test'] });
  const events = [ev({ log: '{"a":1}' }), ev({ log: '192.168.2.20 - - [29/Jul/2015:10:27:10 -0300] "GET /cgi-bin/try/ HTTP/1.0" 200 3395' }), ev({ log: '1 2 3 four five' })];
  const { out } = run(filters[0]!, events);
  assert.deepEqual(out[0]!.record, { a: 1 });
  assert.equal(out[0]!.time.sec, 1700000000, 'no time in the record: the event keeps its time');
  assert.equal(out[1]!.record.path, '/cgi-bin/try/');
  assert.equal(out[1]!.time.toISO(), '2015-07-29T13:27:10.000000000Z');
  assert.deepEqual(out[2]!.record, { INT: '1', FLOAT: '2', BOOL: '3', STRING: 'four five' });
});

test('nest_under, a record accessor key_name, unescape_key', async () => {
  let { filters } = await filterOf({ key_name: 'log', parser: 'json', nest_under: 'parsed', reserve_data: true }, []);
  assert.deepEqual(run(filters[0]!, [ev({ log: '{"a":1}', s: 'x' })]).out[0]!.record, { parsed: { a: 1 }, s: 'x' });

  ({ filters } = await filterOf({ key_name: "$kubernetes['annotations']['raw']", parser: 'json', reserve_data: true }, []));
  const rec = { kubernetes: { annotations: { raw: '{"b":2}', other: 'o' } }, s: 'x' };
  assert.deepEqual(run(filters[0]!, [ev(rec)]).out[0]!.record, { b: 2, kubernetes: { annotations: { other: 'o' } }, s: 'x' });
  assert.equal(rec.kubernetes.annotations.raw, '{"b":2}', 'the input record is not changed');

  ({ filters } = await filterOf({ key_name: 'log', parser: 'json', unescape_key: true }, []));
  assert.deepEqual(run(filters[0]!, [ev({ log: '{\\"a\\":\\"x\\"}' })]).out[0]!.record, { a: 'x' });
});

test('records that do not parse pass unchanged and are counted; time and cast errors are counted', async () => {
  const { filters, metrics, logs } = await filterOf({ key_name: 'log', parser: ['timed'] }, [
    { name: 'timed', format: 'regex', regex: '^(?<time>\\S+) (?<n>\\S+)$', time_key: 'time', time_format: '%Y-%m-%d', types: 'n:integer' },
  ]);
  const events = [ev({ other: 1 }), ev({ log: 42 }), ev({ log: 'nospace' }), ev({ log: 'yesterday many' }), ev({ log: '2024-01-02 7' })];
  const { out } = run(filters[0]!, events);
  assert.equal(out.length, 5);
  assert.deepEqual(out[0]!.record, { other: 1 });
  assert.deepEqual(out[1]!.record, { log: 42 });
  assert.deepEqual(out[2]!.record, { log: 'nospace' });
  assert.deepEqual(out[3]!.record, { time: 'yesterday', n: 'many' });
  assert.equal(out[3]!.time.sec, 1700000000);
  assert.deepEqual(out[4]!.record, { n: 7 });
  assert.equal(out[4]!.time.toISO(), '2024-01-02T00:00:00.000000000Z');
  const c = (result: string) => counterValue(metrics, 'logwarden_parser_filter_records_total', { result });
  assert.deepEqual([await c('missing_key'), await c('not_string'), await c('no_match'), await c('parsed')], [1, 1, 1, 2]);
  assert.equal(await counterValue(metrics, 'logwarden_parser_field_errors_total', { reason: 'time' }), 1);
  assert.equal(await counterValue(metrics, 'logwarden_parser_field_errors_total', { reason: 'cast' }), 1);
  assert.ok(logs.some((l) => String(l.msg).includes('no parser matched')));
});

test('load-time errors: unknown parser name, missing key_name, bad record accessor', async () => {
  const dir = tempDir();
  const yaml = 'pipeline:\n  filters:\n    - name: parser\n      match: "*"\n      key_name: log\n      parser: [json, nope]\n';
  const file = writePipeline(dir, yaml);
  assert.match(await loadErrors(file, parserFilter), new RegExp(`${file}:6:15: parser: unknown parser 'nope'; defined parsers: .*json`));
  const f2 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: parser\n      match: "*"\n      parser: json\n');
  assert.match(await loadErrors(f2, parserFilter), /:3:7: key_name: missing required option 'key_name'/);
  const f3 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: parser\n      match: "*"\n      key_name: "$a[b]"\n      parser: json\n');
  assert.match(await loadErrors(f3, parserFilter), /:5:17: key_name: expected \['name'\] or \[index\]/);
});

test('records in bytes: key_name read through the view, reserve_data as edits, the same record as decoded', async () => {
  const parsers = [DUMMY, { name: 'lf', format: 'logfmt' }, { name: 'timed', format: 'regex', regex: '^(?<time>\\S+) (?<n>\\S+)$', time_key: 'time', time_format: '%Y-%m-%d', types: 'n:integer' }];
  const logs = [
    '{"level":"info","msg":"hï 日本","a":1.5,"nested":{"x":[1,2,{"y":null}]},"log":"inner"}',
    '{"__proto__":{"p":1},"msg":"x","team":true}',
    '{"1":"one","msg":"an index-like key"}',
    '100 0.5 true This is example',
    'a=1 b="two words" ü=é level=debug',
    '2024-01-02 7',
    'matches nothing',
  ];
  const INDEX = /^(0|[1-9][0-9]*)$/;
  const configs: Array<Record<string, unknown>> = [];
  for (const parser of [['json'], ['dummy_test', 'lf', 'timed']]) {
    for (const [reserve_data, preserve_key] of [
      [false, false],
      [true, false],
      [true, true],
      [false, true],
    ]) {
      configs.push({ key_name: 'log', parser, reserve_data, preserve_key });
      configs.push({ key_name: "$req['body']", parser, reserve_data, preserve_key });
    }
    configs.push({ key_name: 'log', parser, reserve_data: true, nest_under: 'parsed' });
    configs.push({ key_name: 'log', parser, nest_under: 'parsed', preserve_key: true });
    // The place ends in an array index: removing it shifts the array (the object does that).
    configs.push({ key_name: '$arr[0]', parser, reserve_data: true });
    configs.push({ key_name: '$arr[0]', parser, reserve_data: true, preserve_key: true });
  }
  configs.push({ key_name: 'n', parser: ['json'], reserve_data: true });
  configs.push({ key_name: 'missing', parser: ['json'], reserve_data: true });
  let checked = 0;
  let edited = 0;
  for (const config of configs) {
    const { filters } = await filterOf(config, parsers);
    const f = filters[0]!;
    for (const log of logs) {
      for (const [i, bytes] of recordsAround([
        ['log', log],
        ['level', 'from-record'],
        ['req', { body: log, other: 2 }],
        ['arr', [log, 'second']],
      ]).entries()) {
        const what = `${JSON.stringify(config)}, ${JSON.stringify(log)}, record ${i}`;
        const want = run(f, [plain(bytes)]).out[0]!;
        const input = wire(bytes);
        const got = run(f, [input]).out[0]!;
        assert.equal(got, input, `${what}: the same event`);
        assertSameRecord(got, want, bytes, what);
        const parsed = toJSONLine(want.record) !== toJSONLine(decode(bytes));
        const byEdits =
          config.reserve_data === true &&
          !(config.key_name === '$arr[0]' && config.preserve_key !== true) &&
          !Object.keys(want.record).some((k) => INDEX.test(k)) &&
          !Object.keys(decode(bytes) as object).some((k) => INDEX.test(k));
        assert.equal((got as WireEvent).isBytes, !parsed || byEdits, `${what}: still bytes`);
        if (parsed && byEdits) edited++;
        checked++;
      }
    }
  }
  assert.equal(checked, configs.length * logs.length * 10);
  assert.ok(edited > 200, `${edited} records merged as edits`);
});

test('records in bytes: the parser reads the edits an earlier filter left pending, and its own join them', async () => {
  const file = writePipeline(tempDir(), {
    pipeline: {
      filters: [
        { name: 'modify', match: '*', rename: 'raw log', add: 'added 1' },
        { name: 'parser', match: '*', key_name: 'log', parser: 'json', reserve_data: true },
        { name: 'modify', match: '*', remove: 'a' },
      ],
    },
  });
  const { filters } = await buildWithParsers(file, modifyFilter, parserFilter);
  const through = (e: LogEvent) => filters.reduce((evs, f) => run(f, evs).out, [e])[0]!;
  const bytes = encode({ raw: '{"a":1,"b":"ü"}', added: 0, z: [1] });
  const want = through(plain(bytes));
  const got = through(wire(bytes)) as WireEvent;
  assert.ok(got.isBytes);
  assertSameRecord(got, want, bytes, 'chain');
  assert.deepEqual(Object.entries(decode(got.raw!) as object), [
    ['b', 'ü'],
    ['added', 0],
    ['z', [1]],
  ]);
});

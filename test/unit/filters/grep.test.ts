import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventTime } from '../../../src/core/event.js';
import { decode, encode } from '../../../src/core/msgpack.js';
import { WireEvent } from '../../../src/core/wire-event.js';
import { grepFilter } from '../../../src/filters/grep/index.js';
import { tempDir, writePipeline } from '../../support/filter-pipeline.js';
import { buildWithParsers, ev, loadErrors, run } from '../../support/parsers-pipeline.js';

async function grep(options: Record<string, unknown>) {
  const file = writePipeline(tempDir(), { pipeline: { filters: [{ name: 'grep', match: '*', ...options }] } });
  return (await buildWithParsers(file, grepFilter)).filters[0]!;
}

const LINES = ['aaa', 'aab', 'bbb', 'ccc', 'ddd', 'eee', 'fff', 'ggg'].map((log) => ({ log }));
const logs = (events: Array<{ record: Record<string, unknown> }>) => events.map((e) => e.record.log);

test('the documented example: regex log aa keeps aaa and aab', async () => {
  const f = await grep({ regex: 'log aa' });
  assert.deepEqual(
    logs(
      run(
        f,
        LINES.map((r) => ev(r)),
      ).out,
    ),
    ['aaa', 'aab'],
  );
});

test('exclude with a record accessor on a nested key (the documented kubernetes example)', async () => {
  const f = await grep({ exclude: "$kubernetes['labels']['app'] myapp" });
  const records = [{ log: 'a', kubernetes: { labels: { app: 'myapp' } } }, { log: 'b', kubernetes: { labels: { app: 'other' } } }, { log: 'c' }];
  assert.deepEqual(
    logs(
      run(
        f,
        records.map((r) => ev(r)),
      ).out,
    ),
    ['b', 'c'],
  );
});

test('a regex rule drops records whose key is missing or not a string; the regex may hold spaces', async () => {
  const f = await grep({ regex: 'iot_timestamp ^\\d{4}-\\d{2}-\\d{2} \\d' });
  const records = [{ log: 1, iot_timestamp: '2024-01-01 1' }, { log: 2 }, { log: 3, iot_timestamp: 20240101 }, { log: 4, iot_timestamp: 'x' }];
  assert.deepEqual(
    logs(
      run(
        f,
        records.map((r) => ev(r)),
      ).out,
    ),
    [1],
  );
});

test('logical_op or / and (the documented or example)', async () => {
  const or = await grep({ logical_op: 'or', regex: ['value something', 'value error'] });
  const recs = [
    { log: 1, value: 'something' },
    { log: 2, value: 'error' },
    { log: 3, value: 'fine' },
  ];
  assert.deepEqual(
    logs(
      run(
        or,
        recs.map((r) => ev(r)),
      ).out,
    ),
    [1, 2],
  );
  const and = await grep({ logical_op: 'and', regex: ['value ^s', 'endpoint localhost'] });
  const recs2 = [
    { log: 1, value: 'something', endpoint: 'localhost' },
    { log: 2, value: 'something', endpoint: 'remote' },
  ];
  assert.deepEqual(
    logs(
      run(
        and,
        recs2.map((r) => ev(r)),
      ).out,
    ),
    [1],
  );
  const exAnd = await grep({ logical_op: 'and', exclude: ['value ^s', 'endpoint localhost'] });
  assert.deepEqual(
    logs(
      run(
        exAnd,
        recs2.map((r) => ev(r)),
      ).out,
    ),
    [2],
  );
  const exOr = await grep({ logical_op: 'OR', exclude: ['value ^s', 'endpoint remote'] });
  assert.deepEqual(
    logs(
      run(
        exOr,
        [...recs2, { log: 3, value: 'x' }].map((r) => ev(r)),
      ).out,
    ),
    [3],
  );
});

test('legacy: rules in order, the first decisive rule wins', async () => {
  // exclude first, then one regex: the documented way of combining them.
  const f = await grep({ exclude: 'level debug', regex: 'msg ^ok' });
  const recs = [
    { log: 1, level: 'debug', msg: 'ok' },
    { log: 2, level: 'info', msg: 'ok' },
    { log: 3, level: 'info', msg: 'no' },
  ];
  assert.deepEqual(
    logs(
      run(
        f,
        recs.map((r) => ev(r)),
      ).out,
    ),
    [2],
  );
  // A matching regex rule keeps the record without looking at later rules (flb_grep_filter_legacy).
  const g = await grep({ regex: ['a ^x', 'b ^y'] });
  const recs2 = [
    { log: 1, a: 'x', b: 'n' },
    { log: 2, a: 'n', b: 'y' },
  ];
  assert.deepEqual(
    logs(
      run(
        g,
        recs2.map((r) => ev(r)),
      ).out,
    ),
    [1],
  );
});

test('load-time errors with positions', async () => {
  const dir = tempDir();
  const f1 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: grep\n      match: "*"\n      regex: "log (unclosed"\n');
  assert.match(await loadErrors(f1, grepFilter), new RegExp(`${f1}:5:14: regex: 'log \\(unclosed': invalid regular expression`));
  const f2 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: grep\n      match: "*"\n      regex: "log (?<!x)y"\n');
  assert.match(await loadErrors(f2, grepFilter), /:5:14: regex: .*negative lookbehind/);
  const f3 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: grep\n      match: "*"\n      logical_op: and\n      regex: log a\n      exclude: log b\n');
  assert.match(await loadErrors(f3, grepFilter), /:5:19: logical_op: with logical_op and, set regex or exclude rules, not both/);
  const f4 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: grep\n      match: "*"\n      regex: justakey\n');
  assert.match(await loadErrors(f4, grepFilter), /:5:14: regex: 'justakey': expected KEY REGEX/);
  const f5 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: grep\n      match: "*"\n');
  assert.match(await loadErrors(f5, grepFilter), /:3:7: regex: grep needs at least one regex or exclude rule/);
  const f6 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: grep\n      match: "*"\n      logical_op: xor\n      regex: a b\n');
  assert.match(await loadErrors(f6, grepFilter), /logical_op: found "xor", expected one of legacy, and, or/);
});

test('records in bytes are read through the view: the same records kept, none decoded', async () => {
  const records: Array<Record<string, unknown>> = [
    { log: 1, kubernetes: { labels: { app: 'myapp' } }, list: ['x', 'myapp'] },
    { log: 2, kubernetes: { labels: { app: 'other' } }, list: ['myapp'] },
    { log: 3, kubernetes: 'myapp' },
    { log: 4, kubernetes: { labels: ['myapp'] } },
    { log: 5, kubernetes: { labels: { app: 7 } }, value: 'error' },
    { log: 6, value: 'something', list: { 1: 'myapp' } },
    { log: 7, value: Buffer.from('error') },
  ];
  const configs: Array<Record<string, unknown>> = [
    { exclude: "$kubernetes['labels']['app'] myapp" },
    { regex: ["$kubernetes['labels']['app'] ^o", 'log .'] },
    { logical_op: 'or', regex: ['value something', 'value error', '$list[1] myapp'] },
    { logical_op: 'and', exclude: ['$list[0] myapp', 'log 2'] },
    // A sub-key that looks like an index: the accessor reads it as a map key only (decoded).
    { regex: "$list['1'] myapp", decodes: true },
  ];
  for (const { decodes, ...options } of configs) {
    const f = await grep(options);
    const want = logs(
      run(
        f,
        records.map((r) => ev(structuredClone(r))),
      ).out,
    );
    const events = records.map((r) => new WireEvent('app.log', new EventTime(1, 0), encode(r)));
    const out = run(f, events).out as WireEvent[];
    assert.deepEqual(
      out.map((e) => (e.isBytes ? (decode(e.raw!) as { log: unknown }).log : e.record.log)),
      want,
      JSON.stringify(options),
    );
    assert.equal(
      events.every((e) => e.isBytes),
      !decodes,
      `${JSON.stringify(options)}: decoded only where the view cannot read as the accessor`,
    );
  }
});

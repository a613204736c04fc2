import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { rewriteTagFilter } from '../../../src/filters/rewrite_tag/index.js';
import { throttleFilter, ThrottleWindow } from '../../../src/filters/throttle/index.js';
import { modifyFilter } from '../../../src/filters/modify/index.js';
import type { LogEvent } from '../../../src/core/event.js';
import type { AnyPlugin, FilterInstance } from '../../../src/core/plugin.js';
import { Pipeline } from '../../../src/core/pipeline.js';
import { counterValue, tempDir, writePipeline } from '../../support/filter-pipeline.js';
import { buildWithParsers, ev, loadErrors, planFile, run } from '../../support/parsers-pipeline.js';
import { assertSameRecord, hex, plain, recordsAround, wire } from '../../support/bytes-records.js';
import { WireEvent } from '../../../src/core/wire-event.js';
import { encode } from '../../../src/core/msgpack.js';

async function one(plugin: AnyPlugin, options: Record<string, unknown>) {
  const file = writePipeline(tempDir(), { pipeline: { filters: [{ name: plugin.name, match: '*', ...options }] } });
  const built = await buildWithParsers(file, plugin);
  return { f: built.filters[0]! as FilterInstance, metrics: built.metrics };
}

test('rewrite_tag: the documented example', async () => {
  const { f, metrics } = await one(rewriteTagFilter, { rule: "$tool ^(fluent)$  from.$TAG.new.$tool.$sub['s1']['s2'].out false", emitter_name: 're_emitted' });
  const rec = { tool: 'fluent', sub: { s1: { s2: 'bit' } } };
  const { out, emitted } = run(f, [ev(rec, 'test_tag')]);
  assert.equal(out.length, 0, 'KEEP false drops the original');
  assert.equal(emitted.length, 1);
  assert.equal(emitted[0]!.tag, 'from.test_tag.new.fluent.bit.out');
  assert.deepEqual(emitted[0]!.record, rec);
  assert.equal(await counterValue(metrics, 'logwarden_input_records_total', { name: 're_emitted' }), 1);
});

test('rewrite_tag: captures, $TAG[n], first matching rule wins, KEEP true keeps an independent original', async () => {
  const { f } = await one(rewriteTagFilter, {
    rule: ['$name ^([a-z]+)-([0-9]+)$ newtag.$TAG[1].$1.$2 true', '$name ^abc second false', "$ss['s1']['s2'] ^flb$ nested.$0 false"],
  });
  const events = [ev({ name: 'abc-123' }, 'aa.bb.cc'), ev({ name: 'xyz', ss: { s1: { s2: 'flb' } } }, 'aa.bb.cc'), ev({ name: 42 }, 'aa.bb.cc')];
  const { out, emitted } = run(f, events);
  assert.deepEqual(
    emitted.map((e) => e.tag),
    ['newtag.bb.abc.123', 'nested.flb'],
  );
  assert.deepEqual(
    out.map((e) => e.record.name),
    ['abc-123', 42],
  );
  emitted[0]!.record.name = 'changed';
  assert.equal(out[0]!.record.name, 'abc-123', 'the kept original is not the emitted copy');
  assert.equal(emitted[0]!.time, events[0]!.time);
});

test('rewrite_tag: emitted records re-enter routing, and the instance that emitted them does not match them again', async () => {
  const file = writePipeline(tempDir(), {
    pipeline: {
      filters: [
        { name: 'rewrite_tag', match: 'app.*', rule: '$level ^(error)$ app.$1 true' },
        { name: 'modify', match: 'app.error', add: 'routed yes' },
      ],
    },
  });
  const p = new Pipeline(planFile(file, rewriteTagFilter, modifyFilter), { logger: pino({ level: 'silent' }), filtersOnly: true });
  await p.start();
  const seen: LogEvent[] = [];
  p.onFiltered = (evs) => seen.push(...evs);
  p.inject([ev({ level: 'error', msg: 'boom' }, 'app.web')]);
  assert.deepEqual(
    seen.map((e) => [e.tag, e.record.routed]),
    [
      ['app.web', undefined],
      ['app.error', 'yes'],
    ],
  );
  await p.stop(0);
});

test('rewrite_tag on records in bytes: the same tags and records as the decoded path, and nothing is decoded', async () => {
  const configs: Array<{ rule: string | string[]; bytes: boolean }> = [
    { rule: "$user ^(ali)ce$ audit.$TAG[1].$1.$k8s['ns'].$level true", bytes: true },
    { rule: "$level ^err(or)?$ alert.$TAG.$n.$fl.$t.$nul.$missing.$k8s['labels']['app'] false", bytes: true },
    { rule: ['$nomatch ^x$ never false', "$k8s['labels']['app'] ^web$ web.$0 false", '$user ^alice$ second true'], bytes: true },
    { rule: "$user ^alice$ labels.$k8s['labels'].$ü true", bytes: true },
    // A sub-key that looks like an array index: read from the decoded record.
    { rule: "$user ^alice$ idx.$list['0'] true", bytes: false },
  ];
  let checked = 0;
  for (const config of configs) {
    const { f } = await one(rewriteTagFilter, { rule: config.rule });
    for (const [i, bytes] of recordsAround([
      ['user', 'alice'],
      ['level', 'error'],
    ]).entries()) {
      const what = `${JSON.stringify(config.rule)}, record ${i}`;
      const want = run(f, [plain(bytes, 'app.web')]);
      const input = wire(bytes, 'app.web', { source: 'forward' });
      const got = run(f, [input]);
      assert.equal(got.out.length, want.out.length, `${what}: kept`);
      assert.equal(got.emitted.length, want.emitted.length, `${what}: emitted`);
      for (const [j, e] of got.out.entries()) assertSameRecord(e, want.out[j]!, bytes, `${what}: kept ${j}`);
      for (const [j, e] of got.emitted.entries()) {
        assertSameRecord(e, want.emitted[j]!, bytes, `${what}: emitted ${j}`);
        assert.equal(e instanceof WireEvent && e.isBytes, config.bytes, `${what}: emitted still bytes`);
        assert.deepEqual(e.metadata, { source: 'forward' }, `${what}: metadata`);
        if (e === input) assert.equal(got.out.includes(input), false, `${what}: KEEP false moves the event`);
        else assert.notEqual(e.metadata, input.metadata, `${what}: KEEP true copies the metadata`);
      }
      if (got.out.length) assert.equal(input.isBytes, config.bytes, `${what}: kept still bytes`);
      checked++;
    }
  }
  assert.equal(checked, configs.length * 10);
});

test('rewrite_tag KEEP true on bytes: the copy shares the bytes with pending edits written, and each changes on its own', async () => {
  const { f: mod } = await one(modifyFilter, { add: 'added 1' });
  const { f } = await one(rewriteTagFilter, { rule: '$user ^alice$ copy.$TAG true' });
  const original = wire(encode({ user: 'alice', n: 1 }), 'app.web');
  const { out } = run(mod, [original]);
  const { emitted } = run(f, out);
  const copy = emitted[0] as WireEvent;
  assert.ok(copy !== original && copy.isBytes && original.isBytes);
  assert.equal(copy.raw, original.raw, 'one buffer for both');
  const before = hex(original.raw!);
  assert.equal(before, hex(encode({ user: 'alice', n: 1, added: '1' })), 'the pending edit is in the shared bytes');
  copy.edit({ op: 'put', key: 'n', value: 2, move: false });
  copy.edit({ op: 'remove', path: ['user'] });
  assert.equal(hex(copy.raw!), hex(encode({ n: 2, added: '1' })));
  assert.equal(hex(original.raw!), before, 'the original bytes are not written by the edits of the copy');
  original.record.n = 3;
  assert.equal(hex(copy.raw!), hex(encode({ n: 2, added: '1' })), 'decoding the original leaves the copy in bytes');
  assert.ok(copy.isBytes);
});

test('rewrite_tag on bytes in a pipeline: the copy is routed and changed under its tag, the original left as it came', async () => {
  const file = writePipeline(tempDir(), {
    pipeline: {
      filters: [
        { name: 'rewrite_tag', match: 'app.*', rule: '$level ^(error)$ app.$1 true' },
        { name: 'modify', match: 'app.error', add: 'routed yes' },
      ],
    },
  });
  const p = new Pipeline(planFile(file, rewriteTagFilter, modifyFilter), { logger: pino({ level: 'silent' }), filtersOnly: true });
  await p.start();
  const seen: LogEvent[] = [];
  p.onFiltered = (evs) => seen.push(...evs);
  const bytes = encode({ level: 'error', msg: 'boom' });
  p.inject([wire(bytes, 'app.web')]);
  assert.deepEqual(
    seen.map((e) => [e.tag, (e as WireEvent).isBytes, hex((e as WireEvent).raw!)]),
    [
      ['app.web', true, hex(bytes)],
      ['app.error', true, hex(encode({ level: 'error', msg: 'boom', routed: 'yes' }))],
    ],
  );
  await p.stop(0);
});

test('rewrite_tag: load-time errors', async () => {
  const dir = tempDir();
  const cases: Array<[string, RegExp]> = [
    ['rule: $a ^x$ new', /:5:13: rule: '\$a \^x\$ new': expected \$KEY REGEX NEW_TAG KEEP/],
    ['rule: $a ^x$ new maybe', /KEEP must be true or false, found 'maybe'/],
    ['rule: $a (x new false', /invalid regular expression/],
    ['rule: $a x(?=y) new false', /lookahead/],
    ['rule: "$a[\'b\' x new false"', /expected \] after the sub-key/],
    ['emitter_storage.type: filesystem\n      rule: $a x y true', /emitter_storage.type: found "filesystem", expected one of memory/],
  ];
  for (const [line, msg] of cases) {
    const file = writePipeline(dir, `pipeline:\n  filters:\n    - name: rewrite_tag\n      match: "*"\n      ${line}\n`);
    assert.match(await loadErrors(file, rewriteTagFilter), msg, line);
  }
});

test('throttle window: the documented sliding-window walk-through (rate 5, window 5)', () => {
  const w = new ThrottleWindow(5, 5, 1000, 0);
  const admitted: number[] = [];
  [1, 3, 5, 7, 3, 4, 7].forEach((sent, pane) => {
    w.advance(pane * 1000);
    let n = 0;
    for (let i = 0; i < sent; i++) if (w.admit()) n++;
    admitted.push(n);
  });
  // The last pane asks for 7 but only 6 fit: the window average would pass 5.
  assert.deepEqual(admitted, [1, 3, 5, 7, 3, 4, 6]);
  assert.equal(w.average, 5);
  w.advance(100_000);
  assert.equal(w.average, 0, 'a long pause empties the window');
});

test('throttle filter: drops past the rate within an interval; options are checked', async () => {
  const { f } = await one(throttleFilter, { rate: 2, window: 1, interval: '1h' });
  const { out } = run(f, [ev({ n: 1 }), ev({ n: 2 }), ev({ n: 3 }), ev({ n: 4 })]);
  assert.deepEqual(
    out.map((e) => e.record.n),
    [1, 2],
  );
  assert.equal(run(f, [ev({ n: 5 })]).out.length, 0);
  const { f: g } = await one(throttleFilter, { rate: 1000, window: 300, interval: '1s', print_status: true });
  assert.equal(run(g, [ev({ n: 1 })]).out.length, 1);
  await g.close?.();
  const dir = tempDir();
  const f1 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: throttle\n      match: "*"\n      interval: 0s\n');
  assert.match(await loadErrors(f1, throttleFilter), /:5:17: interval: found "0s": the interval must be above 0/);
  const f2 = writePipeline(dir, 'pipeline:\n  filters:\n    - name: throttle\n      match: "*"\n      window: 0\n');
  assert.match(await loadErrors(f2, throttleFilter), /window: found 0, expected an integer \(at least 1\)/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AccessorSyntaxError, compileAccessor, compileTemplate, setField, valueToText } from '../../../src/core/record-accessor.js';

// The record and the table of Fluent Bit's record accessor documentation.
const record = {
  log: 'some message',
  stream: 'stdout',
  labels: { color: 'blue', unset: null, project: { env: 'production' } },
};

test('record accessor: the documented access rules', () => {
  assert.equal(compileAccessor('$log').get(record), 'some message');
  assert.equal(compileAccessor("$labels['color']").get(record), 'blue');
  assert.equal(compileAccessor("$labels['project']['env']").get(record), 'production');
  assert.equal(compileAccessor("$labels['unset']").get(record), null);
  assert.equal(compileAccessor("$labels['undefined']").get(record), undefined);
  assert.equal(compileAccessor("$labels['color']['deeper']").get(record), undefined);
});

test('array indexes, quotes inside sub-keys, dots in a top-level key, literal keys', () => {
  const r = { list: [{ a: 1 }, { a: 2 }], 'a.b': 'dotted', x: { "it's": 'q', 'k.8s/name': 'n' } };
  assert.equal(compileAccessor("$list[1]['a']").get(r), 2);
  assert.equal(compileAccessor('$list[2]').get(r), undefined);
  assert.equal(compileAccessor('$a.b').get(r), 'dotted');
  assert.equal(compileAccessor("$x['it''s']").get(r), 'q');
  assert.equal(compileAccessor('$x["k.8s/name"]').get(r), 'n');
  assert.equal(compileAccessor('a.b').get(r), 'dotted', 'without $ the text is one literal key');
  assert.deepEqual(compileAccessor("$list[0]['a']").path, ['list', 0, 'a']);
  assert.equal(compileAccessor('$list').key, 'list');
});

test('inherited properties are not record keys', () => {
  assert.equal(compileAccessor('$toString').get({}), undefined);
  assert.equal(compileAccessor("$m['constructor']").get({ m: {} }), undefined);
});

test('set creates missing maps, refuses to go through scalars; delete removes', () => {
  const r: Record<string, unknown> = { a: 'x', list: [1, 2, 3] };
  assert.equal(compileAccessor("$k8s['labels']['app']").set(r, 'web'), true);
  assert.deepEqual(JSON.parse(JSON.stringify(r.k8s)), { labels: { app: 'web' } });
  assert.equal(compileAccessor("$a['b']").set(r, 1), false);
  assert.equal(r.a, 'x');
  assert.equal(compileAccessor('$list[1]').set(r, 9), true);
  assert.deepEqual(r.list, [1, 9, 3]);
  assert.equal(compileAccessor('$list[7]').set(r, 9), false);
  assert.equal(compileAccessor("$k8s['labels']['app']").delete(r), true);
  assert.equal(compileAccessor("$k8s['labels']['app']").delete(r), false);
  assert.equal(compileAccessor('$list[0]').delete(r), true);
  assert.deepEqual(r.list, [9, 3]);
});

test('a __proto__ key is data: set and get never touch prototypes', () => {
  const r: Record<string, unknown> = {};
  assert.equal(compileAccessor("$__proto__['polluted']").set(r, 'yes'), true);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(Object.getPrototypeOf(r), Object.prototype);
  assert.equal(compileAccessor("$__proto__['polluted']").get(r), 'yes');
  const o: Record<string, unknown> = {};
  setField(o, '__proto__', { admin: true });
  assert.equal((o as { admin?: boolean }).admin, undefined);
  assert.deepEqual(Object.keys(o), ['__proto__']);
});

test('syntax errors say where', () => {
  for (const bad of ['$', "$a['b'", '$a[x]', '$a]', "$a['b']c", '$1abc']) {
    assert.throws(() => compileAccessor(bad), AccessorSyntaxError, bad);
  }
  assert.throws(() => compileAccessor('log', { allowLiteral: false }), /starts with \$/);
});

test('template: the rewrite_tag documentation example', () => {
  const t = compileTemplate("newtag.$TAG.$TAG[1].$1.$ss['s1']['s2'].out.fluent");
  const rec = { name: 'abc-123', ss: { s1: { s2: 'flb' } } };
  const captures = 'abc-123 abc 123'.split(' ');
  assert.equal(t.render('aa.bb.cc', rec, captures), 'newtag.aa.bb.cc.bb.abc.flb.out.fluent');
  assert.equal(t.isStatic, false);
  assert.deepEqual(
    t.accessors.map((a) => a.path),
    [['ss', 's1', 's2']],
  );
  assert.equal(compileTemplate('from.$TAG.new').isStatic, true);
});

test('template: values as Fluent Bit translates them; missing keys render as nothing or fail in strict mode', () => {
  const rec = { i: 42, f: 1.5, t: true, n: null, m: { a: 1 }, arr: [1], s: 'x' };
  const t = compileTemplate('$i,$f,$t,$n,$m,$arr,$s,$missing');
  assert.equal(t.render('tag', rec), '42,1.500000,true,null,{"a":1},,x,');
  assert.equal(t.render('tag', rec, null, true), undefined);
  assert.equal(compileTemplate('$s-$TAG[5]-$9-$').render('a.b', rec, ['m']), 'x---$');
  assert.equal(valueToText([1]), undefined);
});

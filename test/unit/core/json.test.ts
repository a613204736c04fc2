/** The shared record serialisation and cutting members out of it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JSON_CACHE_BYTES, nestedDeeperThan, recordJSON, toJSONLine, withoutMembers } from '../../../src/core/json.js';
import { falcoCorpus } from '../../support/paths.js';

function drop(rec: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(rec)) if (!keys.includes(k)) Object.defineProperty(out, k, { value: rec[k], enumerable: true, writable: true, configurable: true });
  return out;
}

function check(rec: Record<string, unknown>, keys: string[], what: string): void {
  assert.equal(
    withoutMembers(
      toJSONLine(rec),
      keys.map((k) => JSON.stringify(k)),
    ),
    toJSONLine(drop(rec, keys)),
    what,
  );
}

test('withoutMembers gives the text of the record serialised without those keys: every conformance event, several key sets', () => {
  const dir = join(falcoCorpus, 'events');
  let n = 0;
  for (const f of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const rec = JSON.parse(line) as Record<string, unknown>;
      if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) continue;
      const keys = Object.keys(rec);
      check(rec, ['verb'], `${f}: verb`);
      check(rec, [keys[0]!], `${f}: first key`);
      check(rec, [keys[keys.length - 1]!], `${f}: last key`);
      check(rec, keys, `${f}: every key`);
      check(
        rec,
        keys.filter((_, i) => i % 2 === 0),
        `${f}: every other key`,
      );
      check(rec, ['absent'], `${f}: a key it does not have`);
      n++;
    }
  }
  assert.ok(n > 40);
});

test('withoutMembers: escapes in keys and values, nesting, numbers, literals, empty maps', () => {
  const rec: Record<string, unknown> = {
    'q"k': 'a "quoted" \\ value \\',
    'back\\slash': ['x', { '"': '}' }, [']', '{']],
    n: -1.5e-7,
    t: true,
    f: false,
    z: null,
    e: {},
    a: [],
    'uni ✓': 'café 𝄞',
    ctrl: 'a\nb\u0001',
  };
  Object.defineProperty(rec, '__proto__', { value: { x: 1 }, enumerable: true, writable: true, configurable: true });
  for (const k of Object.keys(rec)) check(rec, [k], `without ${k}`);
  check(rec, ['q"k', 'back\\slash', '__proto__'], 'several');
  check({}, ['a'], 'empty record');
  check({ only: 1 }, ['only'], 'the only key');
  assert.equal(withoutMembers('{"a":1}', ['"b"']), '{"a":1}');
});

test('recordJSON: one serialisation per record, the text of toJSONLine, bounded', () => {
  const rec = { a: 1, big: 2n ** 63n - 1n, bin: Buffer.from('hi') };
  const s = recordJSON(rec);
  assert.equal(s, toJSONLine(rec));
  assert.equal(recordJSON({ a: 1 }), '{"a":1}');
  // The cache returns what it serialised first (records do not change in the outputs)...
  rec.a = 2;
  assert.equal(recordJSON(rec), s);
  // ...until it has taken JSON_CACHE_BYTES of other records' text: then it serialises again.
  const filler = 'x'.repeat(64 * 1024);
  for (let i = 0; i < JSON_CACHE_BYTES / filler.length + 2; i++) recordJSON({ filler });
  assert.equal(recordJSON(rec), toJSONLine(rec));
  assert.notEqual(recordJSON(rec), s);
});

test('an Invalid Date is written as null on the fast and the exact path', () => {
  assert.equal(toJSONLine({ d: new Date(Number.NaN) }), '{"d":null}');
  // A BigInt takes the exact path.
  assert.equal(toJSONLine({ d: new Date(Number.NaN), n: 2n ** 64n }), '{"d":null,"n":18446744073709551616}');
  assert.equal(toJSONLine({ d: new Date(0), n: 2n ** 64n }), '{"d":"1970-01-01T00:00:00.000Z","n":18446744073709551616}');
});

test('nestedDeeperThan counts arrays and objects, iteratively', () => {
  let v: unknown = null;
  for (let i = 0; i < 100_000; i++) v = [v];
  assert.equal(nestedDeeperThan(v, 256), true);
  assert.equal(nestedDeeperThan({ a: [{ b: [1] }] }, 4), false);
  assert.equal(nestedDeeperThan({ a: [{ b: [1] }] }, 3), true);
  assert.equal(nestedDeeperThan('text', 0), false);
});

test('BigInts: exact digits in toJSONLine; JSON.stringify elsewhere refuses them or shows them to a replacer as before', () => {
  const big = 2n ** 64n - 1n;
  const rec = { 'evt.time': 1540561114902914000n, neg: -(2n ** 63n), nested: [{ big }], s: 'x', n: 1.5, bin: Buffer.from('é') };
  assert.equal(toJSONLine(rec), '{"evt.time":1540561114902914000,"neg":-9223372036854775808,"nested":[{"big":18446744073709551615}],"s":"x","n":1.5,"bin":"é"}');
  assert.equal(toJSONLine({ a: 1n }), '{"a":1}');
  assert.equal(toJSONLine(5n), '5');
  // Outside toJSONLine nothing changed: a TypeError, and a replacer still receives the BigInt.
  assert.throws(() => JSON.stringify({ a: 1n }), TypeError);
  assert.equal(
    JSON.stringify({ a: 1n, b: [2n] }, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)),
    '{"a":"1n","b":["2n"]}',
  );
  // A string that looks like the token's shape is data, not a number.
  assert.equal(toJSONLine({ s: '\u0000abc:12\u0000' }), JSON.stringify({ s: '\u0000abc:12\u0000' }));
});

/** The record accessor subset used by lookup_key. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileAccessor, parseAccessor } from '../../../src/filters/lookup/accessor.js';

test('accessor forms', () => {
  assert.deepEqual(parseAccessor('log'), ['log']);
  assert.deepEqual(parseAccessor('$log'), ['log']);
  assert.deepEqual(parseAccessor(`$kubernetes['labels']["app.kubernetes.io/name"]`), ['kubernetes', 'labels', 'app.kubernetes.io/name']);
  assert.deepEqual(parseAccessor(`$items[0]['name']`), ['items', 0, 'name']);
});

test('accessor errors say where', () => {
  assert.throws(() => parseAccessor(''), /empty key/);
  assert.throws(() => parseAccessor('$'), /expected a key name after '\$' at character 2/);
  assert.throws(() => parseAccessor(`$a['b`), /unterminated ' quote at character 4/);
  assert.throws(() => parseAccessor(`$a['b'x`), /expected '\]' at character 7/);
  assert.throws(() => parseAccessor(`$a[b]`), /expected a quoted key or an array index at character 4/);
  assert.throws(() => parseAccessor(`$a['b']c`), /expected '\[' at character 8, found 'c'/);
});

test('evaluation reads own keys only and stops at the wrong type', () => {
  const get = compileAccessor(`$user['groups'][1]`);
  assert.equal(get({ user: { groups: ['a', 'b'] } }), 'b');
  assert.equal(get({ user: { groups: 'ab' } }), undefined);
  assert.equal(get({ user: ['x'] }), undefined);
  assert.equal(get({}), undefined);
  assert.equal(compileAccessor(`$a['toString']`)({ a: {} }), undefined);
  assert.equal(compileAccessor('$constructor')({}), undefined);
  assert.equal(compileAccessor('$x')({ x: 0 }), 0);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Commit } from '../../../src/core/commit.js';

test('a commit settles once every holder released, failing if any failed', () => {
  const seen: Array<[boolean, string | undefined]> = [];
  const c = new Commit((ok, reason) => seen.push([ok, reason]));
  c.hold();
  c.hold();
  c.release();
  c.release(false, 'loki down');
  assert.deepEqual(seen, []);
  c.release();
  assert.deepEqual(seen, [[false, 'loki down']]);
  c.release();
  assert.equal(seen.length, 1);
});

/**
 * The web page's readiness badge: the process's life state (`starting`, `stopping`) as such,
 * `ready` while running, and the backpressure causes while inputs are paused; the health
 * sampler carries the pipeline's state into the JSON the page reads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readinessBadge, type LifeState } from '../../../src/ui/health-shape.js';
import { HealthSampler } from '../../../src/ui/health.js';
import { Metrics } from '../../../src/observe/metrics.js';

test('starting and stopping are shown as such, not as an empty "paused:" list', () => {
  const starting = readinessBadge({ ready: false, state: 'starting', paused: {} });
  assert.equal(starting.text, 'starting');
  assert.equal(starting.level, 'warn');
  const stopping = readinessBadge({ ready: false, state: 'stopping', paused: {} });
  assert.equal(stopping.text, 'stopping');
  assert.equal(stopping.level, 'warn');
  // Draining while an output queue is still full: the life state says more than the blocker.
  assert.equal(readinessBadge({ ready: false, state: 'stopping', paused: { 'loki.0': 'queue full (10 records, 2000 bytes)' } }).text, 'stopping');
});

test('while running: ready, or paused with every backpressure cause', () => {
  assert.deepEqual(readinessBadge({ ready: true, state: 'running', paused: {} }), { text: 'ready', level: 'ok', title: '' });
  const paused = readinessBadge({
    ready: false,
    state: 'running',
    paused: { 'loki.0': 'queue full (5000 records, 1048576 bytes)', 'storage:disk': 'disk full' },
  });
  assert.equal(paused.text, 'paused: loki.0 (queue full (5000 records, 1048576 bytes)), storage:disk (disk full)');
  assert.equal(paused.level, 'warn');
});

test('the health JSON carries the state of the pipeline', async () => {
  let state: LifeState = 'starting';
  const view = {
    inputs: [],
    filters: [],
    outputs: [],
    status: () => ({ ready: state === 'running', state, paused: {}, outputs: {} }),
  };
  let now = 1_000_000;
  const sampler = new HealthSampler(new Metrics(), view, 1 << 20, () => now);
  for (const s of ['starting', 'running', 'stopping'] as const) {
    state = s;
    now += 1000; // past the shared-sample cache
    const h = await sampler.snapshot();
    assert.equal(h.state, s);
    assert.equal(readinessBadge(h).text, s === 'running' ? 'ready' : s);
  }
});

test('records/s is the rate of the last seconds, also after nobody looked for a while', async () => {
  const metrics = new Metrics();
  const view = {
    inputs: [{ id: 'forward.0' }],
    filters: [],
    outputs: [],
    status: () => ({ ready: true, state: 'running' as const, paused: {}, outputs: {} }),
  };
  let now = 1_000_000;
  const sampler = new HealthSampler(metrics, view, 1 << 20, () => now);
  const rate = async () => (await sampler.snapshot()).inputs[0]!.records_per_s;
  assert.equal(await rate(), null, 'no rate from one sample');
  metrics.inputRecords.labels('forward.0').inc(100);
  now += 2000;
  assert.equal(await rate(), 50);
  now += 2000;
  assert.equal(await rate(), 25, '100 records over the 4 s the samples span');
  // A burst, then an hour without viewers and without records.
  metrics.inputRecords.labels('forward.0').inc(3600);
  now += 3600_000;
  assert.equal(await rate(), null, 'not an average over the idle hour (3600 records / 3600 s = 1/s)');
  now += 2000;
  assert.equal(await rate(), 0, 'idle: nothing arrived in the last 2 s');
  metrics.inputRecords.labels('forward.0').inc(20);
  now += 2000;
  assert.equal(await rate(), 5, '20 records over the last 4 s');
});

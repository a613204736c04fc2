/**
 * The alertmanager output through a real pipeline against Alertmanager stand-ins over HTTP
 * (test/support/alertmanager-stub.ts): a retry goes only to the URLs that have not accepted the
 * batch, and the re-send of alerts still firing keeps to its bounds (max_active_alerts, endsAt,
 * resend_interval, 1000 alerts a request, one round at a time; a failure is logged and counted
 * and left to the next round, never retried or dead-lettered).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LogRecord } from '../../src/core/event.js';
import { alertmanagerOutput } from '../../src/outputs/alertmanager/index.js';
import { AlertmanagerStub } from '../support/alertmanager-stub.js';
import { events, type RunningPipeline, startPipeline, tempDir } from '../support/output-pipeline.js';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);

function yaml(urls: string[], extra: Record<string, string | number> = {}): string {
  const opts = Object.entries({ batch_wait: 0, ...extra })
    .map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`)
    .join('\n');
  return `service:
  scheduler.base: 0.02
  scheduler.cap: 0.05
pipeline:
  outputs:
    - name: alertmanager
      match: falco
      url: ${JSON.stringify(urls.join(','))}
${opts}
`;
}

/** A Falco alert record of `rule` at `timeMs`. */
function alert(rule: string, timeMs = Date.now()): LogRecord {
  return { output: `${rule} fired`, priority: 'Warning', rule, source: 'k8s_audit', time: new Date(timeMs).toISOString(), output_fields: { 'ka.user.name': 'alice' }, hostname: 'h', tags: [] };
}

const rules = (alerts: ReadonlyArray<{ labels: Record<string, string> }>) => alerts.map((a) => a.labels.rule);

/** Lets I/O run for `ms` of real time (setImmediate and performance.now are not mocked). */
async function ioFor(ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) await new Promise((r) => setImmediate(r));
}

/** Waits until `name` (a counter or gauge of the pipeline) reads `value`: the client counts after the answer came. */
async function counterReaches(p: RunningPipeline, name: string, value: number, labels?: Record<string, string>): Promise<void> {
  const end = performance.now() + 10_000;
  let now = await p.counter(name, labels);
  while (now !== value) {
    if (performance.now() > end) assert.fail(`${name} is ${now}, expected ${value}`);
    await new Promise((r) => setImmediate(r));
    now = await p.counter(name, labels);
  }
}

async function withStubs(n: number, fn: (stubs: AlertmanagerStub[]) => Promise<void>): Promise<void> {
  const stubs = await Promise.all(Array.from({ length: n }, () => new AlertmanagerStub().start()));
  try {
    await fn(stubs);
  } finally {
    await Promise.all(stubs.map((s) => s.stop()));
  }
}

/** setInterval and Date mocked from NOW: the re-send rounds run when the test moves the clock. */
function mockClock(t: TestContext): void {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: NOW });
}

test('a retry goes only to the Alertmanagers that have not accepted the batch', async () => {
  await withStubs(3, async ([a, b, c]) => {
    const p = await startPipeline(yaml([a!.url, b!.url, c!.url], { retry_limit: 3 }), [alertmanagerOutput]);
    try {
      b!.failNext(503, 2);
      c!.failNext(429, 1, { 'retry-after': '0' });
      assert.deepEqual(await p.ingest(events('falco', [alert('R1'), alert('R2')])), { ok: true });
      assert.deepEqual(
        [a, b, c].map((s) => s!.requests.map((r) => r.status)),
        [[200], [503, 503, 200], [429, 200]],
        'a accepted at once and is not sent the batch again; b and c until they accept',
      );
      for (const s of [a, b, c]) assert.deepEqual(rules(s!.accepted[0]!.alerts), ['R1', 'R2']);
      assert.equal(await p.counter('logwarden_output_retries_total'), 2);
      // The next batch is a batch of its own: every Alertmanager gets it once.
      assert.deepEqual(await p.ingest(events('falco', [alert('R3')])), { ok: true });
      assert.deepEqual(
        [a, b, c].map((s) => s!.requests.length),
        [2, 4, 3],
      );
    } finally {
      await p.stop(0);
    }
  });
});

test('re-sending alerts still firing: max_active_alerts and endsAt bound what is kept, every round goes to every URL', async (t) => {
  mockClock(t);
  await withStubs(2, async ([a, b]) => {
    const p = await startPipeline(yaml([a!.url, b!.url], { expires_after: 120, resend_interval: 60, max_active_alerts: 3 }), [alertmanagerOutput]);
    try {
      const fired = ['R0', 'R1', 'R2', 'R3', 'R4'].map((r) => alert(r));
      assert.deepEqual(await p.ingest(events('falco', fired)), { ok: true });
      assert.equal(await p.counter('logwarden_alertmanager_active_alerts'), 3, 'the two updated longest ago are forgotten');
      t.mock.timers.tick(60_000);
      await Promise.all([a!.waitForRequests(2), b!.waitForRequests(2)]);
      for (const s of [a, b]) assert.deepEqual(rules(s!.requests[1]!.alerts), ['R2', 'R3', 'R4']);
      await counterReaches(p, 'logwarden_alertmanager_resent_alerts_total', 6);
      // At 120 s every endsAt has passed: nothing is re-sent and nothing is kept.
      t.mock.timers.tick(60_000);
      await ioFor(200);
      assert.deepEqual(
        [a, b].map((s) => s!.requests.length),
        [2, 2],
      );
      assert.equal(await p.counter('logwarden_alertmanager_active_alerts'), 0);
    } finally {
      await p.stop(0);
    }
  });
});

test('a failed re-send is logged and counted, not retried nor dead-lettered; the next round sends again', async (t) => {
  mockClock(t);
  const dir = tempDir();
  const deadLetter = join(dir, 'dead.jsonl');
  await withStubs(1, async ([a]) => {
    const p = await startPipeline(yaml([a!.url], { expires_after: 600, resend_interval: 60, dead_letter_file: deadLetter, retry_limit: 5 }), [alertmanagerOutput], dir);
    try {
      assert.deepEqual(await p.ingest(events('falco', [alert('R1')])), { ok: true });
      a!.failNext(503, 1, { 'retry-after': '1' });
      t.mock.timers.tick(60_000);
      await a!.waitForRequests(2);
      await ioFor(300);
      assert.deepEqual(
        a!.requests.map((r) => r.status),
        [200, 503],
        'no retry before the next round',
      );
      await counterReaches(p, 'logwarden_alertmanager_resend_errors_total', 1, { reason: 'http_503' });
      assert.equal(await p.counter('logwarden_output_retries_total'), 0, 'the delivery engine has nothing to do with it');
      assert.equal(existsSync(deadLetter), false, 'a re-send is no dead letter');
      assert.ok(p.logs.some((l) => l.msg === 're-sending firing alerts failed; next try in resend_interval' && l.alerts === 1));
      t.mock.timers.tick(60_000);
      await a!.waitForRequests(3);
      assert.equal(a!.requests[2]!.status, 200);
      await counterReaches(p, 'logwarden_alertmanager_resent_alerts_total', 1);
    } finally {
      await p.stop(0);
    }
  });
});

test('a re-send round posts 1000 alerts a request, and a round still running makes the next one wait', async (t) => {
  mockClock(t);
  await withStubs(1, async ([a]) => {
    const p = await startPipeline(yaml([a!.url], { expires_after: 600, resend_interval: 60 }), [alertmanagerOutput]);
    try {
      const fired = Array.from({ length: 2500 }, (_, i) => alert(`R${i}`));
      assert.deepEqual(await p.ingest(events('falco', fired)), { ok: true });
      const delivered = a!.requests.length; // batch_size 500
      assert.equal(delivered, 5);
      a!.hold();
      t.mock.timers.tick(60_000);
      await a!.waitForRequests(delivered + 1);
      // The round waits for its first answer; the tick at 120 s finds it running and is skipped.
      t.mock.timers.tick(60_000);
      await ioFor(200);
      assert.equal(a!.requests.length, delivered + 1);
      a!.release();
      await a!.waitForRequests(delivered + 3);
      await ioFor(100);
      assert.deepEqual(
        a!.requests.slice(delivered).map((r) => r.alerts.length),
        [1000, 1000, 500],
      );
      t.mock.timers.tick(60_000);
      await a!.waitForRequests(delivered + 6);
      await counterReaches(p, 'logwarden_alertmanager_resent_alerts_total', 5000);
    } finally {
      await p.stop(0);
    }
  });
});

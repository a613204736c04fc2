/**
 * The alertmanager output through a real pipeline against Alertmanager stand-ins over HTTP
 * (test/support/alertmanager-stub.ts): a retry goes only to the URLs that have not accepted the
 * batch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LogRecord } from '../../src/core/event.js';
import { alertmanagerOutput } from '../../src/outputs/alertmanager/index.js';
import { AlertmanagerStub } from '../support/alertmanager-stub.js';
import { events, startPipeline } from '../support/output-pipeline.js';

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

async function withStubs(n: number, fn: (stubs: AlertmanagerStub[]) => Promise<void>): Promise<void> {
  const stubs = await Promise.all(Array.from({ length: n }, () => new AlertmanagerStub().start()));
  try {
    await fn(stubs);
  } finally {
    await Promise.all(stubs.map((s) => s.stop()));
  }
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

/**
 * Fault (c): Alertmanager stopped for 30 seconds and started again (same port and data
 * directory). Falco alert records go through a child `logwarden run` with a filesystem-buffered
 * forward input and the alertmanager output (retry_limit no_limits, no re-sending of firing
 * alerts, so only the buffer and the retries can bring them back). Alerts sent before the stop
 * must be in the first instance; alerts sent while it is down and after the restart must all be
 * in the restarted one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Alertmanager, ALERTMANAGER_BINARY } from '../support/alertmanager.js';
import { tempDir } from '../support/output-pipeline.js';
import { AckingSender, freePort, LogwardenProcess, sleep, writeFaultConfig } from '../support/fault.js';

const DOWN_S = Number(process.env.LOGWARDEN_FAULT_AM_DOWN_S ?? 30);
const PER_PHASE = 100;

function alert(i: number, phase: string): [number, Record<string, unknown>] {
  const rule = `Fault ${phase} ${i}`;
  return [
    i,
    {
      time: new Date().toISOString(),
      rule,
      priority: 'Critical',
      source: 'k8s_audit',
      tags: ['k8s'],
      output: `${rule} (user=alice)`,
      output_fields: { 'ka.user.name': 'alice', n: i },
      hostname: 'node-1',
    },
  ];
}

test(`Alertmanager down for ${DOWN_S}s: no alert lost`, {
  skip: existsSync(ALERTMANAGER_BINARY) ? false : `${ALERTMANAGER_BINARY} missing (test/e2e/setup.sh)`,
  timeout: (DOWN_S + 120) * 1000,
}, async () => {
  const am = await new Alertmanager(await freePort()).start();
  const dir = tempDir('logwarden-fault-am-');
  const config = writeFaultConfig(dir, {
    service: ['scheduler.base: 0.5', 'scheduler.cap: 3', 'storage.checksum: on'],
    http: false,
    outputs: `    - name: alertmanager
      match: falco
      url: ${am.url}
      retry_limit: no_limits
      batch_wait: 200ms
      resend_interval: 0`,
  });
  const lw = await LogwardenProcess.start(config);
  const sender = new AckingSender(lw.port(), { tag: 'falco', chunk: 10, inFlight: 100, ackTimeoutMs: 20_000, mode: 'Forward' });
  try {
    const phase = (name: string, from: number) => Array.from({ length: PER_PHASE }, (_, k) => alert(from + k, name));
    await sender.send(phase('before', 0));
    const names = (p: string, from: number) => Array.from({ length: PER_PHASE }, (_, k) => `Fault ${p} ${from + k}`);
    const has = (alerts: Array<{ labels: Record<string, string> }>, want: string[]) => {
      const got = new Set(alerts.map((a) => a.labels.alertname));
      return want.filter((n) => !got.has(n));
    };
    await am.waitFor((a) => has(a, names('before', 0)).length === 0, 'the alerts sent before the stop');

    await am.stop();
    const downAt = Date.now();
    await sender.send(phase('down', PER_PHASE));
    const ackedWhileDown = sender.acked.size - PER_PHASE;
    await lw.waitLog((l) => l.msg === 'batch failed, will retry', 'a failed attempt while Alertmanager is down', 10_000);
    await sleep(Math.max(0, DOWN_S * 1000 - (Date.now() - downAt)));
    await am.start();
    const upAt = Date.now();
    await sender.send(phase('after', 2 * PER_PHASE));
    const want = [...names('down', PER_PHASE), ...names('after', 2 * PER_PHASE)];
    let missing: string[] = want;
    const deadline = Date.now() + 60_000;
    while (missing.length && Date.now() < deadline) {
      missing = has(await am.alerts(), want);
      if (missing.length) await sleep(200);
    }
    const figures = {
      down_s: DOWN_S,
      alerts_sent: 3 * PER_PHASE,
      acked: sender.acked.size,
      acked_while_down: ackedWhileDown,
      missing_after_restart: missing.length,
      delivered_ms_after_restart: Date.now() - upAt,
      retries_logged: lw.logs.filter((l) => l.msg === 'batch failed, will retry').length,
    };
    process.stdout.write(`# fault-alertmanager figures ${JSON.stringify(figures)}\n`);
    assert.equal(ackedWhileDown, PER_PHASE, 'alerts acked from the buffer while Alertmanager is down');
    assert.deepEqual(missing, [], 'alerts lost');
    assert.equal(sender.acked.size, 3 * PER_PHASE);
  } finally {
    await sender.close();
    await lw.stop();
    await am.stop();
  }
});

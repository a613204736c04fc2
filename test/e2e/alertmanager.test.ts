/**
 * The alertmanager output against real Alertmanagers (Debian's prometheus-alertmanager, installed
 * by test/e2e/setup.sh): two unclustered instances on loopback, alert records sent through a
 * pipeline (loadConfigFile + plan + Pipeline), read back from GET /api/v2/alerts.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventTime, type LogEvent } from '../../src/core/event.js';
import { alertmanagerOutput } from '../../src/outputs/alertmanager/index.js';
import { Alertmanager } from '../support/alertmanager.js';
import { falcoAlert } from '../support/falco-alert.js';
import { freePort } from '../support/cli.js';
import { startPipeline, type RunningPipeline } from '../support/output-pipeline.js';

/** A Falco alert record as the detect filter emits it (Falco's JSON output shape). */
function alertEvent(rule: string, priority: string, fields: Record<string, unknown> = {}, time = EventTime.now()): LogEvent {
  return falcoAlert(rule, priority, fields, { time, tags: ['k8s', 'NIST_800-53_AC-6', 'attack'], output: `${rule} (user=${String(fields['ka.user.name'] ?? 'x')})` });
}

function yaml(urls: string[], extra: string): string {
  return `service:
  log_level: debug
  scheduler.base: 0.1
  scheduler.cap: 0.3
pipeline:
  outputs:
    - name: alertmanager
      match: falco
      url:
${urls.map((u) => `        - ${u}`).join('\n')}
      batch_wait: 50ms
${extra}
`;
}

describe('alertmanager output against real Alertmanagers', () => {
  let am1: Alertmanager;
  let am2: Alertmanager;
  let running: RunningPipeline | undefined;

  before(async () => {
    am1 = await new Alertmanager(await freePort()).start();
    am2 = await new Alertmanager(await freePort()).start();
  });
  after(async () => {
    await running?.stop(1);
    await am1?.stop();
    await am2?.stop();
  });

  test('both Alertmanagers receive every alert with falcosidekick labels and annotations, endsAt and priority filtering', async () => {
    running = await startPipeline(
      yaml(
        [am1.url, am2.url],
        `      expires_after: 600
      minimum_priority: warning
      extra_labels: cluster:prod
      extra_annotations:
        runbook: https://runbooks.example/falco`,
      ),
      [alertmanagerOutput],
    );
    const t = EventTime.now();
    const critical = alertEvent('Attach/Exec Pod', 'Critical', { 'ka.user.name': 'alice', 'ka.target.namespace': 'default', n_evts: '3', 'ka.req.pod.containers.image': ['nginx'] }, t);
    const notice = alertEvent('K8s Serviceaccount Created', 'Notice', { 'ka.user.name': 'bob' }, t);
    const warning = alertEvent('Create Disallowed Namespace', 'Warning', { 'ka.target.name': 'foo' }, t);
    assert.deepEqual(await running.ingest([critical, notice, warning]), { ok: true });
    for (const am of [am1, am2]) {
      const alerts = await am.waitFor((a) => a.length === 2, 'two alerts');
      const a = alerts.find((x) => x.labels.rule === 'Attach/Exec Pod')!;
      assert.deepEqual(a.labels, {
        alertname: 'Attach/Exec Pod',
        rule: 'Attach/Exec Pod',
        source: 'falco',
        eventsource: 'k8s_audit',
        hostname: 'node-1',
        tags: 'NIST_800-53_AC-6,attack,k8s',
        priority: 'Critical',
        severity: 'critical',
        ka_user_name: 'alice',
        ka_target_namespace: 'default',
        cluster: 'prod',
      });
      assert.deepEqual(a.annotations, {
        info: 'Attach/Exec Pod (user=alice)',
        description: 'Attach/Exec Pod (user=alice)',
        summary: 'Attach/Exec Pod',
        runbook: 'https://runbooks.example/falco',
      });
      const endsAt = Date.parse(a.endsAt);
      const startsAt = t.sec * 1000 + Math.floor(t.nsec / 1e6);
      assert.equal(endsAt, startsAt + 600_000);
      assert.equal(Date.parse(a.startsAt), startsAt);
      assert.equal(a.status.state, 'active');
      const w = alerts.find((x) => x.labels.rule === 'Create Disallowed Namespace')!;
      assert.equal(w.labels.severity, 'warning');
      assert.equal(w.labels.priority, 'Warning');
      assert.equal(w.labels.ka_target_name, 'foo');
      assert.ok(!alerts.some((x) => x.labels.rule === 'K8s Serviceaccount Created'), 'below minimum_priority');
    }
    assert.equal(await running.counter('logwarden_alertmanager_filtered_records_total'), 1);
    await running.stop(1);
    running = undefined;
  });

  test('an Alertmanager that is down gets the batch when it is back; the other is not sent it again', async () => {
    const port = am2.port;
    await am2.stop();
    running = await startPipeline(yaml([am1.url, `http://127.0.0.1:${port}`], '      expires_after: 300\n      retry_limit: no_limits'), [alertmanagerOutput]);
    const before1 = await am1.received();
    const outcome = running.ingest([alertEvent('Retry Rule', 'Error', { 'ka.verb': 'delete' })]);
    await am1.waitFor((a) => a.some((x) => x.labels.rule === 'Retry Rule'), 'the alert on the instance that is up');
    await new Promise((r) => setTimeout(r, 600));
    assert.ok((await running.counter('logwarden_output_retries_total')) >= 1, 'retried while one instance is down');
    am2 = await new Alertmanager(port).start();
    assert.deepEqual(await outcome, { ok: true });
    const [a] = await am2.waitFor((x) => x.some((y) => y.labels.rule === 'Retry Rule'), 'the alert on the restarted instance');
    assert.equal(a!.labels.severity, 'warning');
    assert.equal((await am1.received()) - before1, 1, 'the instance that accepted is not sent the retried batch again');
    await running.stop(1);
    running = undefined;
  });

  test('alerts still firing are re-sent every resend_interval, so a restarted Alertmanager has them again', async () => {
    running = await startPipeline(yaml([am1.url], '      expires_after: 120\n      resend_interval: 1\n      severity_map: "error:major"'), [alertmanagerOutput]);
    assert.deepEqual(await running.ingest([alertEvent('Firing Rule', 'Error')]), { ok: true });
    await am1.waitFor((a) => a.some((x) => x.labels.rule === 'Firing Rule' && x.labels.severity === 'major'), 'the alert');
    const port = am1.port;
    await am1.stop();
    am1 = await new Alertmanager(port).start();
    assert.ok(!(await am1.alerts()).some((x) => x.labels.rule === 'Firing Rule'), 'a fresh instance has lost it');
    await am1.waitFor((a) => a.some((x) => x.labels.rule === 'Firing Rule'), 'the re-sent alert', 5000);
    assert.ok((await running.counter('logwarden_alertmanager_resent_alerts_total')) >= 1);
    await running.stop(1);
    running = undefined;
  });

  test('with expires_after 0 nothing is re-sent and endsAt is left to Alertmanager', async () => {
    running = await startPipeline(yaml([am2.url], '      resend_interval: 1'), [alertmanagerOutput]);
    const before2 = await am2.received();
    assert.deepEqual(await running.ingest([alertEvent('No Expiry Rule', 'Critical')]), { ok: true });
    const alerts = await am2.waitFor((a) => a.some((x) => x.labels.rule === 'No Expiry Rule'), 'the alert');
    const a = alerts.find((x) => x.labels.rule === 'No Expiry Rule')!;
    // Alertmanager sets endsAt to receipt + resolve_timeout (5m by default) for alerts without one.
    const endsIn = Date.parse(a.endsAt) - Date.now();
    assert.ok(endsIn > 240_000 && endsIn <= 300_000, a.endsAt);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await am2.received()) - before2, 1);
    await running.stop(1);
    running = undefined;
  });
});

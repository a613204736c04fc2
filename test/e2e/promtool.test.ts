/**
 * The shipped Prometheus rules and logwarden's metric exposition, checked by the real Prometheus
 * tools (Debian's `prometheus` package, installed by test/e2e/setup.sh):
 * - `promtool check rules` on deploy/prometheus/logwarden-rules.yaml, and on the spec of the Helm
 *   chart's PrometheusRule;
 * - `promtool test rules` on its unit tests (one or more for every shipped alert);
 * - `promtool check metrics` on the live /metrics of a real `logwarden run` (one process, and
 *   `service.workers: 2`, whose primary merges the workers' registries) after it received,
 *   refused, delivered and failed to deliver records, so that the series labelled by `reason`,
 *   `node`, `rule`... are there too.
 *
 * The only findings allowed are those of prom-client's default Node.js metrics, which logwarden
 * exports under their standard names: exactly that set, so a new finding fails.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { parse } from 'yaml';
import { Alertmanager } from '../support/alertmanager.js';
import { freePort, runCli, startDaemon } from '../support/cli.js';
import { RawClient, pack } from '../support/forward-client.js';
import { tempDir, until } from '../support/harness.js';
import { helmTemplate } from '../support/helm-template.js';
import { peerBinary } from '../support/peers.js';
import { repoRoot } from '../support/paths.js';

const promtool = peerBinary('promtool');
const rulesFile = join(repoRoot, 'deploy', 'prometheus', 'logwarden-rules.yaml');
const rulesTests = join(repoRoot, 'deploy', 'prometheus', 'logwarden-rules.test.yaml');

/**
 * What `promtool check metrics` says about prom-client's default metrics: gauges of the number of
 * active handles, requests and resources whose names end in `_total`. These names are
 * prom-client's (every Node.js exporter has them); logwarden's own metrics have no finding.
 */
const KNOWN_FINDINGS = [
  'nodejs_active_handles_total non-counter metrics should not have "_total" suffix',
  'nodejs_active_requests_total non-counter metrics should not have "_total" suffix',
  'nodejs_active_resources_total non-counter metrics should not have "_total" suffix',
];

function run(args: string[], input?: string) {
  const r = spawnSync(promtool, args, { cwd: repoRoot, input, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The lines of `promtool check metrics` output that are findings (one per metric). */
function findings(out: string): string[] {
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .sort();
}

describe('promtool on the shipped rules', () => {
  test('promtool check rules deploy/prometheus/logwarden-rules.yaml', () => {
    const r = run(['check', 'rules', rulesFile]);
    assert.equal(r.code, 0, r.out);
    const alerts = (parse(readFileSync(rulesFile, 'utf8')) as { groups: Array<{ rules: unknown[] }> }).groups.flatMap((g) => g.rules).length;
    assert.match(r.out, new RegExp(`SUCCESS: ${alerts} rules found`));
  });

  test('promtool check rules on the spec of the Helm chart\u2019s PrometheusRule', () => {
    const objects = helmTemplate(join(repoRoot, 'deploy', 'helm', 'logwarden'), {
      releaseName: 'audit',
      namespace: 'logwarden',
      values: { forward: { sharedKey: { value: 'k3y-for-tests-0123456789abcdef' } }, prometheusRule: { enabled: true } },
    }).objects;
    const pr = objects.find((o) => o.kind === 'PrometheusRule');
    assert.ok(pr, 'no PrometheusRule rendered');
    const file = join(tempDir('logwarden-promtool-'), 'helm-rules.yaml');
    writeFileSync(file, JSON.stringify(pr.spec));
    const r = run(['check', 'rules', file]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS: \d+ rules found/);
  });

  test('promtool test rules deploy/prometheus/logwarden-rules.test.yaml', () => {
    const r = run(['test', 'rules', rulesTests]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });

  test('promtool test rules fails on a wrong expectation (the check can fail)', () => {
    const dir = tempDir('logwarden-promtool-');
    const tests = parse(readFileSync(rulesTests, 'utf8')) as { rule_files: string[]; tests: Array<{ alert_rule_test: Array<{ exp_alerts: unknown[] }> }> };
    tests.rule_files = [rulesFile];
    // The first firing expectation, turned into "does not fire".
    const firing = tests.tests.flatMap((t) => t.alert_rule_test).find((a) => a.exp_alerts.length > 0)!;
    firing.exp_alerts = [];
    writeFileSync(join(dir, 'wrong.test.yaml'), JSON.stringify(tests));
    const r = run(['test', 'rules', join(dir, 'wrong.test.yaml')]);
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /FAILED/);
  });

  test('the known findings are prom-client defaults, not logwarden metrics', async () => {
    const bare = new Registry();
    collectDefaultMetrics({ register: bare });
    const r = run(['check', 'metrics'], await bare.metrics());
    assert.deepEqual(findings(r.out), KNOWN_FINDINGS);
  });
});

function pipeline(o: { dir: string; http: number; fwd: number; fwdPlain: number; webhook: number; httpIn: number; am: number; closed: number[]; workers: number }): string {
  writeFileSync(join(o.dir, 'teams.csv'), 'user,team\nsystem:anonymous,nobody\n');
  writeFileSync(
    join(o.dir, 'upstream.yaml'),
    `upstream_servers:
  - name: aggregators
    nodes:
      - name: agg-1
        host: 127.0.0.1
        port: ${o.closed[1]}
      - name: agg-2
        host: 127.0.0.1
        port: ${o.closed[2]}
`,
  );
  const ui = o.workers === 1;
  return `service:
  http_server: on
  http_listen: 127.0.0.1
  http_port: ${o.http}
  workers: ${o.workers}
  ui: ${ui ? 'on' : 'off'}
  storage.path: ${join(o.dir, 'buffer')}
  scheduler.base: 0.1
  scheduler.cap: 0.3
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: ${o.fwd}
      shared_key: k3y-promtool
      storage.type: filesystem
    - name: forward
      alias: forward_plain
      listen: 127.0.0.1
      port: ${o.fwdPlain}
    - name: k8s_audit_webhook
      listen: 127.0.0.1
      port: ${o.webhook}
      storage.type: filesystem
    - name: http
      listen: 127.0.0.1
      port: ${o.httpIn}
      storage.type: filesystem
  filters:
    - name: parser
      match: app.*
      key_name: log
      parser: json
    - name: lookup
      match: kube.*
      file: teams.csv
      lookup_key: $user['username']
      result_key: team
      default: unknown
    - name: audit_policy
      match: kube.*
      policy_file: ${join(repoRoot, 'examples', 'audit-policy.yaml')}
    - name: detect
      match: kube.*
      rules_file: ${join(repoRoot, 'rules', 'k8s_audit_rules.yaml')}
    - name: rewrite_tag
      match: falco
      rule: $priority ^(Emergency|Alert|Critical|Error|Warning)$ copy.falco true
  outputs:
    - name: file
      match: '*'
      path: ${join(o.dir, 'out')}
    - name: alertmanager
      match: falco
      url: http://127.0.0.1:${o.am}
      batch_wait: 50ms
    - name: loki
      match: kube.*
      host: 127.0.0.1
      port: ${o.closed[0]}
      retry_limit: 1
    - name: forward
      match: copy.falco
      upstream: upstream.yaml
      retry_limit: 1
${ui ? '    - name: ui\n      match: falco\n' : ''}`;
}

/** `name{labels} value` samples of an exposition, summed over the series whose labels include `labels`. */
function total(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have[l[1]!] = l[2]!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

async function liveMetricsCheck(workers: number): Promise<void> {
  const dir = tempDir('logwarden-promtool-');
  mkdirSync(join(dir, 'out'));
  const [http, fwd, fwdPlain, webhook, httpIn, amPort, c0, c1, c2] = await Promise.all(Array.from({ length: 9 }, () => freePort()));
  const am = await new Alertmanager(amPort!).start();
  const cfg = join(dir, 'pipeline.yaml');
  writeFileSync(cfg, pipeline({ dir, http: http!, fwd: fwd!, fwdPlain: fwdPlain!, webhook: webhook!, httpIn: httpIn!, am: amPort!, closed: [c0!, c1!, c2!], workers }));
  const d = await startDaemon(cfg);
  try {
    const scrape = async () => (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
    const fresh = await scrape();
    assert.equal(total(fresh, 'logwarden_detect_events_total'), 0, 'a fresh process exports the audit event counter at 0');

    // Audit events over forward (the real CLI, with the shared key), and over the webhook.
    const events = ['exec_pod.json', 'create_nginx_pod_privileged.json', 'attach_cluster_admin_role.json'].map((f) => join(repoRoot, 'examples', 'events', f));
    const sent = await runCli(['send', '-H', '127.0.0.1', '-p', String(fwd), '-t', 'kube.audit', '--ack', '--shared-key', 'k3y-promtool', ...events]);
    assert.equal(sent.code, 0, sent.stderr);
    const item = JSON.parse(readFileSync(events[0]!, 'utf8')) as Record<string, unknown>;
    const list = { kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: [{ ...item, apiVersion: 'audit.k8s.io/v1' }] };
    const hook = await fetch(`http://127.0.0.1:${webhook}/k8s-audit`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(list) });
    assert.equal(hook.status, 200, await hook.text());
    const app = await fetch(`http://127.0.0.1:${httpIn}/app.log`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ log: '{"level":"info","msg":"hi"}' }) });
    assert.ok(app.status < 300, String(app.status));

    // A wrong shared key (auth failure) and a frame that is no forward message (input error).
    const bad = await RawClient.connect(fwd!);
    await bad.until(() => bad.replies.length > 0, 5000, 'HELO');
    await bad.write(bad.ping({ hostname: 'intruder', sharedKey: 'wrong' }));
    await bad.until(() => bad.closed, 5000, 'close after a wrong key');
    const junk = await RawClient.connect(fwdPlain!);
    await junk.write(pack(42));
    await junk.until(() => junk.closed, 5000, 'close after a bad frame');

    let text = '';
    await until(
      async () => {
        text = await scrape();
        return (
          total(text, 'logwarden_detect_events_total') >= 4 &&
          total(text, 'logwarden_detect_alerts_total') > 0 &&
          total(text, 'logwarden_input_auth_failures_total') > 0 &&
          total(text, 'logwarden_input_errors_total', { name: 'forward_plain' }) > 0 &&
          total(text, 'logwarden_output_dropped_records_total', { name: 'loki.0' }) > 0 &&
          total(text, 'logwarden_forward_node_failures_total') > 0 &&
          total(text, 'logwarden_output_proc_records_total', { name: 'alertmanager.0' }) > 0 &&
          total(text, 'logwarden_parser_filter_records_total', { result: 'parsed' }) > 0
        );
      },
      'records received, refused, delivered and dead-lettered',
      60_000,
      200,
    );
    await am.waitFor((a) => a.length > 0, 'alerts in the real Alertmanager');

    const r = run(['check', 'metrics'], text);
    assert.deepEqual(findings(r.out), KNOWN_FINDINGS, `promtool check metrics:\n${r.out}`);
    assert.equal(r.code, 3, 'promtool reports lint findings with status 3');

    // And the metrics the shipped rules use are all in the exposition.
    const rules = readFileSync(rulesFile, 'utf8');
    const used = new Set([...rules.matchAll(/\b(logwarden_[a-z0-9_]*[a-z0-9]|nodejs_[a-z0-9_]*[a-z0-9])\b/g)].map((m) => m[1]!));
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    for (const name of used) assert.ok(exported.has(name), `${name}, used by the rules, is not in /metrics`);
  } finally {
    assert.equal(await d.stop(), 0, d.logs.slice(-20).join('\n'));
    await am.stop();
  }
}

describe('promtool check metrics on a live /metrics', () => {
  test('one process', () => liveMetricsCheck(1));
  test('service.workers: 2 (the primary merges the workers\u2019 metrics)', () => liveMetricsCheck(2));
});

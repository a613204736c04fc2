/**
 * /metrics of a real `logwarden run` before it has received anything: every input, filter,
 * output and rule series exists at 0 (as Fluent Bit exports them), so rate() is 0 rather than
 * absent and the "no audit events" alert can fire on a process whose source never connected;
 * process metrics use the standard process_* / nodejs_* names; build info and uptime are there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startDaemon } from '../support/cli.js';
import { tempDir } from '../support/harness.js';
import { repoRoot } from '../support/paths.js';

/** `name{labels} value` lines of a Prometheus text exposition. */
function samples(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

test('a fresh process exports every plugin and rule series at 0, standard process metrics, build info and uptime', async () => {
  const dir = tempDir();
  const [fwd, http, web] = [await freePort(), await freePort(), await freePort()];
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(
    file,
    `service:
  http_server: on
  http_listen: 127.0.0.1
  http_port: ${http}
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: ${fwd}
    - name: k8s_audit_webhook
      listen: 127.0.0.1
      port: ${web}
  filters:
    - name: audit_policy
      match: kube.*
      policy_file: ${join(repoRoot, 'examples', 'audit-policy.yaml')}
    - name: detect
      match: kube.*
      rules_file: ${join(repoRoot, 'rules', 'k8s_audit_rules.yaml')}
  outputs:
    - name: file
      match: '*'
      path: ${dir}
    - name: alertmanager
      match: falco
      url: http://127.0.0.1:${await freePort()}
`,
  );
  const d = await startDaemon(file);
  try {
    const text = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
    const all = samples(text);
    const value = (name: string, labels: Record<string, string>) => all.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    for (const input of ['forward.0', 'k8s_audit_webhook.0']) {
      for (const m of ['logwarden_input_records_total', 'logwarden_input_bytes_total']) assert.equal(value(m, { name: input }), 0, `${m}{name="${input}"}`);
    }
    for (const filter of ['audit_policy.0', 'detect.0']) {
      for (const result of ['in', 'out', 'dropped']) assert.equal(value('logwarden_filter_records_total', { name: filter, result }), 0, `${filter} ${result}`);
    }
    assert.equal(value('logwarden_detect_events_total', { name: 'detect.0' }), 0);
    const rules = all.filter((s) => s.name === 'logwarden_detect_alerts_total');
    assert.ok(rules.length >= 40, `${rules.length} rule series`);
    assert.ok(rules.every((s) => s.value === 0 && s.labels.rule && s.labels.priority));
    for (const output of ['file.0', 'alertmanager.0']) {
      for (const m of ['logwarden_output_proc_records_total', 'logwarden_output_proc_batches_total', 'logwarden_output_retries_total', 'logwarden_output_retries_failed_total']) {
        assert.equal(value(m, { name: output }), 0, `${m}{name="${output}"}`);
      }
      assert.equal(value('logwarden_output_request_duration_seconds_count', { name: output }), 0);
    }
    assert.equal(value('logwarden_build_info', { version: '0.1.0', nodejs_version: process.version }), 1);
    assert.ok(value('logwarden_uptime_seconds', {})! >= 0);
    for (const m of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_p99_seconds']) {
      assert.ok(value(m, {}) !== undefined, m);
    }
    assert.doesNotMatch(text, /logwarden_process_/);
  } finally {
    assert.equal(await d.stop(), 0);
  }
});

/**
 * deploy/prometheus/logwarden-rules.yaml and its promtool unit tests, read as data (the e2e
 * suite runs them with the real promtool): every alert is well-formed, has unit tests showing it
 * firing and not firing, and an alert on "did this counter move" also fires on a series that is
 * born with a value above 0 (the form `increase(X[W]) > 0 or (X > 0 unless X offset W)`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { repoRoot } from '../../support/paths.js';

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts: Array<{ exp_labels: Record<string, string>; exp_annotations?: Record<string, string> }>;
}

const dir = join(repoRoot, 'deploy', 'prometheus');
const rules = (parse(readFileSync(join(dir, 'logwarden-rules.yaml'), 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> }).groups.flatMap((g) => g.rules);
const unit = parse(readFileSync(join(dir, 'logwarden-rules.test.yaml'), 'utf8')) as {
  rule_files: string[];
  tests: Array<{ name: string; input_series: Array<{ series: string; values: string }>; alert_rule_test: AlertTest[] }>;
};
const alerts = rules.filter((r) => r.alert);

test('every rule is an alert named Logwarden*, with a severity, a summary, and balanced brackets', () => {
  assert.ok(alerts.length >= 20, `${alerts.length} alerts`);
  const names = new Set<string>();
  for (const r of rules) {
    assert.ok(r.alert, `a rule without alert: ${r.expr}`);
    assert.match(r.alert, /^Logwarden[A-Za-z]+$/);
    assert.ok(!names.has(r.alert), `duplicate alert ${r.alert}`);
    names.add(r.alert);
    assert.equal(typeof r.expr, 'string', r.alert);
    let depth = 0;
    for (const c of r.expr) {
      if ('([{'.includes(c)) depth++;
      if (')]}'.includes(c)) depth--;
      assert.ok(depth >= 0, `${r.alert}: unbalanced brackets`);
    }
    assert.equal(depth, 0, `${r.alert}: unbalanced brackets`);
    if (r.for !== undefined) assert.match(String(r.for), /^\d+[smh]$/, r.alert);
    assert.match(String(r.labels?.severity), /^(critical|warning|info)$/, r.alert);
    assert.ok(r.annotations?.summary, r.alert);
  }
});

test('every alert has promtool unit tests that show it firing and not firing', () => {
  assert.deepEqual(unit.rule_files, ['logwarden-rules.yaml']);
  const evals = unit.tests.flatMap((t) => t.alert_rule_test);
  for (const { alert } of alerts) {
    const mine = evals.filter((e) => e.alertname === alert);
    assert.ok(
      mine.some((e) => e.exp_alerts.length > 0),
      `no promtool test shows ${alert} firing`,
    );
    assert.ok(
      mine.some((e) => e.exp_alerts.length === 0),
      `no promtool test shows ${alert} not firing`,
    );
    for (const e of mine) for (const a of e.exp_alerts) assert.ok(a.exp_annotations?.summary, `${alert} at ${e.eval_time}: the expected summary is checked too`);
  }
  for (const e of evals)
    assert.ok(
      alerts.some((r) => r.alert === e.alertname),
      `the tests name ${e.alertname}, which is no alert`,
    );
});

test('"did it move" alerts also fire on a series born non-zero, and the tests cover that case', () => {
  const counterAlerts = alerts.filter((r) => /\bincrease\(/.test(r.expr));
  assert.ok(counterAlerts.length >= 5);
  for (const r of counterAlerts) {
    for (const m of r.expr.matchAll(/increase\((logwarden_[a-z0-9_]+)(?:\{[^}]*\})?\[(\d+[smh])\]\)/g)) {
      const [, metric, window] = m;
      assert.ok(
        r.expr.includes(`unless ${metric} offset ${window}`),
        `${r.alert}: increase(${metric}[${window}]) misses a series that first appears above 0; add "or (${metric} > 0 unless ${metric} offset ${window})"`,
      );
      // A unit test feeds the metric as a series that starts missing and then appears (`_x...`),
      // or starts above 0, and expects the alert.
      const born = unit.tests.some(
        (t) =>
          t.alert_rule_test.some((e) => e.alertname === r.alert && e.exp_alerts.length > 0) &&
          t.input_series.some((s) => s.series.startsWith(`${metric}{`) && (/^_x\d+ [1-9]/.test(s.values) || /^[1-9]/.test(s.values))),
      );
      assert.ok(born, `${r.alert}: no promtool test has ${metric} born with a value above 0`);
    }
  }
});

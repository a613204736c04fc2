/**
 * The hand-written user docs stay in step with the code: docs/operations.md lists every metric
 * the code registers (and names no metric that does not exist, in its tables or its alert
 * rules), it explains every alert of deploy/prometheus/logwarden-rules.yaml (which uses only real
 * metrics) and wraps that file in a PrometheusRule as it is, and docs/inputs-forward.md explains
 * every reason the forward input counts bad input under.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { Metrics } from '../../../src/observe/metrics.js';
import { fileOutput } from '../../../src/outputs/file/index.js';
import { repoRoot } from '../../support/paths.js';

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const src = sources(join(repoRoot, 'src')).map((f) => ({ file: f, text: readFileSync(f, 'utf8') }));
const doc = (name: string) => readFileSync(join(repoRoot, 'docs', name), 'utf8');

/** Metric names the code registers: string literals `'logwarden_…'` passed to the registry. */
function codeMetrics(): Set<string> {
  const names = new Set<string>();
  for (const { text } of src) {
    for (const m of text.matchAll(/\.(?:counter|gauge|histogram)\(\s*'(logwarden_[a-z0-9_]+)'/g)) names.add(m[1]!);
    for (const m of text.matchAll(/\bname: '(logwarden_[a-z0-9_]+)'/g)) names.add(m[1]!);
  }
  return names;
}

/** prom-client's default metrics under their standard names, as the running service registers them. */
function processMetrics(): Set<string> {
  const m = new Metrics(true);
  return new Set(
    m.registry
      .getMetricsAsArray()
      .map((x) => x.name)
      .filter((n) => n.startsWith('process_') || n.startsWith('nodejs_')),
  );
}

test('docs/operations.md has a table row for every metric the code registers, and no other', () => {
  const code = codeMetrics();
  assert.ok(code.size > 40, `found ${code.size} metrics in src/`);
  const ops = doc('operations.md');
  const rows = new Set([...ops.matchAll(/^\| `(logwarden_[a-z0-9_]+)` \|/gm)].map((m) => m[1]!));
  for (const name of code) assert.ok(rows.has(name), `${name} is registered in src/ but has no row in docs/operations.md`);
  for (const name of rows) assert.ok(code.has(name), `docs/operations.md lists ${name}, which src/ does not register`);
});

test('every logwarden_* name in docs/operations.md (prose, tables, alert rules) is a real metric', () => {
  const known = new Set([...codeMetrics(), ...processMetrics()]);
  assert.ok(processMetrics().has('process_cpu_seconds_total'));
  assert.ok(processMetrics().has('nodejs_eventloop_lag_p99_seconds'));
  const ops = doc('operations.md');
  for (const m of ops.matchAll(/\blogwarden_[a-z0-9_]*[a-z0-9]\b/g)) {
    const name = m[0];
    if (name.endsWith('_bucket') || name.endsWith('_sum') || name.endsWith('_count')) {
      const base = name.replace(/_(bucket|sum|count)$/, '');
      assert.ok(known.has(base), `${name} in docs/operations.md`);
      continue;
    }
    assert.ok(known.has(name), `docs/operations.md names ${name}, which is no metric`);
  }
});

test('every process_* / nodejs_* name in docs/operations.md is one the service exports', () => {
  const known = processMetrics();
  const ops = doc('operations.md');
  const named = [...ops.matchAll(/(?<![a-z_])(?:process|nodejs)_[a-z0-9_]*[a-z0-9]\b/g)].map((m) => m[0]);
  assert.ok(named.length >= 4);
  for (const name of named) {
    if (name.endsWith('_') || name === 'nodejs_version') continue; // nodejs_version: a label of logwarden_build_info
    assert.ok(known.has(name) || known.has(name.replace(/_(bucket|sum|count)$/, '')), `docs/operations.md names ${name}, which is no exported metric`);
  }
  assert.ok(!/logwarden_process_/.test(ops), 'the old prefixed names are gone');
});

const rulesFile = join(repoRoot, 'deploy', 'prometheus', 'logwarden-rules.yaml');
const shippedRules = () =>
  (parse(readFileSync(rulesFile, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string; labels: { severity: string } }> }> }).groups.flatMap((g) => g.rules);

test('every metric the shipped alert rules use is a real metric', () => {
  const known = new Set([...codeMetrics(), ...processMetrics()]);
  const rules = readFileSync(rulesFile, 'utf8');
  const used = [...rules.matchAll(/\b(?:logwarden|process|nodejs)_[a-z0-9_]*[a-z0-9]\b/g)].map((m) => m[0]);
  assert.ok(used.length >= 20);
  for (const name of used) assert.ok(known.has(name), `deploy/prometheus/logwarden-rules.yaml uses ${name}, which is no metric`);
  // The areas the runbooks cover each have a rule.
  for (const m of ['input_errors', 'input_auth_failures', 'output_retries', 'output_dropped', 'input_paused', 'output_queue', 'detect_alerts', 'storage_write_errors', 'storage_quarantined']) {
    assert.ok(
      shippedRules().some((r) => String(r.expr).includes(`logwarden_${m}`)),
      `no rule on logwarden_${m}`,
    );
  }
});

test('docs/operations.md points at the rules file and explains every shipped alert, and no other', () => {
  const ops = doc('operations.md');
  assert.match(ops, /\(\.\.\/deploy\/prometheus\/logwarden-rules\.yaml\)/);
  assert.match(ops, /rule_files:\n\s+- logwarden-rules\.yaml/);
  const section = ops.slice(ops.indexOf('## Alert rules'), ops.indexOf('## Sizing'));
  const rows = new Map([...section.matchAll(/^\| `(Logwarden[A-Za-z]+)` \| (critical|warning|info) \| (.+) \| (.+) \|$/gm)].map((m) => [m[1]!, { severity: m[2]!, means: m[3]!, todo: m[4]! }]));
  const alerts = shippedRules();
  for (const r of alerts) {
    const row = rows.get(r.alert);
    assert.ok(row, `${r.alert} has no row (what it means, what to do) in docs/operations.md`);
    assert.equal(row.severity, r.labels.severity, r.alert);
    assert.ok(row.means.length > 30 && row.todo.length > 20, r.alert);
  }
  for (const name of rows.keys())
    assert.ok(
      alerts.some((r) => r.alert === name),
      `docs/operations.md explains ${name}, which is no shipped alert`,
    );
  // No second copy of the rules in the docs.
  assert.doesNotMatch(ops, /^\s+expr: /m, 'docs/operations.md holds rule expressions: point at the rules file instead');
});

test('the command in docs/operations.md wraps the rules file in a PrometheusRule as it is', () => {
  const ops = doc('operations.md');
  const block = /```sh\n(\{ printf 'apiVersion: monitoring\.coreos\.com\/v1[\s\S]*?)```/.exec(ops);
  assert.ok(block, 'no PrometheusRule command');
  const cmd = block[1]!.trim();
  assert.match(cmd, /\| kubectl apply -f -$/);
  const out = execFileSync('bash', ['-c', cmd.replace(/\| kubectl apply -f -$/, '')], { cwd: repoRoot, encoding: 'utf8' });
  const obj = parse(out) as { apiVersion: string; kind: string; metadata: { name: string }; spec: unknown };
  assert.equal(obj.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(obj.kind, 'PrometheusRule');
  assert.deepEqual(obj.spec, parse(readFileSync(rulesFile, 'utf8')));
});

test('docs/inputs-forward.md explains every reason the forward input counts', () => {
  const code = ['inputs/forward/protocol.ts', 'forward-protocol/framer.ts', 'inputs/forward/index.ts'].map((f) => readFileSync(join(repoRoot, 'src', f), 'utf8')).join('\n');
  const reasons = new Set<string>();
  for (const m of code.matchAll(/new ProtocolError\([^;]*?,\s*'([a-z_]+)'\)/g)) reasons.add(m[1]!);
  for (const m of code.matchAll(/\b(?:kill|m\.error)\('([a-z_]+)'/g)) reasons.add(m[1]!);
  assert.ok(reasons.size >= 15, [...reasons].join(', '));
  const fwd = doc('inputs-forward.md');
  const table = fwd.slice(fwd.indexOf('## Bad input'), fwd.indexOf('## Metrics'));
  for (const r of reasons) assert.match(table, new RegExp(`\`${r}\``), `reason ${r} is not explained under "Bad input"`);
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6} (.+)$/gm)) {
    out.add(
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    );
  }
  return out;
}

/**
 * Link targets that README.md and docs/deploy.md already promise and that are not in the
 * repository yet; checked like any other link once they exist.
 */
const PENDING = new Set(['../BENCHMARKS.md']);

test('links in docs/operations.md, inputs-forward.md, migrating-from-falco.md and outputs-file.md resolve (files and anchors)', () => {
  for (const name of ['operations.md', 'inputs-forward.md', 'migrating-from-falco.md', 'outputs-file.md']) {
    const text = doc(name);
    const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
    assert.ok(links.length > 3, name);
    for (const link of links) {
      const [path, anchor] = link.split('#') as [string, string | undefined];
      const target = path ? join(repoRoot, 'docs', path) : join(repoRoot, 'docs', name);
      if (PENDING.has(path) && !existsSync(target)) continue;
      let body: string;
      try {
        body = readFileSync(target, 'utf8');
      } catch {
        // A directory link (examples/fluent-bit/) is fine when the directory exists.
        assert.ok(readdirSync(target).length > 0, `${name}: ${link} does not exist`);
        continue;
      }
      if (anchor) assert.ok(anchors(body).has(anchor), `${name}: ${link}: no heading with anchor #${anchor}`);
    }
  }
});

test('docs/outputs-file.md explains every option of the file output and names only real ones', () => {
  const page = doc('outputs-file.md');
  const options = Object.keys(fileOutput.options);
  for (const name of options) assert.match(page, new RegExp(`\`${name}\``), `docs/outputs-file.md does not explain ${name}`);
  for (const format of (fileOutput.options.format as { values: readonly string[] }).values) {
    assert.match(page, new RegExp(`^\\| \`${format}\``, 'm'), `format ${format} has no row`);
  }
  // The Fluent Bit 5.1 options it says logwarden refuses are indeed unknown to the output.
  const refused = /Fluent Bit 5\.1's dynamic destinations are not supported: ([\s\S]*?)\. logwarden refuses/.exec(page);
  assert.ok(refused, 'no list of refused options');
  const names = [...refused[1]!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!).filter((n) => n !== 'path' && n !== 'file');
  assert.ok(names.length >= 7, names.join(', '));
  for (const n of names) assert.ok(!options.includes(n), `${n} is said to be refused but is an option`);
});

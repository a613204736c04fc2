/**
 * `logwarden detect` as a child process (node bin/logwarden.js, built by tsc before the tests),
 * on the conformance events and rule files.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { repoRoot, falcoCorpus } from '../support/paths.js';

const corpus = join(falcoCorpus);
const rules = (f: string) => join(corpus, 'rules', f);
const events = (f: string) => join(corpus, 'events', f);

function detect(...args: string[]) {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'logwarden.js'), 'detect', ...args], { encoding: 'utf8', timeout: 60_000 });
  const alerts = args.includes('--list-rules')
    ? []
    : r.stdout
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, alerts };
}

describe('logwarden detect (child process)', () => {
  it('prints Falco JSON alerts and a summary, like falco -r -e', () => {
    const r = detect(
      '-r',
      rules('falco_rules-1.0.1.shared-lists.yaml'),
      '-r',
      rules('k8s_audit_rules.legacy.yaml'),
      '-e',
      events('create_configmap_sensitive_values.json'),
      '-r',
      rules('disallow_kactivity.yaml'),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.alerts.length, 6);
    for (const a of r.alerts) {
      assert.equal(a.rule, 'Create/Modify Configmap With Private Credentials');
      assert.equal(a.priority, 'Warning');
      assert.equal(a.source, 'k8s_audit');
      assert.match(a.time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      assert.match(
        a.output as string,
        /^\d\d:\d\d:\d\d\.\d{9}: Warning K8s configmap with private credential \(user=minikube-user verb=create resource=configmaps configmap=my-config config=\{"access\.properties"/,
      );
      assert.equal(typeof (a.output_fields as Record<string, unknown>)['evt.time'], 'number');
    }
    assert.match(r.stderr, /Events read: 6 \(1 file\)/);
    assert.match(r.stderr, /Events detected: 6/);
    assert.match(r.stderr, /WARNING: 6/);
    assert.match(r.stderr, /Create\/Modify Configmap With Private Credentials: 6/);
  });

  it('uses the bundled rules by default; --rule-matching all reports every matching rule', () => {
    const first = detect('-e', events('create_cluster_role_wildcard_verbs.json'));
    const all = detect('-e', events('create_cluster_role_wildcard_verbs.json'), '--rule-matching', 'all');
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(
      first.alerts.map((a) => a.rule),
      ['ClusterRole With Wildcard Created'],
    );
    assert.deepEqual(
      all.alerts.map((a) => a.rule),
      ['ClusterRole With Wildcard Created', 'K8s ClusterRole Created'],
    );
  });

  it('reports data that is no audit event and still exits 0 with no alert (case fal_01_003)', () => {
    const suite = parse(readFileSync(join(corpus, 'cases.yaml'), 'utf8')) as { cases: Array<{ name: string; events: string; extra: Record<string, string> }> };
    const c = suite.cases.find((x) => x.name === 'fal_01_003')!;
    const r = detect('-r', rules('k8s_audit_rules.legacy.yaml'), '-e', events(c.events));
    assert.equal(r.status, 0);
    assert.equal(r.alerts.length, 0);
    assert.ok(r.stderr.includes(c.extra.stderr_contains!), r.stderr);
  });

  it('exits 1 with file:line and the rule name on a rule load error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'detect-cli-'));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, '- macro: m\n  condition: ka.verb = create\n- rule: Uses Unknown Field\n  desc: d\n  condition: m and ka.nope = 1\n  output: o\n  priority: warning\n  source: k8s_audit\n');
    const r = detect('-r', bad, '-e', events('exec_pod.json'));
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.ok(r.stderr.includes(`${bad}:5:14: error: rule 'Uses Unknown Field': filter_check called with nonexistent field ka.nope`), r.stderr);
  });

  it('--list-rules lists rules with priority, source and file', () => {
    const r = detect('--list-rules', '-r', rules('k8s_audit_rules.yaml'));
    assert.equal(r.status, 0, r.stderr);
    const line = r.stdout.split('\n').find((l) => l.startsWith('Attach/Exec Pod '));
    assert.ok(line, r.stdout);
    assert.match(line!, /Attach\/Exec Pod\s+Notice\s+k8s_audit\s+\S*k8s_audit_rules\.yaml:\d+/);
  });
});

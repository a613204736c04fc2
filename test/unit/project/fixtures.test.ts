/**
 * The conformance corpora and the reference policy the suite reads live in test/fixtures, so a
 * fresh clone tests on its own. When the shared reference folder sits beside the repository
 * (../shared, or LOGWARDEN_SHARED), the copies must be byte-identical to it; only that comparison
 * is skipped when it is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { conformanceDir, falcoCorpus, fixturesDir, repoRoot } from '../../support/paths.js';

const shared = process.env.LOGWARDEN_SHARED ?? join(repoRoot, '..', 'shared');

function files(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]))
    .sort();
}

test('the fixtures hold the corpora the suite reads, with their notices', () => {
  for (const f of ['LICENSE-NOTICE', 'FIELDS.md', 'cases.yaml', 'rules/k8s_audit_rules.yaml']) {
    assert.ok(existsSync(join(falcoCorpus, f)), f);
  }
  assert.ok(readdirSync(join(falcoCorpus, 'events')).filter((n) => n.endsWith('.json')).length >= 40);
  assert.ok(existsSync(join(conformanceDir, 'k8s-audit-policy', 'cases.yaml')));
  assert.ok(existsSync(join(fixturesDir, 'reference', 'example-audit-policy.yaml')));
});

test('the fixtures are byte-identical to the shared conformance data', { skip: existsSync(join(shared, 'conformance')) ? false : `no ${join(shared, 'conformance')}` }, () => {
  const pairs: Array<[string, string]> = [
    [join(shared, 'conformance', 'falco-k8saudit'), join(conformanceDir, 'falco-k8saudit')],
    [join(shared, 'conformance', 'k8s-audit-policy'), join(conformanceDir, 'k8s-audit-policy')],
  ];
  for (const [from, to] of pairs) {
    const want = files(from).map((f) => relative(from, f));
    assert.deepEqual(
      files(to).map((f) => relative(to, f)),
      want,
      `${to}: the same files as ${from}`,
    );
    for (const f of want) assert.ok(readFileSync(join(from, f)).equals(readFileSync(join(to, f))), `${f} differs from ${from}`);
  }
  const policy = join(shared, 'reference', 'example-audit-policy.yaml');
  assert.ok(readFileSync(policy).equals(readFileSync(join(fixturesDir, 'reference', 'example-audit-policy.yaml'))), `${policy} differs`);
});

/** Load-time validation of audit policies: every rejected shape, with file:line:col. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, ConfigErrors } from '../../../src/config/errors.js';
import { auditPolicy } from '../../../src/filters/audit_policy/index.js';
import { buildFilters, tempDir, writePipeline } from '../../support/filter-pipeline.js';

const HEAD = 'apiVersion: audit.k8s.io/v1\nkind: Policy\n';

/** Builds a pipeline using `policy.yaml` (written from `policy`); returns the error messages. */
async function policyFileErrors(policy: string): Promise<string[]> {
  const dir = tempDir();
  writeFileSync(join(dir, 'policy.yaml'), policy);
  const file = writePipeline(dir, 'pipeline:\n  filters:\n    - name: audit_policy\n      match: kube.*\n      policy_file: policy.yaml\n');
  return errorsOf(() => buildFilters(file, auditPolicy), dir);
}

async function errorsOf(f: () => Promise<unknown>, dir: string): Promise<string[]> {
  try {
    await f();
  } catch (e) {
    if (e instanceof ConfigErrors) return e.errors.map((x) => x.message.replaceAll(dir + '/', ''));
    if (e instanceof ConfigError) return [e.message.replaceAll(dir + '/', '')];
    throw e;
  }
  assert.fail('expected a configuration error');
}

test('a valid policy file loads', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'policy.yaml'), `${HEAD}rules:\n  - level: Metadata\n`);
  const file = writePipeline(dir, 'pipeline:\n  filters:\n    - name: audit_policy\n      match: kube.*\n      policy_file: policy.yaml\n');
  const { filters } = await buildFilters(file, auditPolicy);
  assert.equal(filters.length, 1);
});

const rejected: Array<[string, string, RegExp]> = [
  ['unknown level', `${HEAD}rules:\n  - level: Everything\n`, /^policy\.yaml:4:12: policy_file: rules\[0\]\.level: unknown level "Everything"/],
  ['level with a typo gets a hint', `${HEAD}rules:\n  - level: Metdata\n`, /^policy\.yaml:4:12: .*unknown level "Metdata" \(did you mean 'Metadata'\?\)/],
  ['missing level', `${HEAD}rules:\n  - verbs: [get]\n`, /^policy\.yaml:4:5: policy_file: rules\[0\]: missing level/],
  ['unknown policy stage', `${HEAD}omitStages: [RequestReceived, Started]\nrules:\n  - level: Metadata\n`, /^policy\.yaml:3:31: policy_file: omitStages\[1\]: unknown stage "Started"/],
  [
    'unknown rule stage',
    `${HEAD}rules:\n  - level: Metadata\n    omitStages:\n      - Panik\n`,
    /^policy\.yaml:6:9: policy_file: rules\[0\]\.omitStages\[0\]: unknown stage "Panik" \(did you mean 'Panic'\?\)/,
  ],
  [
    'resources as a string',
    `${HEAD}rules:\n  - level: Metadata\n    resources: pods\n`,
    /^policy\.yaml:5:16: policy_file: rules\[0\]\.resources: expected a list of \{group, resources, resourceNames\}, found string "pods"/,
  ],
  [
    'resources entry as a string',
    `${HEAD}rules:\n  - level: Metadata\n    resources: [pods]\n`,
    /^policy\.yaml:5:17: policy_file: rules\[0\]\.resources\[0\]: expected a resources entry \(a map\), found string "pods"/,
  ],
  [
    'resources inside an entry as a string',
    `${HEAD}rules:\n  - level: Metadata\n    resources:\n      - group: ""\n        resources: pods\n`,
    /^policy\.yaml:7:20: .*rules\[0\]\.resources\[0\]\.resources: expected a list of strings, found string "pods"/,
  ],
  ['a number in users', `${HEAD}rules:\n  - level: Metadata\n    users: [admin, 42]\n`, /^policy\.yaml:5:20: .*rules\[0\]\.users\[1\]: expected a string, found number 42/],
  [
    'unknown rule field with a hint',
    `${HEAD}rules:\n  - level: Metadata\n    omitStage: [Panic]\n`,
    /^policy\.yaml:5:5: .*rules\[0\]\.omitStage: unknown field of a rule \(did you mean 'omitStages'\?\)/,
  ],
  [
    'unknown group entry field',
    `${HEAD}rules:\n  - level: Metadata\n    resources:\n      - groups: [apps]\n`,
    /^policy\.yaml:6:9: .*rules\[0\]\.resources\[0\]\.groups: unknown field of a resources entry \(did you mean 'group'\?\)/,
  ],
  ['group with a version', `${HEAD}rules:\n  - level: Metadata\n    resources:\n      - group: apps/v1\n`, /^policy\.yaml:6:16: .*"apps\/v1" is not an API group name/],
  [
    'nonResourceURLs mixed with resources',
    `${HEAD}rules:\n  - level: Metadata\n    resources: [{group: ""}]\n    nonResourceURLs: ["/healthz"]\n`,
    /^policy\.yaml:6:22: .*rules\[0\]\.nonResourceURLs: rules cannot apply to both regular resources/,
  ],
  [
    'nonResourceURLs mixed with namespaces',
    `${HEAD}rules:\n  - level: Metadata\n    namespaces: [default]\n    nonResourceURLs: ["/healthz"]\n`,
    /rules\[0\]\.nonResourceURLs: rules cannot apply to both/,
  ],
  [
    '* not last in a URL',
    `${HEAD}rules:\n  - level: Metadata\n    nonResourceURLs:\n      - /api/*/v1\n`,
    /^policy\.yaml:6:9: .*rules\[0\]\.nonResourceURLs\[0\]: "\/api\/\*\/v1": non-resource URL wildcards '\*' must be the final character/,
  ],
  ['URL without a leading /', `${HEAD}rules:\n  - level: Metadata\n    nonResourceURLs: [healthz]\n`, /^policy\.yaml:5:23: .*"healthz": non-resource URL rules must begin with a '\/' character/],
  [
    'resourceNames without resources',
    `${HEAD}rules:\n  - level: None\n    resources:\n      - group: ""\n        resourceNames: [controller-leader]\n`,
    /^policy\.yaml:7:24: .*rules\[0\]\.resources\[0\]\.resourceNames: using resourceNames requires at least one resource/,
  ],
  ['no rules key', HEAD, /^policy\.yaml:1:1: policy_file: rules: a policy needs at least one rule/],
  ['empty rules', `${HEAD}rules: []\n`, /^policy\.yaml:3:8: policy_file: rules: a policy needs at least one rule/],
  ['rules as a map', `${HEAD}rules:\n  level: None\n`, /^policy\.yaml:4:3: policy_file: rules: expected a list of rules, found a map/],
  ['empty file', '', /^policy\.yaml:1:1: policy_file: the policy is empty/],
  ['wrong kind', 'apiVersion: audit.k8s.io/v1\nkind: PolicyList\nrules:\n  - level: None\n', /^policy\.yaml:2:7: policy_file: kind: found "PolicyList", expected Policy/],
  ['wrong apiVersion', 'apiVersion: audit.k8s.io/v2\nkind: Policy\nrules:\n  - level: None\n', /^policy\.yaml:1:13: policy_file: apiVersion: found "audit\.k8s\.io\/v2"/],
  ['omitManagedFields not a boolean', `${HEAD}omitManagedFields: "yes"\nrules:\n  - level: None\n`, /^policy\.yaml:3:20: policy_file: omitManagedFields: expected true or false, found string "yes"/],
  ['a list instead of a policy', '- level: None\n', /^policy\.yaml:1:1: policy_file: expected a Policy \(a map\), found a list/],
  ['YAML syntax error', `${HEAD}rules:\n  - level: [None\n`, /^policy\.yaml:\d+:\d+: policy_file: YAML syntax error/],
];

for (const [what, policy, expected] of rejected) {
  test(`policy file rejected: ${what}`, async () => {
    const errors = await policyFileErrors(policy);
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0]!, expected);
  });
}

test('every problem of a policy is reported, each at its own line', async () => {
  const errors = await policyFileErrors(`${HEAD}rules:\n  - level: Bad\n  - level: None\n    omitStages: [Nope]\n`);
  assert.equal(errors.length, 2);
  assert.match(errors[0]!, /^policy\.yaml:4:12: .*unknown level "Bad"/);
  assert.match(errors[1]!, /^policy\.yaml:6:18: .*unknown stage "Nope"/);
});

test('a missing policy file is an error at the policy_file option', async () => {
  const dir = tempDir();
  const file = writePipeline(dir, 'pipeline:\n  filters:\n    - name: audit_policy\n      match: kube.*\n      policy_file: nowhere.yaml\n');
  const errors = await errorsOf(() => buildFilters(file, auditPolicy), dir);
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /^pipeline\.yaml:5:20: policy_file: cannot read policy file nowhere\.yaml: ENOENT/);
});

test('policy and policy_file together, or neither, are rejected', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'policy.yaml'), `${HEAD}rules:\n  - level: None\n`);
  const both = writePipeline(dir, 'pipeline:\n  filters:\n    - name: audit_policy\n      match: kube.*\n      policy_file: policy.yaml\n      policy:\n        rules: [{level: None}]\n');
  assert.deepEqual(await errorsOf(() => buildFilters(both, auditPolicy), dir), ['pipeline.yaml:6:7: policy: set policy_file or policy, not both']);
  const neither = writePipeline(dir, 'pipeline:\n  filters:\n    - name: audit_policy\n      match: kube.*\n', 'neither.yaml');
  assert.deepEqual(await errorsOf(() => buildFilters(neither, auditPolicy), dir), ['neither.yaml:3:7: policy_file: set policy_file (a Policy YAML file) or policy (an inline Policy map)']);
});

test('an inline policy map is validated, errors at the policy option', async () => {
  const dir = tempDir();
  const file = writePipeline(dir, 'pipeline:\n  filters:\n    - name: audit_policy\n      match: kube.*\n      policy:\n        omitStages: [Started]\n        rules:\n          - level: Loud\n');
  const errors = await errorsOf(() => buildFilters(file, auditPolicy), dir);
  assert.deepEqual(
    errors.map((e) => e.replace(/ \(did you mean.*$/, '').replace(/; expected.*$/, '')),
    ['pipeline.yaml:6:9: policy: omitStages[0]: unknown stage "Started"', 'pipeline.yaml:6:9: policy: rules[0].level: unknown level "Loud"'],
  );
});

test('an inline policy given as YAML text names the line inside it', async () => {
  const dir = tempDir();
  const file = writePipeline(
    dir,
    'pipeline:\n  filters:\n    - name: audit_policy\n      match: kube.*\n      policy: |\n        rules:\n          - level: Metadata\n            nonResourceURLs: ["/a*b"]\n',
  );
  const errors = await errorsOf(() => buildFilters(file, auditPolicy), dir);
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /^pipeline\.yaml:5:15: policy: inline policy line 3, col 23: rules\[0\]\.nonResourceURLs\[0\]: "\/a\*b": non-resource URL wildcards/);
});

test('an inline policy that is not a map is rejected', async () => {
  const dir = tempDir();
  const file = writePipeline(dir, 'pipeline:\n  filters:\n    - name: audit_policy\n      match: kube.*\n      policy: [a, b]\n');
  const errors = await errorsOf(() => buildFilters(file, auditPolicy), dir);
  assert.match(errors[0]!, /^pipeline\.yaml:5:15: policy: expected a Policy map .*found a list/);
});

test('non_audit accepts only pass or drop', async () => {
  const dir = tempDir();
  const file = writePipeline(dir, 'pipeline:\n  filters:\n    - name: audit_policy\n      match: kube.*\n      policy: {rules: [{level: None}]}\n      non_audit: keep\n');
  const errors = await errorsOf(() => buildFilters(file, auditPolicy), dir);
  assert.deepEqual(errors, ['pipeline.yaml:6:18: non_audit: found "keep", expected one of pass, drop']);
});

test('reserve_data without key_name is rejected', async () => {
  const dir = tempDir();
  const file = writePipeline(dir, 'pipeline:\n  filters:\n    - name: audit_policy\n      match: kube.*\n      policy: {rules: [{level: None}]}\n      reserve_data: on\n');
  const errors = await errorsOf(() => buildFilters(file, auditPolicy), dir);
  assert.deepEqual(errors, ['pipeline.yaml:6:21: reserve_data: reserve_data keeps the keys around the Event under key_name; set key_name']);
});

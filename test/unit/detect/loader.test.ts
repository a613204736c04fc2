/**
 * Rule file loading with Falco's semantics: append/override, redefinition in place,
 * exceptions, enabled, priorities, other sources, version requirements, error positions; and
 * the upstream rule files load cleanly.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RuleLoadError, RuleLoader, formatMessage } from '../../../src/falco/loader.js';
import { repoRoot, falcoCorpus } from '../../support/paths.js';
import { auditEvent, load, matches, ruleItem } from './helpers.js';

const ev = auditEvent();
const rulesDir = join(falcoCorpus, 'rules');

function loadError(...texts: string[]): string {
  try {
    load(...texts);
  } catch (e) {
    assert.ok(e instanceof RuleLoadError);
    return formatMessage(e.first);
  }
  assert.fail('loaded');
}

describe('rule files', () => {
  it('the newest upstream, legacy and engine_v4 rule files load without error', () => {
    const newest = new RuleLoader();
    newest.loadFile(join(repoRoot, 'rules', 'k8s_audit_rules.yaml'), 'k8s_audit_rules.yaml');
    const rs = newest.result();
    assert.ok(rs.rules.length >= 40, `${rs.rules.length} rules`);
    assert.deepEqual(rs.messages.map(formatMessage), [], 'and without warnings');
    for (const files of [['falco_rules-1.0.1.shared-lists.yaml', 'k8s_audit_rules.legacy.yaml'], ['falco_rules-1.0.1.shared-lists.yaml', 'engine_v4_k8s_audit_rules.yaml'], ['k8s_audit_rules.yaml']]) {
      const l = new RuleLoader();
      for (const f of files) l.loadFile(join(rulesDir, f), f);
      const r = l.result();
      assert.ok(r.rules.length > 20, files.join(' + '));
      assert.ok(!r.messages.some((m) => m.severity === 'error'));
    }
  });

  it('skips null items, warns about unknown items, reports YAML errors with positions', () => {
    const rs = load(`-\n- foo: bar\n${ruleItem('R', 'ka.verb = create')}`);
    assert.equal(rs.rules.length, 1);
    assert.match(formatMessage(rs.messages[0]!), /^a\.yaml:2:3: warning: Unknown top level item \[LOAD_UNKNOWN_ITEM\]$/);
    assert.match(loadError('- rule: [\n'), /^a\.yaml:\d+:\d+: error: .*\[LOAD_ERR_YAML_PARSE\]$/);
    assert.equal(loadError('rule: x\n'), 'a.yaml:1:1: error: Rules content is not yaml array of objects [LOAD_ERR_YAML_VALIDATE]');
    assert.equal(loadError('- rule: R\n  desc: d\n  output: o\n  priority: WARNING\n'), "a.yaml:1:3: error: rule 'R': Item has no mapping for key 'condition' [LOAD_ERR_YAML_VALIDATE]");
  });

  it('priorities are case-insensitive, INFO is INFORMATIONAL, others are errors', () => {
    const rs = load(ruleItem('A', 'ka.verb = create').replace('WARNING', 'info'), ruleItem('B', 'ka.verb = create').replace('WARNING', 'Critical'));
    assert.deepEqual(
      rs.rules.map((r) => r.priorityName),
      ['Informational', 'Critical'],
    );
    assert.equal(loadError(ruleItem('A', 'ka.verb = create').replace('WARNING', 'LOUD')), "a.yaml:5:13: error: rule 'A': Invalid priority [LOAD_ERR_YAML_VALIDATE]");
  });

  it('a redefined rule replaces the old one but keeps its position', () => {
    const rs = load(ruleItem('First', 'ka.verb = delete'), ruleItem('Second', 'ka.verb = create'), ruleItem('First', 'ka.verb = create'));
    assert.deepEqual(matches(rs, ev, 'first'), ['First']);
    assert.deepEqual(matches(rs, ev), ['First', 'Second']);
  });

  it('append: true extends lists, macros and rule conditions; appending to nothing is an error', () => {
    const base = `- list: verbs\n  items: [get]\n- macro: m\n  condition: ka.verb in (verbs)\n${ruleItem('R', 'm')}`;
    assert.deepEqual(matches(load(base), ev), []);
    assert.deepEqual(matches(load(base, '- list: verbs\n  items: [create]\n  append: true\n'), ev), ['R']);
    assert.deepEqual(matches(load(base, '- macro: m\n  condition: or ka.verb = create\n  append: true\n'), ev), ['R']);
    assert.deepEqual(matches(load(base, '- list: verbs\n  items: [create]\n  append: true\n', '- rule: R\n  condition: and ka.user.name = bob\n  append: true\n'), ev), []);
    assert.equal(
      loadError('- list: nope\n  items: [x]\n  append: true\n'),
      "a.yaml:1:3: error: list 'nope': List uses 'append' or 'override.items: append' but no list by that name already exists [LOAD_ERR_VALIDATE]",
    );
  });

  it('override: append and replace per key, with Falco checks', () => {
    const base = ruleItem('R', 'ka.verb = create', '  tags: [a]\n');
    const rs = load(base, '- rule: R\n  condition: and ka.user.name = alice\n  priority: ERROR\n  tags: [b]\n  override:\n    condition: append\n    priority: replace\n    tags: append\n');
    assert.equal(rs.rules[0]!.priorityName, 'Error');
    assert.deepEqual(rs.rules[0]!.tags, ['a', 'b']);
    assert.deepEqual(matches(rs, ev), ['R']);
    assert.deepEqual(matches(load(base, '- rule: R\n  enabled: false\n  override:\n    enabled: replace\n'), ev), []);
    assert.deepEqual(matches(load(base, '- rule: R\n  enabled: false\n'), ev), [], 'the standalone enabled item');
    assert.match(loadError(base, '- rule: R\n  priority: ERROR\n  override:\n    priority: append\n'), /Key 'priority' cannot be appended to, use 'replace' instead/);
    assert.match(
      loadError(base, '- rule: R\n  priority: ERROR\n  desc: x\n  override:\n    priority: replace\n'),
      /b\.yaml:3:9: error: rule 'R': Unexpected key 'desc': no corresponding entry under 'override' is defined/,
    );
    assert.match(loadError(base, '- rule: R\n  condition: x\n  append: true\n  override:\n    condition: append\n'), /cannot be used together/);
    assert.match(loadError('- rule: Nope\n  condition: x\n  override:\n    condition: append\n'), /no rule by that name already exists/);
  });

  it('exceptions add "and not (...)" clauses, as Falco builds them', () => {
    const rule = ruleItem(
      'R',
      'ka.verb = create',
      `  exceptions:
    - name: by_user
      fields: [ka.user.name, ka.target.namespace]
      comps: [=, in]
      values:
        - [alice, [default, kube-system]]
    - name: single
      fields: ka.target.name
      values: [web-2]
`,
    );
    assert.deepEqual(matches(load(rule), ev), [], 'alice in default is excepted');
    assert.deepEqual(matches(load(rule), auditEvent({ user: { username: 'bob' } })), ['R']);
    assert.deepEqual(matches(load(rule), auditEvent({ user: { username: 'bob' }, objectRef: { name: 'web-2', resource: 'pods' } })), []);
    const appended = load(rule, '- rule: R\n  exceptions:\n    - name: by_user\n      values:\n        - [bob, [default]]\n  override:\n    exceptions: append\n');
    assert.deepEqual(matches(appended, auditEvent({ user: { username: 'bob' } })), [], 'values appended to an existing exception');
    assert.match(
      loadError(ruleItem('R', 'ka.verb = create', '  exceptions:\n    - name: e\n      fields: [ka.verb]\n      comps: [=, =]\n      values: []\n')),
      /Fields and comps lists must have equal length/,
    );
    assert.match(loadError(ruleItem('R', 'ka.verb = create', '  exceptions:\n    - name: e\n      fields: [ka.nope]\n      values: []\n')), /'ka\.nope' is not a supported filter field/);
  });

  it('rules of other sources are syntax-checked and skipped; a rule cannot change source', () => {
    const rs = load(ruleItem('K', 'ka.verb = create'), '- rule: S\n  desc: d\n  condition: evt.type = open and proc.name = cat\n  output: o\n  priority: WARNING\n');
    assert.deepEqual(
      rs.rules.map((r) => r.name),
      ['K'],
    );
    assert.deepEqual([...rs.otherSources], [['syscall', 1]]);
    assert.equal(rs.summary.find((r) => r.name === 'S')?.skipped, 'source syscall');
    assert.match(loadError('- rule: S\n  desc: d\n  condition: evt.type = open and\n  output: o\n  priority: WARNING\n'), /expected blank or '\(' after 'and'/);
    assert.match(loadError(ruleItem('K', 'ka.verb = create'), ruleItem('K', 'ka.verb = create').replace('k8s_audit', 'syscall')), /Rule has been re-defined with a different source/);
  });

  it('checks required_engine_version and required_plugin_versions', () => {
    assert.equal(load('- required_engine_version: 15\n- required_engine_version: 0.40.0\n').rules.length, 0);
    assert.match(loadError('- required_engine_version: 99\n'), /a\.yaml:1:3: error: required_engine_version: Rules require engine version 0\.99\.0, but engine version is 0\.45\.0/);
    assert.match(loadError('- required_plugin_versions:\n  - name: k8saudit\n    version: 1.0.0\n'), /Plugin 'k8saudit' version '0\.18\.0' is not compatible with required plugin version '1\.0\.0'/);
    const rs = load('- required_plugin_versions:\n  - name: container\n    version: 0.1.0\n  - name: json\n    version: 0.7.0\n');
    assert.ok(rs.messages.some((m) => m.code === 'LOAD_UNKNOWN_PLUGIN'));
  });

  it('warns about unused macros and lists, and about deprecated append', () => {
    const rs = load('- list: l\n  items: [a]\n- macro: m\n  condition: ka.verb = x\n', '- list: l\n  items: [b]\n  append: true\n');
    const codes = rs.messages.map((m) => m.code).sort();
    assert.deepEqual(codes, ['LOAD_DEPRECATED_ITEM', 'LOAD_UNUSED_LIST', 'LOAD_UNUSED_MACRO']);
  });
});

/**
 * Every case of test/fixtures/conformance/k8s-audit-policy/cases.yaml through the real audit_policy
 * filter, built from a pipeline file: once with the case's policy inline (as YAML text), once
 * from a policy_file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { auditPolicy } from '../../../src/filters/audit_policy/index.js';
import { CompiledPolicy } from '../../../src/filters/audit_policy/checker.js';
import { parsePolicyText } from '../../../src/filters/audit_policy/policy.js';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { toJSONLine } from '../../../src/core/json.js';
import { decode, encode } from '../../../src/core/msgpack.js';
import { WireEvent } from '../../../src/core/wire-event.js';
import { conformanceDir } from '../../support/paths.js';
import { buildFilters, counterValue, tempDir, writePipeline } from '../../support/filter-pipeline.js';

interface Case {
  name: string;
  note: string;
  policy: string;
  event: Record<string, unknown>;
  expect: { keep: boolean; level: string; dropped_fields: string[]; matched_rule: number | null };
}

const cases = parse(readFileSync(join(conformanceDir, 'k8s-audit-policy', 'cases.yaml'), 'utf8')) as Case[];

/** Splits `a.b[1].c` into ['a', 'b', 1, 'c']. */
function pathParts(path: string): Array<string | number> {
  const parts: Array<string | number> = [];
  for (const seg of path.split('.')) {
    const m = /^([^[]*)((?:\[\d+\])*)$/.exec(seg);
    assert.ok(m, `bad path ${path}`);
    if (m[1]) parts.push(m[1]);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) parts.push(Number(idx[1]));
  }
  return parts;
}

function removePath(root: unknown, path: string): void {
  const parts = pathParts(path);
  let node = root as Record<string | number, unknown>;
  for (const p of parts.slice(0, -1)) {
    node = node[p] as Record<string | number, unknown>;
    assert.ok(node !== undefined && node !== null, `dropped_fields path ${path} is not in the event`);
  }
  const last = parts[parts.length - 1]!;
  assert.ok(Object.hasOwn(node, last), `dropped_fields path ${path} is not in the event`);
  delete node[last];
}

/**
 * `wire`: the event arrives as msgpack bytes (a WireEvent, as from the forward input), so the
 * filter reads it through a view and records the level cut as edits: the bytes it writes and the
 * record it decodes must be the object path's, key order included.
 */
async function runCase(c: Case, policyOption: Record<string, unknown>, dir: string, wire = false): Promise<void> {
  const file = writePipeline(dir, { pipeline: { filters: [{ name: 'audit_policy', match: '*', ...policyOption }] } });
  const { filters, metrics } = await buildFilters(file, auditPolicy);
  const input = structuredClone(c.event);
  const time = new EventTime(1741701774, 385417000);
  const event: LogEvent = wire ? new WireEvent('kube.audit', time, encode(input)) : { tag: 'kube.audit', time, record: input };
  const out = filters[0]!.filter([event], { emit: () => assert.fail('audit_policy must not emit') });

  assert.deepEqual(input, c.event, 'the input event must not be changed');
  const level = c.expect.level;
  assert.equal(await counterValue(metrics, 'logwarden_audit_policy_events_total', { level, result: c.expect.keep ? 'kept' : 'dropped' }), 1, `one event counted at level ${level}`);
  if (!c.expect.keep) {
    assert.deepEqual(out, []);
    return;
  }
  assert.equal(out.length, 1);
  const expected = structuredClone(c.event);
  for (const path of c.expect.dropped_fields) removePath(expected, path);
  expected.level = level;
  assert.equal(out[0]!.tag, 'kube.audit');
  assert.equal(out[0]!.time, event.time);
  if (wire) {
    const raw = out[0]!.raw;
    assert.ok(raw !== undefined, 'the kept event is still bytes');
    assert.equal(toJSONLine(decode(raw)), toJSONLine(expected), "the edited bytes are the object path's record");
  }
  assert.deepEqual(out[0]!.record, expected);
  assert.equal(toJSONLine(out[0]!.record), toJSONLine(expected), 'same key order');
}

test('k8s audit policy conformance cases', async (t) => {
  assert.equal(cases.length, 46, 'cases.yaml holds 46 cases');
  const dir = tempDir();
  for (const [i, c] of cases.entries()) {
    await t.test(c.name, async () => {
      const decision = new CompiledPolicy(parsePolicyText(c.policy, `${c.name}.yaml`, 'policy')).apply(structuredClone(c.event));
      assert.equal(decision.rule, c.expect.matched_rule ?? -1, 'matched rule');
      assert.equal(decision.level, c.expect.level);
      await runCase(c, { policy: c.policy }, dir);
      const policyFile = join(dir, `policy-${i}.yaml`);
      writeFileSync(policyFile, c.policy);
      await runCase(c, { policy_file: `policy-${i}.yaml` }, dir);
      await runCase(c, { policy: c.policy }, dir, true);
    });
  }
});

test('omitManagedFields on lists: the bytes lose what the object path strips, item by item', async () => {
  const dir = tempDir();
  const policy = 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitManagedFields: true\nrules:\n  - level: RequestResponse\n';
  const file = writePipeline(dir, { pipeline: { filters: [{ name: 'audit_policy', match: '*', policy }] } });
  const { filters } = await buildFilters(file, auditPolicy);
  const list = () => ({
    kind: 'PodList',
    metadata: { resourceVersion: '1', managedFields: [{ manager: 'm' }] },
    items: [
      { metadata: { name: 'a', managedFields: [{ manager: 'x' }] }, spec: {} },
      'not a map',
      { metadata: 'not a map either' },
      { metadata: { name: 'b' } },
      { metadata: { managedFields: null, name: 'c' } },
    ],
  });
  const event = {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'RequestResponse',
    auditID: 'x',
    stage: 'ResponseComplete',
    verb: 'list',
    user: { username: 'u' },
    objectRef: { resource: 'pods', namespace: 'ns', apiVersion: 'v1' },
    requestObject: { metadata: { managedFields: [1] }, items: [] },
    responseObject: list(),
  };
  const time = new EventTime(1741701774, 385417000);
  const call = { emit: () => assert.fail('audit_policy must not emit') };
  const fromObject = filters[0]!.filter([{ tag: 't', time, record: structuredClone(event) }], call);
  const fromBytes = filters[0]!.filter([new WireEvent('t', time, encode(event))], call);
  const raw = fromBytes[0]!.raw;
  assert.ok(raw !== undefined, 'still bytes');
  assert.equal(toJSONLine(decode(raw)), toJSONLine(fromObject[0]!.record));
  assert.ok(!toJSONLine(fromObject[0]!.record).includes('"manager"'), 'the object path stripped them');
});

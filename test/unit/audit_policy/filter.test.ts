/** audit_policy record shapes: key_name (JSON string or map), EventLists, non-audit records, the example policy. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { auditPolicy } from '../../../src/filters/audit_policy/index.js';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import type { FilterInstance } from '../../../src/core/plugin.js';
import { repoRoot, falcoCorpus, conformanceDir, fixturesDir } from '../../support/paths.js';
import { buildFilters, counterValue, tempDir, writePipeline, type BuiltFilters } from '../../support/filter-pipeline.js';

const noEmit = { emit: () => assert.fail('audit_policy must not emit') };
const T0 = new EventTime(1700000000, 5);

/** Pod GET at RequestResponse, with a managedFields list in the response. */
function podGet(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'RequestResponse',
    auditID: 'a1',
    stage: 'ResponseComplete',
    requestURI: '/api/v1/namespaces/default/pods/web',
    verb: 'get',
    user: { username: 'alice', groups: ['system:authenticated'] },
    objectRef: { resource: 'pods', namespace: 'default', name: 'web', apiVersion: 'v1' },
    responseStatus: { metadata: {}, code: 200 },
    responseObject: { kind: 'Pod', metadata: { name: 'web', managedFields: [{ manager: 'kubectl' }] } },
    requestReceivedTimestamp: '2025-03-11T14:02:54.381204Z',
    stageTimestamp: '2025-03-11T14:02:54.385417123Z',
    ...extra,
  };
}

async function build(options: Record<string, unknown>): Promise<BuiltFilters & { f: FilterInstance }> {
  const dir = tempDir();
  const file = writePipeline(dir, { pipeline: { filters: [{ name: 'audit_policy', match: '*', ...options }] } });
  const built = await buildFilters(file, auditPolicy);
  return { ...built, f: built.filters[0]! };
}

const metadataPolicy = { rules: [{ level: 'Metadata' }] };
const ev = (record: Record<string, unknown>, time = T0): LogEvent => ({ tag: 'kube.audit', time, record });

test('an event that needs no change is passed as the same object, a reduced one is a shallow copy', async () => {
  const { f } = await build({ policy: { rules: [{ level: 'RequestResponse', users: ['bob'] }, { level: 'Metadata' }] } });
  const bob = ev(podGet({ user: { username: 'bob' } }));
  const alice = ev(podGet());
  const out = f.filter([bob, alice], noEmit);
  assert.equal(out.length, 2);
  assert.equal(out[0], bob, 'unchanged event passes as is');
  assert.notEqual(out[1]!.record, alice.record);
  assert.equal(out[1]!.record.level, 'Metadata');
  assert.ok(!('responseObject' in out[1]!.record));
  assert.equal(out[1]!.record.user, alice.record.user, 'values that stay are shared, not copied');
  assert.equal(out[1]!.record.objectRef, alice.record.objectRef);
  assert.ok('responseObject' in alice.record, 'the input record is not changed');
});

test('omitManagedFields copies only the maps on the way to managedFields', async () => {
  const { f } = await build({ policy: { omitManagedFields: true, rules: [{ level: 'RequestResponse' }] } });
  const input = podGet({
    requestObject: { kind: 'PodList', metadata: {}, items: [{ metadata: { name: 'a', managedFields: [] }, spec: { x: 1 } }, { metadata: { name: 'b' } }] },
  });
  const [out] = f.filter([ev(input)], noEmit);
  const req = out!.record.requestObject as { items: Array<{ metadata: Record<string, unknown>; spec?: unknown }> };
  assert.deepEqual(req.items[0]!.metadata, { name: 'a' });
  assert.equal(req.items[0]!.spec, (input.requestObject as typeof req).items[0]!.spec);
  assert.equal(req.items[1], (input.requestObject as typeof req).items[1], 'an item without managedFields is shared');
  assert.deepEqual((out!.record.responseObject as { metadata: unknown }).metadata, { name: 'web' });
  assert.ok('managedFields' in (input.responseObject as { metadata: object }).metadata, 'the input keeps its managedFields');
});

test('a __proto__ key in an event stays data and pollutes nothing', async () => {
  const { f } = await build({ policy: metadataPolicy, key_name: 'log' });
  const line = JSON.stringify(podGet()).replace(/}$/, ',"__proto__":{"polluted":true}}');
  const [out] = f.filter([ev({ log: line })], noEmit);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(Object.getPrototypeOf(out!.record), Object.prototype);
  assert.deepEqual(Object.getOwnPropertyDescriptor(out!.record, '__proto__')?.value, { polluted: true });
  assert.equal(out!.record.level, 'Metadata');
});

test('a __proto__ key in the record around the event stays data (map under key_name, reserve_data)', async () => {
  const record = JSON.parse(`{"audit":${JSON.stringify(podGet())},"__proto__":{"evil":1}}`) as Record<string, unknown>;
  const map = await build({ policy: metadataPolicy, key_name: 'audit' });
  const [m] = map.f.filter([ev(record)], noEmit);
  assert.equal(Object.getPrototypeOf(m!.record), Object.prototype);
  assert.deepEqual(Object.getOwnPropertyDescriptor(m!.record, '__proto__')?.value, { evil: 1 });
  assert.equal((m!.record.audit as Record<string, unknown>).level, 'Metadata');
  const line = JSON.parse(`{"log":${JSON.stringify(JSON.stringify(podGet()))},"__proto__":{"evil":1}}`) as Record<string, unknown>;
  const reserve = await build({ policy: metadataPolicy, key_name: 'log', reserve_data: true });
  const [r] = reserve.f.filter([ev(line)], noEmit);
  assert.equal(Object.getPrototypeOf(r!.record), Object.prototype);
  assert.deepEqual(Object.getOwnPropertyDescriptor(r!.record, '__proto__')?.value, { evil: 1 });
  assert.equal(r!.record.level, 'Metadata');
});

test('key_name with a JSON string: the record becomes the reduced event', async () => {
  const { f, metrics } = await build({ policy: metadataPolicy, key_name: 'log' });
  const input = ev({ log: JSON.stringify(podGet()), stream: 'stdout' });
  const [out] = f.filter([input], noEmit);
  const expected = podGet({ level: 'Metadata' });
  delete expected.responseObject;
  assert.deepEqual(out!.record, expected);
  assert.equal(out!.time, T0, 'a single event keeps the record time');
  assert.equal(await counterValue(metrics, 'logwarden_audit_policy_events_total', { level: 'Metadata', result: 'kept' }), 1);
});

test('key_name with a JSON string and reserve_data: the other keys stay next to the event', async () => {
  const { f } = await build({ policy: metadataPolicy, key_name: 'log', reserve_data: true });
  const [out] = f.filter([ev({ log: JSON.stringify(podGet()), stream: 'stdout', level: 'record-level' })], noEmit);
  assert.equal(out!.record.stream, 'stdout');
  assert.equal(out!.record.level, 'Metadata', "the event's fields win");
  assert.ok(!('log' in out!.record));
  assert.equal(out!.record.auditID, 'a1');
});

test('key_name with a map: the map is replaced by the reduced event, the rest of the record stays', async () => {
  const { f } = await build({ policy: metadataPolicy, key_name: 'audit' });
  const input = ev({ audit: podGet(), cluster: 'prod' });
  const [out] = f.filter([input], noEmit);
  assert.equal(out!.record.cluster, 'prod');
  assert.equal((out!.record.audit as Record<string, unknown>).level, 'Metadata');
  assert.ok(!('responseObject' in (out!.record.audit as object)));
  const same = ev({ audit: podGet({ level: 'Metadata', responseObject: undefined }), cluster: 'prod' });
  delete (same.record.audit as Record<string, unknown>).responseObject;
  assert.equal(f.filter([same], noEmit)[0], same, 'unchanged: the same event');
});

test('key_name set but the record is already the event (parsed earlier): it is still filtered', async () => {
  const { f, metrics } = await build({ policy: metadataPolicy, key_name: 'log' });
  const [out] = f.filter([ev(podGet())], noEmit);
  assert.equal(out!.record.level, 'Metadata');
  assert.ok(!('responseObject' in out!.record));
  assert.equal(await counterValue(metrics, 'logwarden_audit_policy_non_audit_records_total'), 0);
});

test('an EventList record is split into one event per item, timed by each item', async () => {
  const { f, metrics } = await build({ policy: { rules: [{ level: 'None', verbs: ['watch'] }, { level: 'Metadata' }] } });
  const list = {
    kind: 'EventList',
    apiVersion: 'audit.k8s.io/v1',
    metadata: {},
    items: [
      podGet({ auditID: 'x1' }),
      podGet({ auditID: 'x2', verb: 'watch' }),
      podGet({ auditID: 'x3', stageTimestamp: undefined }),
      podGet({ auditID: 'x4', stageTimestamp: 'not a time', requestReceivedTimestamp: 'nor this' }),
      { kind: 'Status' },
    ],
  };
  const out = f.filter([{ ...ev(list), metadata: { m: 1 } }], noEmit);
  assert.deepEqual(
    out.map((e) => e.record.auditID),
    ['x1', 'x3', 'x4'],
  );
  assert.deepEqual(out[0]!.time, new EventTime(Date.parse('2025-03-11T14:02:54Z') / 1000, 385417123), 'stageTimestamp');
  assert.deepEqual(out[1]!.time, new EventTime(Date.parse('2025-03-11T14:02:54Z') / 1000, 381204000), 'requestReceivedTimestamp');
  assert.equal(out[2]!.time, T0, 'no timestamp: the record time');
  for (const e of out) {
    assert.equal(e.tag, 'kube.audit');
    assert.deepEqual(e.metadata, { m: 1 });
    assert.equal(e.record.level, 'Metadata');
  }
  assert.equal(await counterValue(metrics, 'logwarden_audit_policy_events_total', { level: 'None', result: 'dropped' }), 1);
  assert.equal(await counterValue(metrics, 'logwarden_audit_policy_events_total', { level: 'Metadata', result: 'kept' }), 3);
  assert.equal(await counterValue(metrics, 'logwarden_audit_policy_non_audit_records_total'), 1, 'the Status item');
});

test('an EventList as a JSON string under key_name, and a JSON array of events', async () => {
  const { f } = await build({ policy: metadataPolicy, key_name: 'log' });
  const list = { kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: [podGet({ auditID: 'l1' }), podGet({ auditID: 'l2' })] };
  const out = f.filter([ev({ log: JSON.stringify(list) }), ev({ log: JSON.stringify([podGet({ auditID: 'a1' })]) })], noEmit);
  assert.deepEqual(
    out.map((e) => [e.record.auditID, e.record.level, 'responseObject' in e.record]),
    [
      ['l1', 'Metadata', false],
      ['l2', 'Metadata', false],
      ['a1', 'Metadata', false],
    ],
  );
});

const nonAudit = [
  ev({ message: 'hello' }),
  ev({ log: '{"not":"an event"}' }),
  ev({ log: 'not json {' }),
  ev({ log: 42 }),
  ev({ kind: 'Event', apiVersion: 'v1', reason: 'Scheduled' }), // a core/v1 Event is not an audit Event
];

test('non_audit pass (default): records without an audit event pass unchanged, counted, with a warning', async () => {
  const { f, metrics, logs } = await build({ policy: metadataPolicy, key_name: 'log' });
  const out = f.filter(nonAudit, noEmit);
  assert.deepEqual(out, nonAudit);
  for (let i = 0; i < out.length; i++) assert.equal(out[i], nonAudit[i]);
  assert.equal(await counterValue(metrics, 'logwarden_audit_policy_non_audit_records_total', { name: 'audit_policy.0' }), 5);
  const warns = logs.filter((l) => l.level === 40);
  assert.equal(warns.length, 1, 'warnings are rate limited');
  assert.match(String(warns[0]!.msg), /record holds no audit Event \(missing_key\); passed unchanged \(key_name log\)/);
});

test('non_audit drop: records without an audit event are dropped, counted', async () => {
  const { f, metrics } = await build({ policy: metadataPolicy, key_name: 'log', non_audit: 'drop' });
  const out = f.filter([...nonAudit, ev({ log: JSON.stringify(podGet()) })], noEmit);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.record.auditID, 'a1');
  assert.equal(await counterValue(metrics, 'logwarden_audit_policy_non_audit_records_total'), 5);
});

test('without key_name, a record that is not an event is non-audit', async () => {
  const { f, metrics } = await build({ policy: metadataPolicy, non_audit: 'drop' });
  assert.deepEqual(f.filter([ev({ log: JSON.stringify(podGet()) })], noEmit), []);
  assert.equal(await counterValue(metrics, 'logwarden_audit_policy_non_audit_records_total'), 1);
});

test('the example policy file is the policy of the example-* conformance cases', async () => {
  const examplePolicy = parse(readFileSync(join(repoRoot, 'examples/audit-policy.yaml'), 'utf8'));
  assert.deepEqual(examplePolicy, parse(readFileSync(join(fixturesDir, 'reference', 'example-audit-policy.yaml'), 'utf8')));
  const cases = (
    parse(readFileSync(join(conformanceDir, 'k8s-audit-policy', 'cases.yaml'), 'utf8')) as Array<{
      name: string;
      policy: string;
      event: Record<string, unknown>;
      expect: { keep: boolean; level: string };
    }>
  ).filter((c) => c.name.startsWith('example-'));
  assert.ok(cases.length >= 10);
  const { f } = await build({ policy_file: join(repoRoot, 'examples/audit-policy.yaml') });
  for (const c of cases) {
    assert.deepEqual(parse(c.policy), examplePolicy, `${c.name} uses the example policy`);
    const out = f.filter([ev(structuredClone(c.event))], noEmit);
    assert.equal(out.length, c.expect.keep ? 1 : 0, c.name);
    if (c.expect.keep) assert.equal(out[0]!.record.level, c.expect.level, c.name);
  }
});

test('the example policy over the Falco k8s_audit sample events never adds data', async () => {
  const { f } = await build({ policy_file: join(repoRoot, 'examples/audit-policy.yaml') });
  const dir = join(falcoCorpus, 'events');
  const rank: Record<string, number> = { None: 0, Metadata: 1, Request: 2, RequestResponse: 3 };
  let kept = 0;
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
    for (const line of readFileSync(join(dir, name), 'utf8')
      .split('\n')
      .filter((l) => l.trim())) {
      const input = JSON.parse(line) as Record<string, unknown>;
      if (input.kind !== 'Event') {
        assert.deepEqual(
          f.filter([ev(structuredClone(input))], noEmit).map((e) => e.record),
          [input],
          `${name}: non-audit passes`,
        );
        continue;
      }
      for (const e of f.filter([ev(structuredClone(input))], noEmit)) {
        kept++;
        const level = e.record.level as string;
        assert.ok(rank[level]! <= rank[input.level as string]!, `${name}: ${level} is not above ${String(input.level)}`);
        if (rank[level]! < 2) assert.ok(!('requestObject' in e.record), name);
        if (rank[level]! < 3) assert.ok(!('responseObject' in e.record), name);
        for (const k of Object.keys(e.record)) if (k !== 'level') assert.deepEqual(e.record[k], input[k], `${name}: ${k}`);
      }
    }
  }
  assert.ok(kept > 10, `kept ${kept}`);
});

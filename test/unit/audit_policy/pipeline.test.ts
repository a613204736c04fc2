/** audit_policy and lookup chained in one pipeline, events routed by the real router. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditPolicy } from '../../../src/filters/audit_policy/index.js';
import { lookup } from '../../../src/filters/lookup/index.js';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { repoRoot, falcoCorpus } from '../../support/paths.js';
import { buildFilters, counterValue, tempDir, writePipeline } from '../../support/filter-pipeline.js';

test('tail-like records: audit_policy (key_name log) then lookup on the parsed event', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'audit-policy.yaml'), readFileSync(join(repoRoot, 'examples/audit-policy.yaml')));
  writeFileSync(join(dir, 'teams.csv'), 'user,team\nminikube-user,platform\n');
  const file = writePipeline(
    dir,
    `pipeline:
  filters:
    - name: audit_policy
      match: kube.*
      policy_file: audit-policy.yaml
      key_name: log
    - name: lookup
      match: kube.*
      file: teams.csv
      lookup_key: $user['username']
      result_key: team
      default: unknown
      reload_interval: 0
`,
  );
  const { pipeline, metrics } = await buildFilters(file, auditPolicy, lookup);
  const seen: LogEvent[] = [];
  pipeline.onFiltered = (events) => seen.push(...events);
  const events = ['create_secret.json', 'create_nginx_pod_privileged.json'].map((name) => ({
    tag: 'kube.audit',
    time: new EventTime(1700000000, 0),
    record: { log: readFileSync(join(falcoCorpus, 'events', name), 'utf8').trim(), stream: 'stdout' },
  }));
  const other = { tag: 'app.log', time: new EventTime(1700000000, 0), record: { log: 'not audit' } };
  pipeline.inject([...events, other]);
  assert.equal(seen.length, 3);
  const [secret, pod, app] = seen;
  assert.equal(secret!.record.kind, 'Event');
  assert.equal(secret!.record.team, 'platform');
  assert.equal(secret!.record.level, 'Metadata');
  assert.ok(!('stream' in secret!.record), 'key_name JSON string: the record is the event');
  assert.equal(pod!.record.team, 'unknown');
  assert.equal(pod!.record.level, 'RequestResponse');
  assert.deepEqual(app!.record, { log: 'not audit' }, 'a tag the filters do not match passes untouched');
  assert.equal(await counterValue(metrics, 'logwarden_audit_policy_events_total', { result: 'kept' }), 2);
  assert.equal(await counterValue(metrics, 'logwarden_lookup_records_total', { result: 'found' }), 1);
  await pipeline.stop(0);
});

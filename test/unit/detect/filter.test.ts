/**
 * The detect filter inside a planned pipeline (filtersOnly): alerts are emitted under alert_tag
 * and re-enter routing, the original events are kept or dropped per keep_events, key_name
 * reads JSON strings, EventLists are split, and per-rule alert counters are exported.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigErrors } from '../../../src/config/errors.js';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { toJSONLine } from '../../../src/core/json.js';
import { encode } from '../../../src/core/msgpack.js';
import { RecordView } from '../../../src/core/record-view.js';
import { WireEvent } from '../../../src/core/wire-event.js';
import { detect } from '../../../src/filters/detect/index.js';
import { buildFilters, counterValue, tempDir, writePipeline } from '../../support/filter-pipeline.js';
import { repoRoot, falcoCorpus } from '../../support/paths.js';

const events = join(falcoCorpus, 'events');
const execPod = JSON.parse(readFileSync(join(events, 'exec_pod.json'), 'utf8').trim()) as Record<string, unknown>;
const createDeployment = JSON.parse(readFileSync(join(events, 'create_deployment.json'), 'utf8').trim()) as Record<string, unknown>;

function pipelineYaml(filter: Record<string, unknown>): object {
  return {
    pipeline: {
      filters: [{ name: 'detect', match: 'kube.audit', ...filter }],
    },
  };
}

async function run(filter: Record<string, unknown>, records: Array<Record<string, unknown>>) {
  const dir = tempDir();
  const file = writePipeline(dir, pipelineYaml(filter));
  const built = await buildFilters(file, detect);
  const chunks: LogEvent[][] = [];
  built.pipeline.onFiltered = (evs) => chunks.push([...evs]);
  built.pipeline.inject(records.map((record) => ({ tag: 'kube.audit', time: EventTime.now(), record })));
  return { ...built, chunks, out: chunks.flat() };
}

describe('detect filter in a pipeline', () => {
  it('include_event adds the triggering audit event to the alert under audit_event', async () => {
    const rules = join(repoRoot, 'rules', 'k8s_audit_rules.yaml');
    const on = (await run({ rules_file: rules, include_event: 'on' }, [execPod])).out.filter((e) => e.tag === 'falco');
    assert.equal(on.length, 1);
    assert.deepEqual(on[0]!.record.audit_event, execPod);
    const off = (await run({ rules_file: rules }, [execPod])).out.filter((e) => e.tag === 'falco');
    assert.equal(off[0]!.record.audit_event, undefined, "off by default: Falco's alert shape");
  });

  it('include_event copies the bytes of an event still in bytes, without decoding it', async () => {
    const rules = join(repoRoot, 'rules', 'k8s_audit_rules.yaml');
    const dir = tempDir();
    const built = await buildFilters(writePipeline(dir, pipelineYaml({ rules_file: rules, include_event: 'on', keep_events: 'off' })), detect);
    const chunks: LogEvent[][] = [];
    built.pipeline.onFiltered = (evs) => chunks.push([...evs]);
    const bytes = encode(execPod);
    const decodes = RecordView.prototype.decode;
    let decoded = 0;
    RecordView.prototype.decode = function (this: RecordView) {
      decoded++;
      return decodes.call(this);
    };
    try {
      built.pipeline.inject([new WireEvent('kube.audit', EventTime.now(), bytes)]);
    } finally {
      RecordView.prototype.decode = decodes;
    }
    const alerts = chunks.flat().filter((e) => e.tag === 'falco');
    assert.equal(alerts.length, 1);
    assert.equal(decoded, 0, 'the event is not decoded');
    // The alert is msgpack bytes holding the event's bytes as they were, at the end as audit_event.
    const alert = alerts[0]!;
    assert.ok(alert instanceof WireEvent && alert.isBytes);
    const raw = alert.raw!;
    assert.notEqual(raw.buffer, bytes.buffer, 'a copy, not a view into the input buffer');
    assert.deepEqual(Buffer.from(raw.subarray(raw.length - bytes.length)), bytes);
    assert.deepEqual(Buffer.from(raw.subarray(raw.length - bytes.length - 12, raw.length - bytes.length)), encode('audit_event'));
    const ev = alert.record.audit_event;
    assert.deepEqual(ev, execPod);
    const fromObject = (await run({ rules_file: rules, include_event: 'on' }, [execPod])).out.filter((e) => e.tag === 'falco')[0]!.record;
    const text = (r: Record<string, unknown>) => toJSONLine({ ...r, output: '', time: '' });
    assert.equal(text(alerts[0]!.record), text(fromObject), 'the same alert as from the decoded event');
  });

  it('emits alerts under alert_tag that re-enter routing, and keeps the events', async () => {
    const { out, chunks, metrics } = await run({ rules_file: join(repoRoot, 'rules', 'k8s_audit_rules.yaml') }, [execPod, createDeployment]);
    assert.equal(chunks.length, 2, 'the audit chunk, then the emitted alert chunk routed again');
    const audit = out.filter((e) => e.tag === 'kube.audit');
    const alerts = out.filter((e) => e.tag === 'falco');
    assert.equal(audit.length, 2);
    assert.deepEqual(
      alerts.map((a) => a.record.rule),
      ['Attach/Exec Pod', 'K8s Deployment Created'],
    );
    const a = alerts[0]!.record;
    assert.equal(a.priority, 'Notice');
    assert.equal(a.source, 'k8s_audit');
    assert.deepEqual(a.tags, ['k8s']);
    assert.equal(a.time, '2018-10-26T13:38:34.902914000Z');
    assert.equal(alerts[0]!.time.toISO(), a.time);
    assert.match(
      a.output as string,
      /^\d\d:\d\d:\d\d\.902914000: Notice Attach\/Exec to pod \(user=minikube-user pod=nginx-deployment-7998647bdf-phvq7 resource=pods ns=default action=exec command=bash\)$/,
    );
    assert.deepEqual(Object.keys(a), ['hostname', 'output', 'output_fields', 'priority', 'rule', 'source', 'tags', 'time']);
    const f = a.output_fields as Record<string, unknown>;
    assert.equal(f['evt.time'], 1540561114902914000n);
    assert.equal(f['ka.uri.param[command]'], 'bash');
    assert.equal(f['ka.user.name'], 'minikube-user');
    assert.equal(await counterValue(metrics, 'logwarden_detect_alerts_total', { rule: 'Attach/Exec Pod', priority: 'Notice' }), 1);
    assert.equal(await counterValue(metrics, 'logwarden_detect_alerts_total', { rule: 'K8s Deployment Created', priority: 'Informational' }), 1);
    assert.equal(await counterValue(metrics, 'logwarden_detect_events_total'), 2);
  });

  it('drops the events with keep_events off, and honours rule_matching, minimum_priority, alert_tag, hostname', async () => {
    const { out } = await run({ keep_events: 'off', alert_tag: 'alerts.k8s', minimum_priority: 'notice', hostname: 'detector-1' }, [execPod, createDeployment]);
    assert.deepEqual(
      out.map((e) => [e.tag, e.record.rule, e.record.hostname]),
      [['alerts.k8s', 'Attach/Exec Pod', 'detector-1']],
      'the bundled rules by default; the Informational rule is below minimum_priority; no audit event kept',
    );
  });

  it('reads JSON strings under key_name, splits EventLists, and counts what it cannot evaluate', async () => {
    const list = { kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: [execPod, createDeployment] };
    const { out, metrics, logs } = await run({ key_name: 'log', rule_matching: 'all' }, [
      { log: JSON.stringify(list) },
      { log: '{"kind": 0}' },
      { log: 'not json' },
      { other: 1 },
      { log: JSON.stringify({ ...execPod, stageTimestamp: 'yesterday' }) },
    ]);
    assert.deepEqual(
      out.filter((e) => e.tag === 'falco').map((e) => e.record.rule),
      ['Attach/Exec Pod', 'K8s Deployment Created'],
    );
    assert.equal(out.filter((e) => e.tag === 'kube.audit').length, 5, 'every record passes on');
    assert.equal(await counterValue(metrics, 'logwarden_detect_skipped_records_total', { reason: 'not_audit' }), 1);
    assert.equal(await counterValue(metrics, 'logwarden_detect_skipped_records_total', { reason: 'not_json' }), 1);
    assert.equal(await counterValue(metrics, 'logwarden_detect_skipped_records_total', { reason: 'missing_key' }), 1);
    assert.equal(await counterValue(metrics, 'logwarden_detect_skipped_records_total', { reason: 'invalid_stage_timestamp' }), 1);
    assert.ok(logs.some((l) => String(l.msg).includes('record not evaluated')));
  });

  it('reports rule file errors at load time with the rule file position', async () => {
    const dir = tempDir();
    const rules = join(dir, 'bad.yaml');
    writeFileSync(rules, '- rule: Bad\n  desc: x\n  condition: ka.verb = create and\n  output: o\n  priority: WARNING\n  source: k8s_audit\n');
    const file = writePipeline(dir, pipelineYaml({ rules_file: 'bad.yaml' }));
    await assert.rejects(buildFilters(file, detect), (e: unknown) => {
      assert.ok(e instanceof ConfigErrors);
      assert.match(e.message, /bad\.yaml:3:14: rules_file: rule 'Bad': expected blank or '\(' after 'and' \(condition line 1 column 21\) \[LOAD_ERR_COMPILE_CONDITION\]/);
      return true;
    });
  });
});

/**
 * The Falco k8s_audit regression suite (test/fixtures/conformance/falco-k8saudit/cases.yaml), run as
 * its README says: the shared-lists file first when a case also loaded the syscall rules, then
 * the case's rule files in order; rule_matching and minimum priority from harness_defaults; the
 * events file read as the k8saudit plugin reads it. One subtest per case.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { Engine, detectEventsText, newStats } from '../../../src/falco/engine.js';
import { parseEventsText } from '../../../src/falco/events.js';
import { toJSONLine } from '../../../src/core/json.js';
import { encode, RawMsgpack } from '../../../src/core/msgpack.js';
import { JsonWriter, writeRecordJSON } from '../../../src/core/msgpack-json.js';
import { MsgpackWriter } from '../../../src/core/msgpack-writer.js';
import { RecordView } from '../../../src/core/record-view.js';
import { RuleLoader } from '../../../src/falco/loader.js';
import { parsePriority } from '../../../src/falco/priority.js';
import { falcoCorpus } from '../../support/paths.js';

interface Case {
  name: string;
  events: string;
  rules: string[];
  also_loads_syscall_rules: boolean;
  expect: { detect: boolean; level: string | null; counts: Record<string, number> };
  extra: Record<string, unknown>;
}

interface Suite {
  syscall_rules_substitute: string;
  harness_defaults: { min_priority: string; rule_matching: 'first' | 'all'; expected_exit_status: number };
  cases: Case[];
}

const dir = join(falcoCorpus);
const suite = parse(readFileSync(join(dir, 'cases.yaml'), 'utf8')) as Suite;

describe('falco k8s_audit conformance (cases.yaml)', () => {
  it('has the 66 cases of the legacy suite', () => {
    assert.equal(suite.cases.length, 66);
  });

  for (const c of suite.cases) {
    it(c.name, () => {
      const loader = new RuleLoader();
      const files = [...(c.also_loads_syscall_rules ? [suite.syscall_rules_substitute] : []), ...c.rules];
      for (const f of files) loader.loadFile(join(dir, 'rules', f), f);
      const engine = new Engine(loader.result(), {
        ruleMatching: suite.harness_defaults.rule_matching,
        minPriority: parsePriority(suite.harness_defaults.min_priority)!,
        hostname: 'conformance',
      });
      const alerts: Array<{ rule: string; priority: number }> = [];
      const records: string[] = [];
      const text = readFileSync(join(dir, 'events', c.events), 'utf8');
      const { messages } = detectEventsText(engine, text, (rec, r) => {
        alerts.push({ rule: r.rule.name, priority: r.rule.priority });
        records.push(toJSONLine(rec));
      });
      // The same events as msgpack bytes read through a view: the same alert records.
      const view = new RecordView();
      const fromBytes: string[] = [];
      const stats = newStats();
      for (const { value } of parseEventsText(text).values) {
        const each = (v: unknown) => {
          const onAlert = (rec: Record<string, unknown>) => fromBytes.push(toJSONLine(rec));
          if (v !== null && typeof v === 'object' && (v as Record<string, unknown>).kind === 'Event') engine.detectView(view.reset(encode(v)), onAlert, stats);
          else engine.detect(v, onAlert, stats);
        };
        if (Array.isArray(value)) value.forEach(each);
        else each(value);
      }
      assert.deepEqual(fromBytes, records, 'alerts from the bytes');
      // Alerts written as msgpack (the detect filter's form): the bytes of encoding the alert
      // record, also with the event's bytes added as audit_event (include_event); its JSON as
      // written from the bytes is the alert record's.
      const w = new MsgpackWriter();
      const json = new JsonWriter(4096);
      const written: string[] = [];
      for (const { value } of parseEventsText(text).values) {
        for (const v of Array.isArray(value) ? value : [value]) {
          if (v === null || typeof v !== 'object' || (v as Record<string, unknown>).kind !== 'Event') continue;
          const bytes = encode(v);
          engine.detectViewMatches(
            view.reset(bytes),
            (r) => {
              const rec = engine.alert(r);
              engine.writeAlert(r, w);
              const plain = w.take();
              assert.deepEqual(plain, encode(rec), `${r.rule.name}: bytes`);
              json.reset();
              writeRecordJSON(json, plain);
              written.push(json.view().toString('utf8'));
              engine.writeAlert(r, w, bytes);
              assert.deepEqual(w.take(), encode({ ...rec, audit_event: new RawMsgpack(bytes) }), `${r.rule.name}: bytes with the event`);
            },
            stats,
          );
        }
      }
      assert.deepEqual(written, fromBytes.slice(0, written.length), 'alert JSON from the alert bytes');
      const summary = JSON.stringify(alerts.map((a) => a.rule));
      if (c.expect.detect) assert.ok(alerts.length > 0, `expected at least one alert, got none`);
      else assert.equal(alerts.length, 0, `expected no alert, got ${summary}`);
      if (c.expect.level !== null) {
        const want = parsePriority(c.expect.level);
        assert.ok(
          alerts.some((a) => a.priority === want),
          `expected an alert of priority ${c.expect.level}, got ${summary}`,
        );
      }
      for (const [rule, n] of Object.entries(c.expect.counts)) {
        assert.equal(alerts.filter((a) => a.rule === rule).length, n, `alerts of rule '${rule}' (all alerts: ${summary})`);
      }
      const wanted = c.extra.stderr_contains;
      if (typeof wanted === 'string')
        assert.ok(
          messages.some((m) => m.includes(wanted)),
          `messages ${JSON.stringify(messages)} lack '${wanted}'`,
        );
    });
  }
});

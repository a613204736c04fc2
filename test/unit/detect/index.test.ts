/**
 * The rule index and the shared-condition groups never change the result: for every
 * conformance event, the engine reports exactly the rules that match when each rule is evaluated
 * on its own, in rule order; with 10 renamed copies of the rules too.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Engine } from '../../../src/falco/engine.js';
import { splitAuditEvents } from '../../../src/falco/events.js';
import { newAuditEvent } from '../../../src/falco/event.js';
import { RuleLoader, type RuleSet } from '../../../src/falco/loader.js';
import { falcoCorpus } from '../../support/paths.js';

const corpus = join(falcoCorpus);

function events(): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const f of readdirSync(join(corpus, 'events'))) {
    for (const line of readFileSync(join(corpus, 'events', f), 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      const evs = splitAuditEvents(JSON.parse(line));
      if (typeof evs !== 'string') out.push(...evs);
    }
  }
  return out;
}

function check(rs: RuleSet, evs: Array<Record<string, unknown>>): number {
  const engine = new Engine(rs, { ruleMatching: 'all', minPriority: 7, hostname: 't' });
  const first = new Engine(rs, { ruleMatching: 'first', minPriority: 7, hostname: 't' });
  const ctx = rs.program.context();
  let total = 0;
  for (const obj of evs) {
    const got: string[] = [];
    engine.evaluate(newAuditEvent(obj, 't'), (r) => got.push(r.rule.name));
    const want: string[] = [];
    for (const r of engine.active) {
      ctx.begin(newAuditEvent(obj, 't'));
      if (r.pred(ctx)) want.push(r.rule.name);
    }
    assert.deepEqual(got, want, `event ${String(obj.auditID)}`);
    const one: string[] = [];
    first.evaluate(newAuditEvent(obj, 't'), (r) => one.push(r.rule.name));
    assert.deepEqual(one, want.slice(0, 1));
    total += want.length;
  }
  return total;
}

describe('rule index', () => {
  const evs = events();
  const rules = readFileSync(join(corpus, 'rules', 'k8s_audit_rules.yaml'), 'utf8');

  it('matches brute-force evaluation on every conformance event (newest rules)', () => {
    const l = new RuleLoader();
    l.loadText(rules, 'k8s_audit_rules.yaml');
    assert.ok(check(l.result(), evs) > 20);
  });

  it('and with renamed copies of every rule (groups)', () => {
    const l = new RuleLoader();
    l.loadText(rules, 'a.yaml');
    l.loadText(rules.replace(/^- rule: (.*)$/gm, '- rule: $1 (copy)'), 'b.yaml');
    assert.ok(check(l.result(), evs) > 40);
  });

  it('and with the legacy rules', () => {
    const l = new RuleLoader();
    for (const f of ['falco_rules-1.0.1.shared-lists.yaml', 'k8s_audit_rules.legacy.yaml']) l.loadFile(join(corpus, 'rules', f), f);
    assert.ok(check(l.result(), evs) > 20);
  });
});

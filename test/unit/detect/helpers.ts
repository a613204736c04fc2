/** Small rule sets built from text, for the detect unit tests. */
import { Engine } from '../../../src/falco/engine.js';
import { newAuditEvent } from '../../../src/falco/event.js';
import { RuleLoader, type RuleSet } from '../../../src/falco/loader.js';

/** A k8s_audit rule item; the condition is written as a YAML double-quoted string. */
export function ruleItem(name: string, condition: string, extra = ''): string {
  return `- rule: ${name}\n  desc: test rule\n  condition: ${JSON.stringify(condition)}\n  output: ${JSON.stringify(`${name} (user=%ka.user.name)`)}\n  priority: WARNING\n  source: k8s_audit\n${extra}`;
}

/** Loads rule texts in order (as files named a.yaml, b.yaml, ...). */
export function load(...texts: string[]): RuleSet {
  const loader = new RuleLoader();
  texts.forEach((t, i) => {
    loader.loadText(t, `${String.fromCharCode(97 + i)}.yaml`);
  });
  return loader.result();
}

/** Names of the rules matching an event, in rule order (rule_matching all). */
export function matches(rs: RuleSet, event: Record<string, unknown>, ruleMatching: 'first' | 'all' = 'all'): string[] {
  const engine = new Engine(rs, { ruleMatching, minPriority: 7, hostname: 'test' });
  const out: string[] = [];
  engine.evaluate(newAuditEvent(event, 'test'), (r) => out.push(r.rule.name));
  return out;
}

/** Whether one condition (with optional macro/list items before it) is true for an event. */
export function holds(condition: string, event: Record<string, unknown>, before = ''): boolean {
  return matches(load(`${before}\n${ruleItem('R', condition)}`), event).length === 1;
}

/** An audit event with the usual fields; `over` replaces top-level keys. */
export function auditEvent(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Request',
    auditID: '2f1a0c1e-0000-4000-8000-000000000001',
    stage: 'ResponseComplete',
    requestURI: '/api/v1/namespaces/default/pods/web-1/exec?command=sh&command=-c&container=app',
    verb: 'create',
    user: { username: 'alice', groups: ['dev', 'system:authenticated'] },
    impersonatedUser: { username: 'alice' },
    sourceIPs: ['10.0.0.7', '10.0.0.8'],
    userAgent: 'kubectl/v1.29.3',
    objectRef: { resource: 'pods', namespace: 'default', name: 'web-1', subresource: 'exec', apiVersion: 'v1' },
    responseStatus: { metadata: {}, code: 201 },
    requestReceivedTimestamp: '2024-05-01T12:00:00.000000Z',
    stageTimestamp: '2024-05-01T12:00:00.123456Z',
    annotations: { 'authorization.k8s.io/decision': 'allow', 'a/b': 'slash', 'a~b': 'tilde' },
    ...over,
  };
}

/**
 * The Falco rules engine for the k8s_audit source: the rule-file loader (reader, collector,
 * compiler), the condition language, the k8saudit/json field extractors, output formatting and
 * the engine that evaluates a rule set on audit events. The detect filter and the `detect` CLI
 * command are its two users; both import it from here.
 */
import { fileURLToPath } from 'node:url';

/** The rule file bundled with logwarden (rules/k8s_audit_rules.yaml). */
export const BUNDLED_RULES = fileURLToPath(new URL('../../../rules/k8s_audit_rules.yaml', import.meta.url));

export { Engine, newStats, detectEventsText, type DetectStats, type EngineOptions, type ActiveRule } from './engine.js';
export { NOT_AUDIT, splitAuditEvents, parseEventsText, type EventsText } from './events.js';
export { AuditEvent, DEFAULT_HOSTNAME, newAuditEvent, viewAuditEvent } from './event.js';
export {
  ENGINE_VERSION,
  MAX_WARNINGS,
  RuleLoadError,
  RuleLoader,
  SOURCE,
  formatMessage,
  loadRuleFiles,
  type CompiledRule,
  type LoadMessage,
  type RuleSet,
  type RuleSummary,
  type Where,
} from './loader.js';
export { PRIORITY_NAMES, PRIORITY_VALUES, parsePriority, priorityName, type PriorityName } from './priority.js';

/**
 * The detection engine: evaluates the compiled rules of a RuleSet on audit events and builds
 * alert records in Falco's JSON output shape.
 *
 * Rule index: every rule is analysed for the values it requires of a few cheap single-valued
 * fields (those most rules test with `=`/`in`, typically the stage, ka.verb and
 * ka.target.resource). Per event those fields are read once, and the list of rules that can
 * possibly match that combination (in rule order) is looked up in a cache, so most rules are
 * skipped without evaluation. `rule_matching: first` stops at the first match in rule order,
 * as Falco does; `all` reports every match.
 */
import type { EvalContext, Pred } from './compile.js';
import { allowedValues } from './constraints.js';
import { NOT_AUDIT, parseEventsText, splitAuditEvents } from './events.js';
import { eventTime, newAuditEvent, timeOfDay, viewAuditEvent, type AuditEvent } from './event.js';
import type { RecordView } from '../core/record-view.js';
import { rawNanos } from './output.js';
import type { CompiledRule, RuleSet } from './load-info.js';
import { SOURCE } from './load-info.js';
import { encode } from '../core/msgpack.js';
import type { MsgpackWriter } from '../core/msgpack-writer.js';

const KEY_HOSTNAME = encode('hostname');
const KEY_OUTPUT = encode('output');
const KEY_OUTPUT_FIELDS = encode('output_fields');
const KEY_PRIORITY = encode('priority');
const KEY_RULE = encode('rule');
const KEY_SOURCE = encode('source');
const VALUE_SOURCE = encode(SOURCE);
const KEY_TAGS = encode('tags');
const KEY_TIME = encode('time');
const KEY_AUDIT_EVENT = encode('audit_event');

export interface EngineOptions {
  ruleMatching: 'first' | 'all';
  /** 0 (Emergency) ... 7 (Debug): rules less severe than this are not evaluated. */
  minPriority: number;
  hostname: string;
}

export interface ActiveRule {
  rule: CompiledRule;
  pred: Pred;
  /** Per index slot: the accepted values, or null (any). */
  cons: Array<ReadonlySet<string> | null>;
}

/**
 * Rules with the same compiled condition (one rule set loaded twice under other names, rules
 * differing only in output or priority) are evaluated once per event.
 */
interface RuleGroup {
  pred: Pred;
  /** In rule order. */
  rules: ActiveRule[];
  cons: Array<ReadonlySet<string> | null>;
}

/** At most this many index fields; each one costs a field read per event. */
const MAX_INDEX_FIELDS = 4;
const MAX_CACHED_KEYS = 8192;

export class Engine {
  readonly active: ActiveRule[];
  readonly indexFields: string[];
  private readonly getters: Array<(c: EvalContext) => unknown>;
  private readonly groups: RuleGroup[];
  /**
   * The candidates per combination of index values: one map level per index field, keyed by
   * the field's value (a string, or undefined for anything else: candidates() treats every
   * value that is not a string alike), the rule groups at the last level. No key is built.
   */
  private readonly cache = new Map<string | undefined, unknown>();
  private cachedKeys = 0;
  private readonly matched: RuleGroup[] = [];
  private readonly ctx: EvalContext;
  private readonly first: boolean;
  private readonly fieldOrder = new Map<CompiledRule, string[]>();
  /** Per rule, the msgpack of the alert values that do not change from one alert to the next. */
  private readonly alertKeys = new Map<CompiledRule, { hostname: Buffer; priority: Buffer; rule: Buffer; tags: Buffer; head: string }>();
  private isoSec = NaN;
  private isoPrefix = '';
  // The event being detected on and where its alerts go: one callback for every event.
  private cur: AuditEvent | null = null;
  /** The event object detectView reuses: alerts take what they need from it during the call. */
  private viewEv: AuditEvent | undefined;
  private curAlert: ((record: Record<string, unknown>, r: ActiveRule, ev: AuditEvent) => void) | null = null;
  /** Or, instead of an alert record, the rule that matched (the caller builds its alert: writeAlert). */
  private curRule: ((r: ActiveRule, ev: AuditEvent) => void) | null = null;
  private readonly onMatch = (r: ActiveRule): void => {
    const ev = this.cur!;
    if (!eventTime(ev)) return;
    if (this.curRule !== null) this.curRule(r, ev);
    else this.curAlert!(this.alert(r), r, ev);
  };

  constructor(
    readonly ruleSet: RuleSet,
    readonly opts: EngineOptions,
  ) {
    const prog = ruleSet.program;
    const rules = ruleSet.rules.filter((r) => r.enabled && r.priority <= opts.minPriority);
    // Build every rule once (whatever the filters), so engines sharing a rule set share memo slots.
    for (const r of ruleSet.rules) prog.build(r.node);
    const preds = rules.map((r) => prog.build(r.node));
    // Choose the index fields: those constraining the most active rules.
    const ranked = prog
      .constrainingSlots()
      .map((s) => {
        const memo = new Map();
        const cons = rules.map((r) => allowedValues(r.node, s.id, memo));
        return { ...s, cons, n: cons.filter((x) => x !== null).length };
      })
      .filter((s) => s.n > 0)
      .sort((a, b) => b.n - a.n || a.id - b.id)
      .slice(0, MAX_INDEX_FIELDS);
    this.indexFields = ranked.map((s) => s.key);
    this.getters = ranked.map((s) => prog.slotGetter(s.id));
    this.active = rules.map((rule, i) => ({ rule, pred: preds[i]!, cons: ranked.map((s) => s.cons[i]!) }));
    const byNode = new Map<number, RuleGroup>();
    for (const r of this.active) {
      const g = byNode.get(r.rule.node.id);
      if (g) g.rules.push(r);
      else byNode.set(r.rule.node.id, { pred: r.pred, rules: [r], cons: r.cons });
    }
    this.groups = [...byNode.values()];
    this.ctx = prog.context();
    this.first = opts.ruleMatching === 'first';
  }

  /** Checks that failed while evaluating (an operator a list field does not support). */
  get runtimeErrors(): number {
    return this.ctx.runtimeErrors;
  }

  private candidates(values: unknown[]): RuleGroup[] {
    return this.groups.filter((r) => {
      for (let i = 0; i < values.length; i++) {
        const c = r.cons[i];
        if (c === null || c === undefined) continue;
        const v = values[i];
        if (typeof v !== 'string' || !c.has(v)) return false;
      }
      return true;
    });
  }

  /** The rule groups that can match the event's index values (in rule order). */
  private lookup(c: EvalContext): RuleGroup[] {
    const g = this.getters;
    const last = g.length - 1;
    if (last < 0) return this.groups;
    let m = this.cache;
    for (let i = 0; i < last; i++) {
      const v = g[i]!(c);
      const k = typeof v === 'string' ? v : undefined;
      let next = m.get(k) as Map<string | undefined, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        m.set(k, next);
      }
      m = next;
    }
    const v = g[last]!(c);
    const k = typeof v === 'string' ? v : undefined;
    let cands = m.get(k) as RuleGroup[] | undefined;
    if (cands === undefined) {
      cands = this.candidates(g.map((x) => x(c)));
      if (this.cachedKeys >= MAX_CACHED_KEYS) {
        this.cache.clear();
        this.cachedKeys = 0;
        return cands;
      }
      m.set(k, cands);
      this.cachedKeys++;
    }
    return cands;
  }

  /**
   * Evaluates one event; calls `onMatch` for each matching rule (at most one with `first`).
   * Alerts must be built inside `onMatch` (the field cache belongs to this event).
   */
  evaluate(ev: AuditEvent, onMatch: (r: ActiveRule) => void): number {
    const c = this.ctx;
    c.begin(ev);
    const cands = this.lookup(c);
    if (this.first) {
      for (let i = 0; i < cands.length; i++) {
        const grp = cands[i]!;
        if (grp.pred(c)) {
          onMatch(grp.rules[0]!);
          return 1;
        }
      }
      return 0;
    }
    const matched = this.matched;
    matched.length = 0;
    for (let i = 0; i < cands.length; i++) if (cands[i]!.pred(c)) matched.push(cands[i]!);
    if (matched.length === 0) return 0;
    if (matched.length === 1) {
      const rules = matched[0]!.rules;
      for (let i = 0; i < rules.length; i++) onMatch(rules[i]!);
      return rules.length;
    }
    // Several groups: report their rules in rule order, as Falco does.
    const all = matched.flatMap((grp) => grp.rules).sort((a, b) => a.rule.order - b.rule.order);
    for (const r of all) onMatch(r);
    return all.length;
  }

  /**
   * Detects on one decoded value (an Event, an EventList or an array of them): calls `onAlert`
   * for each alert. Returns the number of audit events evaluated, or why the value holds none.
   * Events without a valid stageTimestamp never alert (the k8saudit plugin drops them); they are
   * counted in `invalidTime`.
   */
  detect(value: unknown, onAlert: (record: Record<string, unknown>, r: ActiveRule, ev: AuditEvent) => void, stats: DetectStats): void {
    const objs = value !== null && typeof value === 'object' && (value as Record<string, unknown>).kind === 'Event' ? [value as Record<string, unknown>] : splitAuditEvents(value);
    if (typeof objs === 'string') {
      stats.notAudit++;
      return;
    }
    for (const obj of objs) this.one(newAuditEvent(obj, this.opts.hostname), onAlert, null, stats);
  }

  /**
   * detect() for one Event read through `view` (pointed at its bytes, `kind` Event): fields are
   * read by path, the event is never decoded unless a field takes it whole.
   */
  detectView(view: RecordView, onAlert: (record: Record<string, unknown>, r: ActiveRule, ev: AuditEvent) => void, stats: DetectStats): void {
    this.one((this.viewEv ??= viewAuditEvent(view, this.opts.hostname)).rebind(view), onAlert, null, stats);
  }

  /**
   * detect() and detectView() reporting the rules that matched instead of alert records: the
   * caller writes each alert during the call (writeAlert; the event's field cache is valid then).
   */
  detectMatches(value: unknown, onRule: (r: ActiveRule, ev: AuditEvent) => void, stats: DetectStats): void {
    const objs = value !== null && typeof value === 'object' && (value as Record<string, unknown>).kind === 'Event' ? [value as Record<string, unknown>] : splitAuditEvents(value);
    if (typeof objs === 'string') {
      stats.notAudit++;
      return;
    }
    for (const obj of objs) this.one(newAuditEvent(obj, this.opts.hostname), null, onRule, stats);
  }

  detectViewMatches(view: RecordView, onRule: (r: ActiveRule, ev: AuditEvent) => void, stats: DetectStats): void {
    this.one((this.viewEv ??= viewAuditEvent(view, this.opts.hostname)).rebind(view), null, onRule, stats);
  }

  private one(
    ev: AuditEvent,
    onAlert: ((record: Record<string, unknown>, r: ActiveRule, ev: AuditEvent) => void) | null,
    onRule: ((r: ActiveRule, ev: AuditEvent) => void) | null,
    stats: DetectStats,
  ): void {
    stats.events++;
    this.cur = ev;
    this.curAlert = onAlert;
    this.curRule = onRule;
    try {
      this.evaluate(ev, this.onMatch);
    } finally {
      this.cur = null;
      this.curAlert = null;
      this.curRule = null;
    }
    if (ev.timeState === 2) stats.invalidTime++;
  }

  /**
   * The alert record of alert() as msgpack, written into `w` from the rule's fields without an
   * object: the same keys, order and values. `event` (the audit event's own bytes) goes in as
   * audit_event when given (include_event).
   */
  writeAlert(r: ActiveRule, w: MsgpackWriter, event?: Uint8Array): void {
    const c = this.ctx;
    const ev = c.ev;
    const rule = r.rule;
    eventTime(ev);
    if (ev.sec !== this.isoSec) {
      this.isoSec = ev.sec;
      this.isoPrefix = new Date(ev.sec * 1000).toISOString().slice(0, 19);
    }
    let k = this.alertKeys.get(rule);
    if (k === undefined) {
      k = {
        hostname: encode(this.opts.hostname),
        priority: encode(rule.priorityName),
        rule: encode(rule.name),
        tags: encode(rule.tags),
        head: `: ${rule.priorityName} `,
      };
      this.alertKeys.set(rule, k);
    }
    w.map(event === undefined ? 8 : 9);
    w.raw(KEY_HOSTNAME);
    w.raw(k.hostname);
    w.raw(KEY_OUTPUT);
    w.str(`${timeOfDay(ev.sec, ev.nsec)}${k.head}${rule.output.text(c)}`);
    w.raw(KEY_OUTPUT_FIELDS);
    rule.output.writeFields(c, w);
    w.raw(KEY_PRIORITY);
    w.raw(k.priority);
    w.raw(KEY_RULE);
    w.raw(k.rule);
    w.raw(KEY_SOURCE);
    w.raw(VALUE_SOURCE);
    w.raw(KEY_TAGS);
    w.raw(k.tags);
    w.raw(KEY_TIME);
    w.str(`${this.isoPrefix}.${String(ev.nsec).padStart(9, '0')}Z`);
    if (event !== undefined) {
      w.raw(KEY_AUDIT_EVENT);
      w.raw(event);
    }
  }

  /** The alert record of a rule that matched the event being evaluated (Falco's JSON output). */
  alert(r: ActiveRule): Record<string, unknown> {
    const c = this.ctx;
    const ev = c.ev;
    const rule = r.rule;
    eventTime(ev);
    const fields = rule.output.fields(c);
    let keys = this.fieldOrder.get(rule);
    if (!keys) {
      keys = [...Object.keys(fields), 'evt.time'].sort();
      this.fieldOrder.set(rule, keys);
    }
    const sorted: Record<string, unknown> = {};
    for (const k of keys) sorted[k] = k === 'evt.time' ? rawNanos(ev.sec, ev.nsec) : fields[k];
    if (ev.sec !== this.isoSec) {
      this.isoSec = ev.sec;
      this.isoPrefix = new Date(ev.sec * 1000).toISOString().slice(0, 19);
    }
    return {
      hostname: this.opts.hostname,
      output: `${timeOfDay(ev.sec, ev.nsec)}: ${rule.priorityName} ${rule.output.text(c)}`,
      output_fields: sorted,
      priority: rule.priorityName,
      rule: rule.name,
      source: SOURCE,
      tags: rule.tags,
      time: `${this.isoPrefix}.${String(ev.nsec).padStart(9, '0')}Z`,
    };
  }
}

export interface DetectStats {
  /** Audit events evaluated. */
  events: number;
  /** Values that were no audit event (nor EventList, nor array of them). */
  notAudit: number;
  /** Events found without a valid stageTimestamp (checked when a rule matches or reads the time); they never alert. */
  invalidTime: number;
}

export function newStats(): DetectStats {
  return { events: 0, notAudit: 0, invalidTime: 0 };
}

/**
 * Runs an events file (JSON lines, a JSON array or EventLists) through the engine, as Falco
 * reads a k8saudit `open_params` file. Returns the statistics and the messages Falco would log
 * (unrecognised data, invalid JSON, events without a valid stageTimestamp).
 */
export function detectEventsText(engine: Engine, text: string, onAlert: (record: Record<string, unknown>, r: ActiveRule) => void): { stats: DetectStats; messages: string[] } {
  const stats = newStats();
  const messages: string[] = [];
  const parsed = parseEventsText(text);
  for (const e of parsed.errors) messages.push(`line ${e.line}: ${e.message}`);
  for (const { line, value } of parsed.values) {
    const before = { ...stats };
    engine.detect(value, onAlert, stats);
    if (stats.notAudit > before.notAudit) messages.push(`line ${line}: ${NOT_AUDIT}`);
    if (stats.invalidTime > before.invalidTime) messages.push(`line ${line}: audit event without a valid RFC 3339 stageTimestamp: dropped`);
  }
  return { stats, messages };
}

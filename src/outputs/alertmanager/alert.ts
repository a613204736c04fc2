/**
 * Falco alert records → Alertmanager postable alerts, as falcosidekick's outputs/alertmanager.go
 * builds them: labels source="falco", rule, alertname, eventsource, hostname, tags (sorted,
 * comma-joined), priority, severity, plus every string or number in output_fields under a
 * sanitised name; annotations info, description (the output) and summary (the rule); extra
 * labels and annotations applied last.
 */
import { EventTime, type LogEvent } from '../../core/event.js';

/** Falco's priorities, lowest first (falcosidekick types/priority.go). */
export const PRIORITIES = ['debug', 'informational', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** Rank of a priority name (case-insensitive, `info` is an alias); -1 when unknown. */
export function priorityRank(p: unknown): number {
  if (typeof p !== 'string') return -1;
  const s = p.trim().toLowerCase();
  return PRIORITIES.indexOf((s === 'info' ? 'informational' : s) as Priority);
}

export const DEFAULT_SEVERITY: Record<Priority, string> = {
  emergency: 'critical',
  alert: 'critical',
  critical: 'critical',
  error: 'warning',
  warning: 'warning',
  notice: 'information',
  informational: 'information',
  debug: 'information',
};

/**
 * falcosidekick's alertmanagerSafeLabel: characters outside [a-zA-Z0-9_] become `_`, `__` becomes
 * `_` (one left-to-right pass, as Go's strings.ReplaceAll), then `_` is trimmed at both ends.
 */
export function safeLabelName(name: string): string {
  let safe = safeNames.get(name);
  if (safe === undefined) {
    safe = name
      .replace(/[^a-zA-Z0-9_]/g, '_')
      .replaceAll('__', '_')
      .replace(/^_+|_+$/g, '');
    // Output field names come from rule files: few, and repeated on every alert.
    if (safeNames.size >= 4096) safeNames.clear();
    safeNames.set(name, safe);
  }
  return safe;
}

const safeNames = new Map<string, string>();

export interface PostableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string;
}

export interface AlertOptions {
  severity: Record<Priority, string>;
  /** Seconds after the event when the alert ends; 0 leaves endsAt unset. */
  expiresAfter: number;
  extraLabels: Array<[string, string]>;
  extraAnnotations: Array<[string, string]>;
}

const hasOwn = Object.prototype.hasOwnProperty;

function set(o: Record<string, string>, k: string, v: string): void {
  // Output field names are data: `__proto__` is stored as a plain own property.
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

function capitalised(p: Priority): string {
  return p[0]!.toUpperCase() + p.slice(1);
}

/** Milliseconds since the epoch of an event time. */
function ms(t: EventTime): number {
  return t.sec * 1000 + Math.floor(t.nsec / 1e6);
}

export interface BuiltAlert {
  alert: PostableAlert;
  /** When the alert ends (ms since the epoch), or undefined when it has no endsAt. */
  endsAtMs: number | undefined;
  rank: number;
}

/**
 * Builds the alert of one Falco alert record, or returns why it is not one (no `rule`, unknown
 * priority).
 */
export function buildAlert(ev: LogEvent, o: AlertOptions): BuiltAlert | string {
  const r = ev.record;
  const rule = r.rule;
  if (typeof rule !== 'string' || rule === '') return 'record has no string "rule" (not a Falco alert)';
  const rank = priorityRank(r.priority);
  if (rank < 0) return `record has an unknown priority ${JSON.stringify(r.priority)}`;
  const priority = PRIORITIES[rank]!;
  const labels: Record<string, string> = {};
  const fields = r.output_fields;
  if (fields && typeof fields === 'object' && !Array.isArray(fields)) {
    for (const k of Object.keys(fields)) {
      if (k.startsWith('n_evts')) continue;
      const v = (fields as Record<string, unknown>)[k];
      let text: string;
      if (typeof v === 'string') text = v;
      else if (typeof v === 'number' || typeof v === 'bigint') text = String(v);
      else continue;
      const name = safeLabelName(k);
      if (name === '' || text === '') continue;
      set(labels, name, text);
    }
  }
  set(labels, 'source', 'falco');
  set(labels, 'rule', rule);
  set(labels, 'alertname', rule);
  if (typeof r.source === 'string' && r.source) set(labels, 'eventsource', r.source);
  if (typeof r.hostname === 'string' && r.hostname) set(labels, 'hostname', r.hostname);
  if (Array.isArray(r.tags) && r.tags.length) {
    set(labels, 'tags', r.tags.map(String).sort().join(','));
  }
  set(labels, 'priority', capitalised(priority));
  set(labels, 'severity', o.severity[priority]);
  const annotations: Record<string, string> = {};
  const output = typeof r.output === 'string' ? r.output : '';
  set(annotations, 'info', output);
  set(annotations, 'description', output);
  set(annotations, 'summary', rule);
  for (const [k, v] of o.extraLabels) set(labels, k, v);
  for (const [k, v] of o.extraAnnotations) set(annotations, k, v);
  const time = (typeof r.time === 'string' ? EventTime.fromISO(r.time) : null) ?? ev.time;
  const alert: PostableAlert = { labels, annotations, startsAt: time.toISO() };
  let endsAtMs: number | undefined;
  if (o.expiresAfter > 0) {
    endsAtMs = ms(time) + Math.round(o.expiresAfter * 1000);
    alert.endsAt = new Date(endsAtMs).toISOString();
  }
  return { alert, endsAtMs, rank };
}

/** Alertmanager identifies an alert by its label set; this is that identity as a string. */
export function fingerprint(labels: Record<string, string>): string {
  let s = '';
  for (const k of Object.keys(labels).sort()) if (hasOwn.call(labels, k)) s += `${k}\0${labels[k]}\0`;
  return s;
}

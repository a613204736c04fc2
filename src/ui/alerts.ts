/**
 * What the web page knows of an alert, and how alerts are filtered. Shared by the server (store,
 * list, stream, stats) and the browser bundle, so both apply the same filter semantics: this
 * module imports nothing from Node or the DOM.
 */

/** Falco's priorities, most severe first (falco_common.cpp numbers them EMERGENCY = 0 ... DEBUG = 7). */
export const PRIORITIES = ['Emergency', 'Alert', 'Critical', 'Error', 'Warning', 'Notice', 'Informational', 'Debug'] as const;

/** Falco prints priorities capitalised; records from other senders may differ in case or say `info`. */
export function canonicalPriority(p: unknown): string {
  if (typeof p !== 'string') return 'Unknown';
  const s = p.trim().toLowerCase();
  const name = s === 'info' ? 'informational' : s;
  return PRIORITIES.find((x) => x.toLowerCase() === name) ?? (p.trim() || 'Unknown');
}

/** Severity rank: 0 for Emergency ... 7 for Debug, 8 for anything else. */
export function priorityRank(p: string): number {
  const i = (PRIORITIES as readonly string[]).indexOf(p);
  return i < 0 ? PRIORITIES.length : i;
}

/** One alert as lists and the live stream carry it; the full record is fetched by id. */
export interface AlertSummary {
  id: number;
  /** When logwarden stored it (ms since the epoch): orders the list, the chart and retention. */
  received: number;
  /** The alert's own time (Falco `time`: the audit event's time), as written in the record. */
  time: string;
  /** The routing tag the alert arrived under (the detect filter's alert_tag). */
  tag: string;
  rule: string;
  priority: string;
  source: string;
  output: string;
  /** The rule's tags. */
  tags: string[];
  namespace?: string;
  user?: string;
  hostname?: string;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);

function field(fields: unknown, name: string): string | undefined {
  if (fields === null || typeof fields !== 'object') return undefined;
  // output_fields keys are data: read own properties only.
  return Object.prototype.hasOwnProperty.call(fields, name) ? str((fields as Record<string, unknown>)[name]) : undefined;
}

/** Builds the summary of a Falco alert record (Falco's JSON output: time, rule, priority, output, output_fields...). */
export function summarize(id: number, received: number, tag: string, record: Record<string, unknown>, eventTime: string): AlertSummary {
  const fields = record.output_fields;
  const tags = Array.isArray(record.tags) ? record.tags.map((t) => String(t)) : [];
  const s: AlertSummary = {
    id,
    received,
    time: str(record.time) ?? eventTime,
    tag,
    rule: str(record.rule) ?? '(no rule)',
    priority: canonicalPriority(record.priority),
    source: str(record.source) ?? '',
    output: str(record.output) ?? '',
    tags,
  };
  const ns = field(fields, 'ka.target.namespace');
  const user = field(fields, 'ka.user.name');
  const host = str(record.hostname);
  if (ns !== undefined) s.namespace = ns;
  if (user !== undefined) s.user = user;
  if (host !== undefined) s.hostname = host;
  return s;
}

/** The filters the page offers; every set filter must hold. */
export interface AlertQuery {
  /** Any of these priorities. */
  priority?: string[];
  rule?: string;
  /** A rule tag the alert carries. */
  tag?: string;
  namespace?: string;
  user?: string;
  /** Case-insensitive text in the rule, output, tags, namespace, user or hostname. */
  q?: string;
}

const KEYS = ['rule', 'tag', 'namespace', 'user', 'q'] as const;

/** Reads a query from URL parameters (`priority` is a comma-separated list). */
export function parseQuery(params: URLSearchParams): AlertQuery {
  const q: AlertQuery = {};
  const p = params.get('priority');
  if (p) {
    const list = p.split(',').map((x) => x.trim()).filter((x) => x !== '').map(canonicalPriority);
    if (list.length) q.priority = list;
  }
  for (const k of KEYS) {
    const v = params.get(k);
    if (v !== null && v !== '') q[k] = v;
  }
  return q;
}

export function queryParams(q: AlertQuery): URLSearchParams {
  const params = new URLSearchParams();
  if (q.priority?.length) params.set('priority', q.priority.join(','));
  for (const k of KEYS) {
    const v = q[k];
    if (v !== undefined && v !== '') params.set(k, v);
  }
  return params;
}

/** The text free-text search looks in. */
export function haystack(a: AlertSummary): string {
  return [a.rule, a.output, a.priority, a.tags.join(' '), a.namespace ?? '', a.user ?? '', a.hostname ?? ''].join('\n').toLowerCase();
}

/** Compiles a query once into a predicate over summaries. */
export function compileQuery(q: AlertQuery, text_of: (a: AlertSummary) => string = haystack): (a: AlertSummary) => boolean {
  const priorities = q.priority?.length ? new Set(q.priority) : undefined;
  const text = q.q?.trim().toLowerCase();
  const { rule, tag, namespace, user } = q;
  return (a) =>
    (priorities === undefined || priorities.has(a.priority)) &&
    (rule === undefined || a.rule === rule) &&
    (tag === undefined || a.tags.includes(tag)) &&
    (namespace === undefined || a.namespace === namespace) &&
    (user === undefined || a.user === user) &&
    (!text || text_of(a).includes(text));
}

/** Counts over time, as /api/v1/alerts/stats returns them. */
export interface AlertStats {
  /** Matching alerts kept (in the whole store, not only the window). */
  total: number;
  /** Alerts kept by priority, matching every filter but the priority filter (facet counts). */
  byPriority: Record<string, number>;
  /** Alerts kept by rule, matching every filter but the rule filter. */
  byRule: Record<string, number>;
  /** Values seen in the store, for the filter choices. */
  values: { rules: string[]; tags: string[]; namespaces: string[]; users: string[] };
  series: {
    /** Start of the first bucket (ms since the epoch) and bucket width (ms). */
    start: number;
    step: number;
    /** Matching alerts per bucket, by priority and by rule (the rules with most alerts in the window; the rest under "other"). */
    byPriority: Record<string, number[]>;
    byRule: Record<string, number[]>;
  };
}

/** Rules drawn one by one in the chart; the rest are summed as "other". */
export const CHART_RULES = 8;
export const OTHER_RULES = '(other rules)';

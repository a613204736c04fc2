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
  /**
   * Where output_fields values stand in `output`: `[start, end, field name]`, in order, not
   * overlapping (UTF-16 offsets, as String.prototype.slice takes them). The page emphasises them.
   */
  marks?: Array<[number, number, string]>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);

function field(fields: unknown, name: string): string | undefined {
  if (fields === null || typeof fields !== 'object') return undefined;
  // output_fields keys are data: read own properties only.
  return Object.hasOwn(fields, name) ? str((fields as Record<string, unknown>)[name]) : undefined;
}

const WORD = /[\p{L}\p{N}_]/u;
/** Occurrences of one value looked for, at most. */
const MARKS_PER_FIELD = 8;
const MAX_MARKS = 64;

/**
 * The output_fields values found in the output text, at word boundaries (so `0` does not mark
 * every zero of a number), longest first where two overlap. `<NA>` (Falco's missing value) and
 * empty values are not marked.
 */
export function outputMarks(output: string, fields: unknown): Array<[number, number, string]> {
  if (output === '' || fields === null || typeof fields !== 'object' || Array.isArray(fields)) return [];
  const found: Array<[number, number, string]> = [];
  for (const name of Object.keys(fields)) {
    const v = str((fields as Record<string, unknown>)[name]);
    if (v === undefined || v === '' || v === '<NA>' || v.length > output.length) continue;
    let at = 0;
    for (let n = 0; n < MARKS_PER_FIELD; ) {
      const i = output.indexOf(v, at);
      if (i < 0) break;
      const end = i + v.length;
      const before = i > 0 ? output[i - 1]! : '';
      const after = end < output.length ? output[end]! : '';
      const edgeOk = (edge: string, inner: string) => edge === '' || !WORD.test(edge) || !WORD.test(inner);
      if (edgeOk(before, v[0]!) && edgeOk(after, v[v.length - 1]!)) {
        found.push([i, end, name]);
        n++;
      }
      at = i + 1;
    }
  }
  found.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const marks: Array<[number, number, string]> = [];
  let last = 0;
  for (const m of found) {
    if (m[0] < last) continue;
    marks.push(m);
    last = m[1];
    if (marks.length === MAX_MARKS) break;
  }
  return marks;
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
  const marks = outputMarks(s.output, fields);
  if (marks.length) s.marks = marks;
  return s;
}

/**
 * An alert group muted (acknowledged) until a time: the alerts of this rule, and of this
 * namespace and user when given (absent: any). Muted alerts are still stored; the list marks
 * them and can hide them.
 */
export interface Mute {
  id: number;
  rule: string;
  namespace?: string;
  user?: string;
  /** When it was made and when it ends (ms since the epoch). */
  created: number;
  until: number;
  /** Who made it (the basic auth user, when there is one) and why. */
  by?: string;
  comment?: string;
  /** The Alertmanager silence made with it (ui.alertmanager_url), if any. */
  silence?: string;
}

/** What POST /api/v1/mutes takes (the store assigns the id and the creation time). */
export type NewMute = Omit<Mute, 'id' | 'created'>;

export function muteMatches(m: Pick<Mute, 'rule' | 'namespace' | 'user'>, a: Pick<AlertSummary, 'rule' | 'namespace' | 'user'>): boolean {
  return m.rule === a.rule && (m.namespace === undefined || m.namespace === a.namespace) && (m.user === undefined || m.user === a.user);
}

/** The filters the page offers; every set filter must hold (a list: any of its values). */
export interface AlertQuery {
  priority?: string[];
  rule?: string[];
  /** Rule tags: the alert carries at least one of them. */
  tag?: string[];
  hostname?: string[];
  /** Falco's event source (`k8s_audit`...). */
  source?: string[];
  namespace?: string;
  user?: string;
  /** Case-insensitive text in the rule, output, tags, namespace, user or hostname. */
  q?: string;
  /** Received at or after this time (ms since the epoch). */
  from?: number;
  /** Received before this time (ms since the epoch). */
  to?: number;
  /**
   * Received in the last this many seconds. Relative: the server turns it into `from` when it
   * answers (resolveQuery), so stores only see `from`/`to`.
   */
  since?: number;
  /** Muted alerts: shown (absent), hidden, or the only ones shown. */
  muted?: 'hide' | 'only';
}

const LISTS = ['rule', 'tag', 'hostname', 'source'] as const;
const TEXTS = ['namespace', 'user', 'q'] as const;
/** Longest value taken from a parameter (longer ones are cut). */
const MAX_PARAM = 4096;
/** Most values of one list filter. */
const MAX_VALUES_PER_FILTER = 200;

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** `90`, `15m`, `1h`, `7d`, `2w` as seconds; undefined when it is none of these. */
export function parseSeconds(text: string): number | undefined {
  const m = /^(\d{1,9})([smhdw]?)$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNITS[m[2] || 's']!;
}

/** A time parameter: milliseconds since the epoch, or an ISO 8601 / RFC 3339 date. */
export function parseTime(text: string): number | undefined {
  const t = text.trim();
  if (/^\d{1,16}$/.test(t)) return Number(t);
  if (!/^\d{4}-\d{2}-\d{2}/.test(t)) return undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Reads a query from URL parameters. `priority`, `rule`, `tag`, `hostname` and `source` may be
 * repeated (`rule=A&rule=B`); `priority` is also a comma-separated list. Values that cannot be
 * read are left out and described in `errors` when it is given (the server answers 400 with them).
 */
export function parseQuery(params: URLSearchParams, errors?: string[]): AlertQuery {
  const q: AlertQuery = {};
  const all = (k: string) =>
    params
      .getAll(k)
      .map((v) => v.slice(0, MAX_PARAM))
      .filter((v) => v !== '');
  const prio = all('priority')
    .flatMap((p) => p.split(','))
    .map((x) => x.trim())
    .filter((x) => x !== '')
    .map(canonicalPriority);
  if (prio.length) q.priority = [...new Set(prio)];
  for (const k of LISTS) {
    const list = [...new Set(all(k))];
    if (list.length > MAX_VALUES_PER_FILTER) errors?.push(`${k}: ${list.length} values, at most ${MAX_VALUES_PER_FILTER}`);
    if (list.length) q[k] = list.slice(0, MAX_VALUES_PER_FILTER);
  }
  for (const k of TEXTS) {
    const v = params.get(k);
    if (v !== null && v !== '') q[k] = v.slice(0, MAX_PARAM);
  }
  for (const k of ['from', 'to'] as const) {
    const v = params.get(k);
    if (v === null || v === '') continue;
    const t = parseTime(v);
    if (t === undefined) errors?.push(`${k}: found ${JSON.stringify(v.slice(0, 40))}, expected milliseconds since the epoch or an ISO 8601 date`);
    else q[k] = t;
  }
  const since = params.get('since');
  if (since !== null && since !== '') {
    const s = parseSeconds(since);
    if (s === undefined || s === 0) errors?.push(`since: found ${JSON.stringify(since.slice(0, 40))}, expected a duration such as 900, 15m, 1h, 7d`);
    else q.since = s;
  }
  const muted = params.get('muted');
  if (muted === 'hide' || muted === 'only') q.muted = muted;
  else if (muted !== null && muted !== '' && muted !== 'show') errors?.push(`muted: found ${JSON.stringify(muted.slice(0, 40))}, expected show, hide or only`);
  return q;
}

export function queryParams(q: AlertQuery): URLSearchParams {
  const params = new URLSearchParams();
  if (q.priority?.length) params.set('priority', q.priority.join(','));
  for (const k of LISTS) for (const v of q[k] ?? []) params.append(k, v);
  for (const k of TEXTS) {
    const v = q[k];
    if (v !== undefined && v !== '') params.set(k, v);
  }
  if (q.since !== undefined) params.set('since', String(q.since));
  if (q.from !== undefined) params.set('from', String(q.from));
  if (q.to !== undefined) params.set('to', String(q.to));
  if (q.muted) params.set('muted', q.muted);
  return params;
}

/** The query with `since` turned into `from` (the later of the two when both are set), at `now`. */
export function resolveQuery(q: AlertQuery, now: number): AlertQuery {
  if (q.since === undefined) return q;
  const { since, ...rest } = q;
  const from = now - since * 1000;
  return { ...rest, from: rest.from === undefined ? from : Math.max(rest.from, from) };
}

/** The text free-text search looks in. */
export function haystack(a: AlertSummary): string {
  return [a.rule, a.output, a.priority, a.tags.join(' '), a.namespace ?? '', a.user ?? '', a.hostname ?? ''].join('\n').toLowerCase();
}

export interface CompileOptions {
  text_of?: (a: AlertSummary) => string;
  /** The active mutes, for the `muted` filter. */
  mutes?: readonly Mute[];
  /** Clock for `since` (ms since the epoch). */
  now?: number;
}

/** Compiles a query once into a predicate over summaries. */
export function compileQuery(query: AlertQuery, opts: CompileOptions | ((a: AlertSummary) => string) = {}): (a: AlertSummary) => boolean {
  const o: CompileOptions = typeof opts === 'function' ? { text_of: opts } : opts;
  const textOf = o.text_of ?? haystack;
  const q = resolveQuery(query, o.now ?? Date.now());
  const set = (l: string[] | undefined) => (l?.length ? new Set(l) : undefined);
  const priorities = set(q.priority);
  const rules = set(q.rule);
  const tags = set(q.tag);
  const hosts = set(q.hostname);
  const sources = set(q.source);
  const text = q.q?.trim().toLowerCase();
  const { namespace, user, from, to, muted } = q;
  const mutes = o.mutes ?? [];
  return (a) =>
    (priorities === undefined || priorities.has(a.priority)) &&
    (rules === undefined || rules.has(a.rule)) &&
    (tags === undefined || a.tags.some((t) => tags.has(t))) &&
    (hosts === undefined || (a.hostname !== undefined && hosts.has(a.hostname))) &&
    (sources === undefined || sources.has(a.source)) &&
    (namespace === undefined || a.namespace === namespace) &&
    (user === undefined || a.user === user) &&
    (from === undefined || a.received >= from) &&
    (to === undefined || a.received < to) &&
    (muted === undefined || mutes.some((m) => muteMatches(m, a)) === (muted === 'only')) &&
    (!text || textOf(a).includes(text));
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
  values: { rules: string[]; tags: string[]; namespaces: string[]; users: string[]; hostnames?: string[]; sources?: string[] };
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

/**
 * The chart's counts per time bucket, by priority (most severe first) and by rule (the top
 * CHART_RULES rules of the window; the rest summed as OTHER_RULES). Both stores feed it: the
 * memory store one alert at a time, PostgreSQL with grouped counts.
 */
export class ChartSeries {
  readonly #priority = new Map<string, number[]>();
  readonly #rule = new Map<string, number[]>();
  readonly #ruleTotal = new Map<string, number>();

  constructor(readonly buckets: number) {}

  add(bucket: number, priority: string, rule: string, n = 1): void {
    if (bucket < 0 || bucket >= this.buckets) return;
    this.#bump(this.#priority, priority, bucket, n);
    this.#bump(this.#rule, rule, bucket, n);
    this.#ruleTotal.set(rule, (this.#ruleTotal.get(rule) ?? 0) + n);
  }

  result(): { byPriority: Record<string, number[]>; byRule: Record<string, number[]> } {
    const top = [...this.#ruleTotal.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const byRule: Record<string, number[]> = Object.create(null) as Record<string, number[]>;
    for (const [r] of top.slice(0, CHART_RULES)) byRule[r] = this.#rule.get(r)!;
    if (top.length > CHART_RULES) {
      const other = new Array<number>(this.buckets).fill(0);
      for (const [r] of top.slice(CHART_RULES))
        this.#rule.get(r)!.forEach((n, i) => {
          other[i]! += n;
        });
      byRule[OTHER_RULES] = other;
    }
    const byPriority: Record<string, number[]> = Object.create(null) as Record<string, number[]>;
    const priorities = [...this.#priority.keys()].sort((a, b) => priorityRank(a) - priorityRank(b) || (a < b ? -1 : 1));
    for (const p of priorities) byPriority[p] = this.#priority.get(p)!;
    return { byPriority, byRule };
  }

  #bump(map: Map<string, number[]>, key: string, i: number, n: number): void {
    let arr = map.get(key);
    if (!arr) map.set(key, (arr = new Array<number>(this.buckets).fill(0)));
    arr[i]! += n;
  }
}

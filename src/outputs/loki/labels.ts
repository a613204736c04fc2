/**
 * Stream labels: compiled once from `labels`, `label_keys` and `auto_kubernetes_labels` (Fluent
 * Bit's out_loki semantics), evaluated per event, made valid for Loki, and kept within Loki's
 * limits (15 label names per series; a bounded number of distinct streams per output).
 */
import { compileAccessor as compileRecordAccessor, valueToText } from '../../core/record-accessor.js';
import { compileAccessor, type Accessor, type PathPart } from './accessor.js';

export interface StaticLabel {
  kind: 'static';
  name: string;
  value: string;
}

export interface DynamicLabel {
  kind: 'dynamic';
  name: string;
  accessor: Accessor;
}

export type LabelTemplate = StaticLabel | DynamicLabel;

/** Loki's (Prometheus') label name rule. */
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Loki's default `max_label_names_per_series`. */
export const MAX_LABEL_NAMES = 15;
/** Loki's default `max_label_value_length`; longer values are a 400 for the whole push. */
export const MAX_LABEL_VALUE_LENGTH = 2048;

/**
 * Makes a name valid as Fluent Bit does (pack_label_key): every character outside
 * [A-Za-z0-9_] becomes `_`, and a leading digit gets a `_` prefix.
 */
export function sanitizeLabelName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

/** Valid UTF-8 (lone surrogates replaced) within Loki's value length. */
export function sanitizeLabelValue(v: string): string {
  // String#toWellFormed (Node 20) replaces lone surrogates, which are not encodable as UTF-8.
  const w = v as unknown as { isWellFormed(): boolean; toWellFormed(): string };
  const s = w.isWellFormed() ? v : w.toWellFormed();
  return s.length > MAX_LABEL_VALUE_LENGTH ? s.slice(0, MAX_LABEL_VALUE_LENGTH) : s;
}

/**
 * Splits a Fluent Bit comma-separated list, keeping commas inside `['...']` accessors. A YAML
 * sequence gives one item per element, each of which may itself hold a comma list.
 */
export function splitList(items: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (const item of items ?? []) {
    let depth = 0;
    let quote = '';
    let cur = '';
    for (const ch of item) {
      if (quote) {
        if (ch === quote) quote = '';
      } else if (ch === "'" || ch === '"') {
        if (depth > 0) quote = ch;
      } else if (ch === '[') depth++;
      else if (ch === ']') depth = Math.max(0, depth - 1);
      else if (ch === ',' && depth === 0) {
        if (cur.trim()) out.push(cur.trim());
        cur = '';
        continue;
      }
      cur += ch;
    }
    if (cur.trim()) out.push(cur.trim());
  }
  return out;
}

/** Parses one `labels` entry: `name=value`, `name=$accessor` or `$accessor`. */
export function parseLabelEntry(entry: string): LabelTemplate | string {
  if (entry.startsWith('$')) {
    const a = compileAccessor(entry);
    if (typeof a === 'string') return a;
    return { kind: 'dynamic', name: sanitizeLabelName(a.name), accessor: a };
  }
  const eq = entry.indexOf('=');
  if (eq <= 0) return `invalid key value pair '${entry}': expected name=value or $record_accessor`;
  const name = entry.slice(0, eq).trim();
  const value = entry.slice(eq + 1).trim();
  if (value === '') return `invalid key value pair '${entry}': empty value`;
  if (!LABEL_NAME.test(name)) return `invalid label name '${name}': Loki label names must match [a-zA-Z_][a-zA-Z0-9_]*`;
  if (value.startsWith('$')) {
    const a = compileAccessor(value);
    if (typeof a === 'string') return a;
    return { kind: 'dynamic', name, accessor: a };
  }
  return { kind: 'static', name, value: sanitizeLabelValue(value) };
}

const KUBERNETES_LABELS = compileRecordAccessor("$kubernetes['labels']");

export interface LabelResult {
  labels: Array<[string, string]>;
  /** Whether any label came from the record (it can be dropped when streams overflow). */
  dynamic: boolean;
  /** Label names beyond MAX_LABEL_NAMES that were left out. */
  dropped: number;
}

export class LabelSet {
  readonly staticLabels: Array<[string, string]>;

  constructor(
    readonly templates: readonly LabelTemplate[],
    private readonly autoKubernetes: boolean,
    private readonly defaultLabel: [string, string],
  ) {
    this.staticLabels = templates.filter((t): t is StaticLabel => t.kind === 'static').map((t) => [t.name, t.value]);
  }

  /** True when every event gets the same labels (one stream per tenant). */
  get constant(): boolean {
    return !this.autoKubernetes && this.templates.every((t) => t.kind === 'static');
  }

  /** Record paths that feed labels (Fluent Bit removes them from the line). */
  get paths(): Array<readonly PathPart[]> {
    return this.templates.filter((t): t is DynamicLabel => t.kind === 'dynamic').map((t) => t.accessor.path);
  }

  /** The event's labels sorted by name; the first writer of a name wins. */
  evaluate(record: Record<string, unknown>): LabelResult {
    const seen = new Set<string>();
    const labels: Array<[string, string]> = [];
    let dynamic = false;
    let dropped = 0;
    const add = (name: string, value: string, fromRecord: boolean) => {
      if (name === '' || value === '' || seen.has(name)) return;
      if (seen.size >= MAX_LABEL_NAMES) {
        dropped++;
        return;
      }
      seen.add(name);
      labels.push([name, sanitizeLabelValue(value)]);
      if (fromRecord) dynamic = true;
    };
    for (const t of this.templates) {
      if (t.kind === 'static') add(t.name, t.value, false);
      else {
        const v = valueToText(t.accessor.get(record));
        if (v !== undefined) add(t.name, v, true);
      }
    }
    if (this.autoKubernetes) {
      const map = KUBERNETES_LABELS.get(record);
      if (map && typeof map === 'object' && !Array.isArray(map)) {
        for (const [k, v] of Object.entries(map as Record<string, unknown>)) {
          if (typeof v === 'string') add(sanitizeLabelName(k), v, true);
        }
      }
    }
    if (labels.length === 0) labels.push(this.defaultLabel);
    labels.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return { labels, dynamic, dropped };
  }

  /** Labels of an event whose stream overflowed: the static ones (or the default). */
  fallback(): Array<[string, string]> {
    const l = this.staticLabels.length ? this.staticLabels.slice() : [this.defaultLabel];
    return l.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
}

/**
 * The distinct streams an output has written recently, bounded. Loki counts a stream as active
 * until it has been idle for a while, and refuses pushes (429 stream_limit) past
 * max_global_streams_per_user; a high-cardinality label would otherwise open a stream per value.
 */
export class StreamTracker {
  private readonly seen = new Map<string, number>();
  private lastSweep = 0;

  constructor(
    readonly max: number,
    /** Milliseconds after which an idle stream no longer counts. */
    readonly idleMs: number,
  ) {}

  get size(): number {
    return this.seen.size;
  }

  /** Records a use of `key`; false when it is a new stream and the set is full. */
  admit(key: string, now: number): boolean {
    if (this.seen.has(key)) {
      // Refresh recency: Map keeps insertion order, so the oldest entries stay at the front.
      this.seen.delete(key);
      this.seen.set(key, now);
      return true;
    }
    if (this.seen.size >= this.max) {
      this.sweep(now);
      if (this.seen.size >= this.max) return false;
    }
    this.seen.set(key, now);
    return true;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    for (const [k, t] of this.seen) {
      if (now - t < this.idleMs) break;
      this.seen.delete(k);
    }
  }
}

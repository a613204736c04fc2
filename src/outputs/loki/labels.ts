/**
 * Stream labels: compiled once from `labels`, `label_keys` and `auto_kubernetes_labels` (Fluent
 * Bit's out_loki semantics), evaluated per event, made valid for Loki, and kept within Loki's
 * limits (15 label names per series; a bounded number of distinct streams per output).
 */
import { compileAccessor as compileRecordAccessor, isMap, valueToText } from '../../core/record-accessor.js';
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

/** Names starting with `__` are reserved by Loki (and Prometheus) for internal labels. */
export function isReservedLabelName(name: string): boolean {
  return name.startsWith('__');
}

/** A scalar as Fluent Bit 5's record accessor translates it; binary data as lowercase hex. */
function scalarText(v: unknown): string | undefined {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  return valueToText(v);
}

/**
 * A record value as a label value. Strings, numbers, booleans, null, maps and binary data are
 * translated as Fluent Bit 5's record accessor translates them; a list of scalars is sorted and
 * joined with `,`, as falcosidekick sends Falco's `tags` (`tags="T1059,container,mitre_execution"`).
 * Returns `''` for an empty list, undefined when there is no value, and null for a value that
 * cannot be rendered (a list holding maps or lists).
 */
export function renderLabelValue(v: unknown): string | undefined | null {
  if (v === undefined) return undefined;
  if (Array.isArray(v)) {
    const parts: string[] = [];
    for (const x of v) {
      if (Array.isArray(x) || isMap(x)) return null;
      const t = scalarText(x);
      if (t === undefined) return null;
      parts.push(t);
    }
    return parts.sort().join(',');
  }
  const t = scalarText(v);
  return t === undefined ? null : t;
}

/** What kind of value `v` is, for a warning about a label that cannot be rendered. */
export function valueKind(v: unknown): string {
  if (Array.isArray(v)) return 'list of maps or lists';
  return typeof v;
}

/** Valid UTF-8 (lone surrogates replaced) within Loki's value length. */
export function sanitizeLabelValue(v: string): string {
  // String#toWellFormed (Node 20) replaces lone surrogates, which are not encodable as UTF-8.
  const s = v.isWellFormed() ? v : v.toWellFormed();
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
    const name = sanitizeLabelName(a.name);
    if (isReservedLabelName(name)) return `invalid label '${entry}': its name '${name}' starts with '__', which Loki reserves`;
    return { kind: 'dynamic', name, accessor: a };
  }
  const eq = entry.indexOf('=');
  if (eq <= 0) return `invalid key value pair '${entry}': expected name=value or $record_accessor`;
  const name = entry.slice(0, eq).trim();
  const value = entry.slice(eq + 1).trim();
  if (value === '') return `invalid key value pair '${entry}': empty value`;
  return labelTemplate(name, value);
}

/** A label named `name` whose value is `value` (static) or `$accessor`; an error message when invalid. */
export function labelTemplate(name: string, value: string): LabelTemplate | string {
  const bad = checkLabelName(name);
  if (bad) return bad;
  if (value.startsWith('$')) {
    const a = compileAccessor(value);
    if (typeof a === 'string') return a;
    return { kind: 'dynamic', name, accessor: a };
  }
  return { kind: 'static', name, value: sanitizeLabelValue(value) };
}

/** Why `name` cannot be a label name written in the configuration, or undefined. */
export function checkLabelName(name: string): string | undefined {
  if (!LABEL_NAME.test(name)) return `invalid label name '${name}': Loki label names must match [a-zA-Z_][a-zA-Z0-9_]*`;
  if (isReservedLabelName(name)) return `invalid label name '${name}': names starting with '__' are reserved by Loki`;
  return undefined;
}

/**
 * Fluent Bit's `label_map_path` document: a JSON map whose leaves are label names and whose key
 * paths are where the values are in the record. `{"kubernetes": {"pod_name": "pod"}}` is the label
 * `pod=$kubernetes['pod_name']`. Returns the labels in document order, or an error message.
 */
export function labelMapTemplates(doc: unknown): LabelTemplate[] | string {
  if (!isMap(doc)) return 'the label map must be a JSON object';
  const out: LabelTemplate[] = [];
  const walk = (node: Record<string, unknown>, path: string[]): string | undefined => {
    for (const [k, v] of Object.entries(node)) {
      const p = [...path, k];
      if (k.includes("'")) return `key ${JSON.stringify(k)}: a quote cannot be part of a record accessor key`;
      if (typeof v === 'string') {
        const t = labelTemplate(
          v,
          `$${p[0]}${p
            .slice(1)
            .map((x) => `['${x}']`)
            .join('')}`,
        );
        if (typeof t === 'string') return `at ${p.join('.')}: ${t}`;
        out.push(t);
      } else if (isMap(v)) {
        const bad = walk(v, p);
        if (bad) return bad;
      } else return `at ${p.join('.')}: expected a label name (string) or a map, found ${Array.isArray(v) ? 'a list' : JSON.stringify(v)}`;
    }
    return undefined;
  };
  return walk(doc, []) ?? out;
}

const KUBERNETES_LABELS = compileRecordAccessor("$kubernetes['labels']");

export interface LabelResult {
  labels: Array<[string, string]>;
  /** Whether any label came from the record (it can be dropped when streams overflow). */
  dynamic: boolean;
  /** Label names beyond MAX_LABEL_NAMES that were left out. */
  dropped: number;
  /** Labels left out because their value could not be rendered or their name is reserved. */
  skipped?: SkippedLabel[];
}

export interface SkippedLabel {
  name: string;
  reason: 'unrenderable' | 'reserved';
  /** What the value was (unrenderable) or the name as found in the record (reserved). */
  detail: string;
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

  /** Whether labels come from `$kubernetes['labels']` too (auto_kubernetes_labels). */
  get readsKubernetes(): boolean {
    return this.autoKubernetes;
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
    let skipped: SkippedLabel[] | undefined;
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
        const raw = t.accessor.get(record);
        const v = renderLabelValue(raw);
        if (v === null) (skipped ??= []).push({ name: t.name, reason: 'unrenderable', detail: valueKind(raw) });
        else if (v !== undefined) add(t.name, v, true);
      }
    }
    if (this.autoKubernetes) {
      const map = KUBERNETES_LABELS.get(record);
      if (isMap(map)) {
        for (const [k, v] of Object.entries(map)) {
          if (typeof v !== 'string') continue;
          const name = sanitizeLabelName(k);
          // `__proto__`, `__name__`...: Loki reserves double-underscore names.
          if (isReservedLabelName(name)) (skipped ??= []).push({ name, reason: 'reserved', detail: k });
          else add(name, v, true);
        }
      }
    }
    if (labels.length === 0) labels.push(this.defaultLabel);
    labels.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return skipped ? { labels, dynamic, dropped, skipped } : { labels, dynamic, dropped };
  }

  /** Labels of an event whose stream overflowed: the static ones (or the default). */
  fallback(): Array<[string, string]> {
    const l = this.staticLabels.length ? this.staticLabels.slice() : [this.defaultLabel];
    return l.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
}

/**
 * Rate-limits warnings about labels left out: at most one per label name and reason every
 * `everyMs`, for a bounded number of names (names come from records with auto_kubernetes_labels).
 */
export class LabelWarnings {
  private readonly last = new Map<string, number>();

  constructor(
    readonly everyMs = 60_000,
    readonly maxNames = 1000,
  ) {}

  /** True when a warning about `name` / `reason` should be logged now. */
  shouldWarn(name: string, reason: string, now: number): boolean {
    let key = `${reason}\0${name}`;
    if (!this.last.has(key) && this.last.size >= this.maxNames) key = `${reason}\0*`;
    const t = this.last.get(key);
    if (t !== undefined && now - t < this.everyMs) return false;
    this.last.set(key, now);
    return true;
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

declare global {
  // ES2024 (Node 20); the project's lib is ES2022.
  interface String {
    isWellFormed(): boolean;
    toWellFormed(): string;
  }
}

/**
 * lookup: enriches records from a CSV or YAML table keyed by a record field (user → team,
 * namespace → owner). A superset of Fluent Bit's lookup filter (file, lookup_key, result_key,
 * ignore_case over a two-column CSV): wider tables, YAML tables, a default, and reloading the
 * table when its file changes.
 *
 * A record still in msgpack bytes is not decoded: the lookup key is read through the record view
 * and the result is recorded as `put` edits (written into the bytes with the other pending edits,
 * src/core/record-view.ts), the same record the decoded path builds: result_key (or the value
 * column) set in its place when the record has it, at the end otherwise; without result_key
 * the row's fields set the same way, in the row's order. A record no row matches (and no
 * default) passes as it came. A result with a key that looks like an array index (`7`) is
 * applied to the decoded record instead: an object lists such keys first, the bytes where
 * they are put.
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConfigError } from '../../config/errors.js';
import type { OptionTable, RawSection } from '../../config/schema.js';
import type { LogEvent, LogRecord } from '../../core/event.js';
import { definePlugin, type FilterInstance, type PluginConfig } from '../../core/plugin.js';
import { compileAccessor, setField, type RecordAccessor } from '../../core/record-accessor.js';
import { readAccessor, viewable } from '../../core/record-read.js';
import { WireEvent } from '../../core/wire-event.js';
import { formatOf, parseTable, TableError, type LookupTable, type TableFormat } from './table.js';

export type LookupConfig = PluginConfig<'filter', typeof options>;

/** Changes closer together than this are read once (an editor's or a ConfigMap's several writes). */
const RELOAD_DEBOUNCE_MS = 100;

const posOf = (section: RawSection, key: string) => section.valuePos[key] ?? section.keyPos[key] ?? section.pos;

function isFields(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Why a table cannot be used with these options, or undefined. */
function shapeProblem(table: LookupTable, format: TableFormat, config: LookupConfig): string | undefined {
  if (config.result_key === undefined && table.scalar && table.valueColumn === undefined && table.rows.size > 0) {
    return `this ${format.toUpperCase()} table maps each key to one value, which has no field name: set result_key`;
  }
  return undefined;
}

interface Loaded {
  path: string;
  format: TableFormat;
  table: LookupTable;
  /** The file's identity when it was read (taken before reading: a later write is seen as a change). */
  version: string;
}

/** What tells one version of the table file from another. */
function versionOf(st: Stats | null): string {
  return st ? `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}` : 'missing';
}

/** Reads the table at load time; every problem is a ConfigError with a position. */
function loadTable(config: LookupConfig, section: RawSection): Loaded {
  const path = resolve(section.baseDir, config.file);
  const format = formatOf(path);
  if (format === null) throw new ConfigError(`cannot tell the table format of ${path}: expected a .csv, .yaml or .yml file`, posOf(section, 'file'), 'file');
  let text: string;
  let version: string;
  try {
    version = versionOf(statSync(path));
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read lookup table ${path}: ${(e as Error).message}`, posOf(section, 'file'), 'file');
  }
  let table: LookupTable;
  try {
    table = parseTable(text, { format, keyColumn: config.key_column, ignoreCase: config.ignore_case });
  } catch (e) {
    if (!(e instanceof TableError)) throw e;
    if (e.option) throw new ConfigError(`${e.message} (in ${path})`, posOf(section, e.option), e.option);
    throw new ConfigError(e.message, { file: path, line: e.line ?? 1, col: e.col ?? 1 }, 'file');
  }
  const problem = shapeProblem(table, format, config);
  if (problem) throw new ConfigError(`${problem} (table ${path})`, posOf(section, 'file'), 'file');
  return { path, format, table, version };
}

function checkOptions(config: LookupConfig, section: RawSection): RecordAccessor {
  let accessor: RecordAccessor;
  try {
    accessor = compileAccessor(config.lookup_key);
  } catch (e) {
    throw new ConfigError(`invalid record accessor ${JSON.stringify(config.lookup_key)}: ${(e as Error).message}`, posOf(section, 'lookup_key'), 'lookup_key');
  }
  if (config.result_key === undefined && config.default !== undefined && !isFields(config.default)) {
    throw new ConfigError('without result_key the default is merged into the record, so it must be a map of fields (or set result_key)', posOf(section, 'default'), 'default');
  }
  if (config.result_key === '') throw new ConfigError('found "", expected a key name', posOf(section, 'result_key'), 'result_key');
  return accessor;
}

/** A key an object lists before the others (an array index in canonical decimal). */
const INDEX = /^(0|[1-9][0-9]*)$/;

const hasOwn = (o: object, k: string) => Object.hasOwn(o, k);

/**
 * Object.assign, except that a `__proto__` key of `src` stays data (Object.assign would set the
 * target's prototype). Object.assign rather than spread: `{ ...a, ...b }` or `{ ...a, [k]: v }`
 * takes V8's generic path, measured 10-20x slower per record.
 */
function assignData(target: LogRecord, src: Record<string, unknown>): LogRecord {
  if (!hasOwn(src, '__proto__')) return Object.assign(target, src);
  for (const k of Object.keys(src)) {
    setField(target, k, src[k]);
  }
  return target;
}

/** A copy of `record` with `fields` set on it; the input record is not changed. */
function withFields(record: LogRecord, fields: Record<string, unknown>): LogRecord {
  return assignData(assignData({}, record), fields);
}

/** A copy of `record` with `key` set to `value`. */
function withKey(record: LogRecord, key: string, value: unknown): LogRecord {
  const out = assignData({}, record);
  setField(out, key, value);
  return out;
}

const options = {
  file: { type: 'string', required: true, description: 'Table file: .csv (header row, key column, value columns) or .yaml/.yml, relative to the config file' },
  lookup_key: { type: 'string', required: true, description: "Record accessor of the value to look up, e.g. $user['username'] (a plain name is a top-level key)" },
  key_column: { type: 'string', description: 'CSV column / YAML row field holding the key (default: the first column)' },
  result_key: {
    type: 'string',
    description: "Key the result is written under (one value, or a map of the row's other columns); unset: the row's other columns are merged into the record",
  },
  default: { type: 'any', description: 'Result when no row matches (a value under result_key, or a map of fields to merge); unset: the record is left as is' },
  ignore_case: { type: 'bool', default: false, description: 'Match keys case-insensitively' },
  reload_interval: {
    type: 'duration',
    default: 5,
    description: 'How often the table file is checked for changes, reloaded when it changed (0: never reload)',
  },
} as const satisfies OptionTable;

export const lookup = definePlugin({
  kind: 'filter',
  name: 'lookup',
  description: 'Adds fields from a CSV or YAML table keyed by a record field (user -> team, namespace -> owner); reloads the table when it changes',
  options,
  /** The table is read when the plan is made; the instance starts from it and reloads it when it changes. */
  prepare: (config, section) => ({ config, accessor: checkOptions(config, section), loaded: loadTable(config, section) }),
  create({ config, accessor, loaded }, ctx): FilterInstance {
    let table = loaded.table;
    const { path, format } = loaded;
    const resultKey = config.result_key;
    const ignoreCase = config.ignore_case;
    const fallback = config.default;

    const recordsMetric = ctx.metrics.counter('logwarden_lookup_records_total', 'Records through a lookup filter by result: found, default, not_found', ['name', 'result']);
    const found = recordsMetric.labels({ name: ctx.id, result: 'found' });
    const defaulted = recordsMetric.labels({ name: ctx.id, result: 'default' });
    const notFound = recordsMetric.labels({ name: ctx.id, result: 'not_found' });
    const reloads = ctx.metrics.counter('logwarden_lookup_reloads_total', 'Reloads of a lookup table by result: ok, failed (the previous table stays)', ['name', 'result']);
    const rowsGauge = ctx.metrics.gauge('logwarden_lookup_table_rows', 'Rows in the lookup table in use', ['name']).labels({ name: ctx.id });
    rowsGauge.set(table.rows.size);

    const reportDuplicates = (t: LookupTable) => {
      if (t.duplicates.count) {
        ctx.logger.warn({ file: path, duplicates: t.duplicates.count, first: t.duplicates.first }, `lookup table has ${t.duplicates.count} duplicate key(s); the first row of each key is used`);
      }
    };
    reportDuplicates(table);

    /** The record with `result` applied. */
    const apply = (record: LogRecord, result: unknown): LogRecord => {
      if (resultKey !== undefined) return withKey(record, resultKey, isFields(result) ? assignData({}, result) : result);
      if (table.scalar && table.valueColumn !== undefined && !isFields(result)) return withKey(record, table.valueColumn, result);
      return withFields(record, result as Record<string, unknown>);
    };

    /**
     * `result` recorded as edits on a record still in bytes: what `apply` (with `fields`, what
     * withFields) does to the decoded record, key by key (setField on a copy: an existing key
     * keeps its place, a new one goes to the end). False, and nothing recorded, when a key to
     * set looks like an array index: an object lists those first, the bytes where they are put.
     */
    const put = (e: WireEvent, key: string, value: unknown) => e.edit({ op: 'put', key, value, move: false });
    const merge = (e: WireEvent, fields: Record<string, unknown>): boolean => {
      const keys = Object.keys(fields);
      for (const k of keys) if (INDEX.test(k)) return false;
      for (const k of keys) put(e, k, fields[k]);
      return true;
    };
    const one = (e: WireEvent, key: string, value: unknown): boolean => {
      if (INDEX.test(key)) return false;
      put(e, key, value);
      return true;
    };
    const edits = (e: WireEvent, result: unknown, fields: boolean): boolean => {
      if (fields) return merge(e, result as Record<string, unknown>);
      if (resultKey !== undefined) return one(e, resultKey, isFields(result) ? assignData({}, result) : result);
      if (table.scalar && table.valueColumn !== undefined && !isFields(result)) return one(e, table.valueColumn, result);
      return merge(e, result as Record<string, unknown>);
    };
    const byView = viewable(accessor);

    let timer: NodeJS.Timeout | undefined;
    let reloading = false;
    let again = false;
    let closed = false;
    const reload = async (): Promise<void> => {
      if (reloading) {
        again = true;
        return;
      }
      reloading = true;
      try {
        let next: LookupTable;
        try {
          const text = await readFile(path, 'utf8');
          next = parseTable(text, { format, keyColumn: config.key_column, ignoreCase });
          const problem = shapeProblem(next, format, config);
          if (problem) throw new TableError(problem);
        } catch (e) {
          const where = e instanceof TableError && e.line !== undefined ? `${path}:${e.line}${e.col !== undefined ? `:${e.col}` : ''}` : path;
          reloads.labels({ name: ctx.id, result: 'failed' }).inc();
          ctx.logger.warn({ file: path, err: (e as Error).message, rows: table.rows.size }, `cannot reload lookup table ${where}: ${(e as Error).message}; keeping the previous table`);
          return;
        }
        if (closed) return;
        table = next;
        rowsGauge.set(table.rows.size);
        reloads.labels({ name: ctx.id, result: 'ok' }).inc();
        ctx.logger.info({ file: path, rows: table.rows.size }, 'lookup table reloaded');
        reportDuplicates(table);
      } finally {
        reloading = false;
        if (again && !closed) {
          again = false;
          void reload();
        }
      }
    };
    // Polling the file's stat rather than fs.watch: it follows a file replaced by rename
    // (editors, atomic writes) or through a symlink swap (Kubernetes ConfigMap volumes), and
    // sees a file that disappears and comes back. The version read at load time is the
    // baseline, so a write right after loading is not missed.
    let version = loaded.version;
    let polling = false;
    const poll = async () => {
      if (polling) return;
      polling = true;
      try {
        const now = versionOf(await stat(path).catch(() => null));
        if (now === version || closed) return;
        version = now;
        clearTimeout(timer);
        timer = setTimeout(() => void reload(), RELOAD_DEBOUNCE_MS);
        timer.unref();
      } finally {
        polling = false;
      }
    };
    const interval = config.reload_interval > 0 ? setInterval(() => void poll(), Math.max(10, Math.round(config.reload_interval * 1000))) : undefined;
    interval?.unref();

    return {
      filter(events) {
        const out: LogEvent[] = new Array(events.length);
        let hits = 0;
        let defaults = 0;
        let misses = 0;
        for (let i = 0; i < events.length; i++) {
          const e = events[i]!;
          const v = readAccessor(e, accessor, byView);
          let key: string | null = null;
          if (typeof v === 'string') key = v;
          else if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') key = String(v);
          const result = key === null ? undefined : table.rows.get(ignoreCase ? key.toLowerCase() : key);
          const bytes = e instanceof WireEvent && e.isBytes;
          if (result !== undefined) {
            hits++;
            if (bytes && edits(e, result, false)) out[i] = e;
            else out[i] = { ...e, record: apply(e.record, result) };
          } else if (fallback !== undefined) {
            defaults++;
            if (bytes && edits(e, fallback, resultKey === undefined)) out[i] = e;
            else out[i] = { ...e, record: resultKey !== undefined ? apply(e.record, fallback) : withFields(e.record, fallback as Record<string, unknown>) };
          } else {
            misses++;
            out[i] = e;
          }
        }
        if (hits) found.inc(hits);
        if (defaults) defaulted.inc(defaults);
        if (misses) notFound.inc(misses);
        return out;
      },
      close() {
        closed = true;
        clearTimeout(timer);
        clearInterval(interval);
      },
    };
  },
});

export default lookup;

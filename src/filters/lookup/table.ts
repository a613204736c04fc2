/**
 * Lookup tables: a CSV file (header row, then one row per key) or a YAML file (a map from key to
 * value or to a map of fields, or a list of row maps), read into a Map from key to result.
 */
import { parse as parseCsv, type Options as CsvOptions } from 'csv-parse/sync';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair } from 'yaml';
import { setField } from '../../core/record-accessor.js';

export type TableFormat = 'csv' | 'yaml';

export interface LookupTable {
  /** Key (lower-cased with ignore_case) to result: one value, or a map of fields. */
  rows: Map<string, unknown>;
  /**
   * Each result is one value (a two-column CSV, as Fluent Bit's lookup filter reads it, or a
   * YAML map of scalars) rather than a map of fields.
   */
  scalar: boolean;
  /** For a two-column CSV: the header of the value column (the field name when merged). */
  valueColumn?: string;
  /** Rows whose key was already in the table (the first row wins), with the first one's line. */
  duplicates: { count: number; first?: { key: string; line: number } };
}

/** A problem in a table file, at a 1-based line and column of that file when known. */
export class TableError extends Error {
  constructor(
    message: string,
    readonly line?: number,
    readonly col?: number,
    /** The option the problem is about, when it is one (key_column). */
    readonly option?: string,
  ) {
    super(message);
    this.name = 'TableError';
  }
}

export interface TableOptions {
  format: TableFormat;
  keyColumn?: string;
  ignoreCase: boolean;
}

export function formatOf(path: string): TableFormat | null {
  const lower = path.toLowerCase();
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return 'yaml';
  return null;
}

class Builder {
  readonly rows = new Map<string, unknown>();
  readonly duplicates: LookupTable['duplicates'] = { count: 0 };
  constructor(private readonly ignoreCase: boolean) {}
  add(key: string, result: unknown, line: number): void {
    const k = this.ignoreCase ? key.toLowerCase() : key;
    if (this.rows.has(k)) {
      this.duplicates.count++;
      this.duplicates.first ??= { key, line };
      return;
    }
    this.rows.set(k, result);
  }
}

/** csv-parse with `info: true` returns each record with its info (its typings leave that overload out). */
const parseCsvWithInfo = parseCsv as (input: string, options: CsvOptions & { info: true }) => Array<{ record: string[]; info: { lines: number } }>;

function readCsv(text: string, opts: TableOptions): LookupTable {
  let records: Array<{ record: string[]; info: { lines: number } }>;
  try {
    records = parseCsvWithInfo(text, { bom: true, skip_empty_lines: true, info: true });
  } catch (e) {
    const err = e as Error & { lines?: number };
    throw new TableError(`malformed CSV: ${err.message}`, err.lines);
  }
  if (records.length === 0) throw new TableError('the CSV file is empty; expected a header row (key column, value columns) and rows', 1, 1);
  const header = records[0]!.record;
  const seen = new Set<string>();
  header.forEach((name, i) => {
    if (name === '') throw new TableError(`column ${i + 1} of the header row has no name`, 1);
    if (seen.has(name)) throw new TableError(`column name ${JSON.stringify(name)} appears twice in the header row`, 1);
    seen.add(name);
  });
  if (header.length < 2) throw new TableError('a lookup table needs at least two columns: the key and one or more values', 1);
  let keyIndex = 0;
  if (opts.keyColumn !== undefined) {
    keyIndex = header.indexOf(opts.keyColumn);
    if (keyIndex < 0) throw new TableError(`no column ${JSON.stringify(opts.keyColumn)} in the header row (${header.join(', ')})`, 1, undefined, 'key_column');
  }
  const scalar = header.length === 2;
  const valueIndex = keyIndex === 0 ? 1 : 0;
  const b = new Builder(opts.ignoreCase);
  for (let r = 1; r < records.length; r++) {
    const { record, info } = records[r]!;
    if (scalar) {
      b.add(record[keyIndex]!, record[valueIndex]!, info.lines);
      continue;
    }
    const fields: Record<string, unknown> = {};
    for (let c = 0; c < header.length; c++) if (c !== keyIndex) setField(fields, header[c]!, record[c]);
    b.add(record[keyIndex]!, fields, info.lines);
  }
  return { rows: b.rows, scalar, ...(scalar ? { valueColumn: header[valueIndex]! } : {}), duplicates: b.duplicates };
}

function keyText(node: Node | null | undefined): string | null {
  if (!isScalar(node)) return null;
  const v = node.value;
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? String(v) : null;
}

function readYaml(text: string, opts: TableOptions): LookupTable {
  const lines = new LineCounter();
  const at = (node: Node | null | undefined) => lines.linePos(node?.range?.[0] ?? 0);
  const fail = (node: Node | null | undefined, message: string, option?: string): never => {
    const { line, col } = at(node);
    throw new TableError(message, line, col, option);
  };
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length) {
    const { line, col } = lines.linePos(doc.errors[0]!.pos[0]);
    throw new TableError(`YAML syntax error: ${doc.errors[0]!.message.split('\n')[0]}`, line, col);
  }
  const root = doc.contents as Node | null;
  const b = new Builder(opts.ignoreCase);
  if (isMap(root)) {
    if (opts.keyColumn !== undefined) {
      fail(root, 'key_column applies to CSV tables and YAML lists of rows; this YAML table is a map whose keys are the lookup keys', 'key_column');
    }
    let scalar: boolean | null = null;
    for (const pair of root.items as Pair<Node, Node>[]) {
      const key = keyText(pair.key);
      if (key === null) fail(pair.key, 'a lookup key must be a string or a number');
      const value = pair.value;
      const isFields = isMap(value);
      if (scalar === null) scalar = !isFields;
      else if (scalar === isFields) {
        fail(value ?? pair.key, 'mixed entries: either every key maps to one value, or every key maps to a map of fields');
      }
      if (isSeq(value)) fail(value, 'expected one value or a map of fields, found a list');
      b.add(key!, value == null ? null : value.toJS(doc), at(pair.key).line);
    }
    return { rows: b.rows, scalar: scalar ?? true, duplicates: b.duplicates };
  }
  if (isSeq(root)) {
    let keyColumn = opts.keyColumn;
    for (const item of root.items as Node[]) {
      const pairs = isMap(item) ? (item.items as Pair<Node, Node>[]) : fail(item, 'each row of a YAML list table must be a map of fields');
      if (keyColumn === undefined) {
        const first = keyText(pairs[0]?.key);
        if (first === null) fail(item, 'the first row has no field to use as the key (set key_column)');
        keyColumn = first!;
      }
      const keyPair = pairs.find((p) => keyText(p.key) === keyColumn);
      if (!keyPair) fail(item, `row has no ${JSON.stringify(keyColumn)} field (the key column)`);
      const key = keyText(keyPair!.value);
      if (key === null) fail(keyPair!.value ?? keyPair!.key, `the key field ${JSON.stringify(keyColumn)} must be a string or a number`);
      const fields: Record<string, unknown> = {};
      for (const p of pairs) {
        const name = keyText(p.key);
        if (name === null) fail(p.key, 'a field name must be a string or a number');
        if (name !== keyColumn) setField(fields, name!, p.value == null ? null : (p.value as Node).toJS(doc));
      }
      b.add(key!, fields, at(item).line);
    }
    return { rows: b.rows, scalar: false, duplicates: b.duplicates };
  }
  if (root == null || (isScalar(root) && root.value === null)) {
    // Also what a reader sees while the file is being rewritten: never taken as "no rows".
    return fail(root, 'the YAML table is empty; expected a map (key: value or key: {fields}) or a list of row maps');
  }
  return fail(root, 'expected a map (key: value or key: {fields}) or a list of row maps');
}

/** Parses a table; throws TableError. */
export function parseTable(text: string, opts: TableOptions): LookupTable {
  return opts.format === 'csv' ? readCsv(text, opts) : readYaml(text, opts);
}

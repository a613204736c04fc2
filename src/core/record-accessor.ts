/**
 * Fluent Bit's record accessor: `$key`, `$key['sub']['deeper']`, `$key['list'][0]`, compiled
 * once into an object that reads, writes or deletes that place in a record; and record accessor
 * templates (`prefix.$TAG[1].$kubernetes['namespace_name'].$0`) that render a string from a tag,
 * a record and regex captures (rewrite_tag's new tag, Loki labels).
 *
 * Syntax (src/record_accessor/ra.l and ra.y in Fluent Bit): a key is `$` then an identifier
 * `[_A-Za-z][A-Za-z0-9_.-]*` (Fluent Bit allows no `-`; logwarden does, for keys such as
 * `$user-agent`); each sub-key is `['name']` (a `'` inside is written `''`; `["name"]` is also
 * accepted) or `[N]`, an array index. A key never contains `['`: the record `{"a.b": 1}` is
 * `$a.b`, the nested record `{"a": {"b": 1}}` is `$a['b']`.
 *
 * Records are data from the network: they may hold a `__proto__` key. Writes go through
 * `setField`, which defines the property instead of assigning it.
 */

import { RawMsgpack, decode } from './msgpack.js';

export type PathPart = string | number;

/** Defines `obj[key] = value` as an own data property, even when key is `__proto__`. */
export function setField(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

export function hasField(obj: object, key: string): boolean {
  return Object.hasOwn(obj, key);
}

export function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** `map[key]`; a value kept as msgpack bytes is decoded and put in its place first, to be changed. */
function step(map: Record<string, unknown>, key: string): unknown {
  const v = map[key];
  if (!(v instanceof RawMsgpack)) return v;
  const value = decode(v.bytes); // its own copy: the RawMsgpack may be shared by a cloned record
  setField(map, key, value);
  return value;
}

export class AccessorSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AccessorSyntaxError';
  }
}

/** A compiled accessor: one place in a record. */
export class RecordAccessor {
  constructor(
    /** The text it was compiled from. */
    readonly pattern: string,
    /** Top-level key followed by sub-keys (strings) and array indexes (numbers). */
    readonly path: readonly PathPart[],
  ) {}

  /** The top-level key. */
  get key(): string {
    return this.path[0] as string;
  }

  /** The value at this place, or undefined when a step is missing (Fluent Bit: the operation is omitted). */
  get(record: Record<string, unknown>): unknown {
    let cur: unknown = record;
    for (const part of this.path) {
      if (typeof part === 'number') {
        if (!Array.isArray(cur) || part >= cur.length) return undefined;
        cur = cur[part];
      } else {
        if (!isMap(cur) || !hasField(cur, part)) return undefined;
        cur = cur[part];
        if (cur instanceof RawMsgpack) cur = cur.value;
      }
    }
    return cur;
  }

  has(record: Record<string, unknown>): boolean {
    return this.get(record) !== undefined;
  }

  /**
   * Sets the value, creating missing maps on the way. Returns false (and changes nothing) when a
   * step is not a map / array, or an index is out of range.
   */
  set(record: Record<string, unknown>, value: unknown): boolean {
    let cur: unknown = record;
    const last = this.path.length - 1;
    for (let i = 0; i < last; i++) {
      const part = this.path[i]!;
      if (typeof part === 'number') {
        if (!Array.isArray(cur) || part >= cur.length) return false;
        cur = cur[part];
        continue;
      }
      if (!isMap(cur)) return false;
      if (!hasField(cur, part)) {
        if (typeof this.path[i + 1] === 'number') return false;
        setField(cur, part, Object.create(null));
      }
      cur = step(cur, part);
    }
    const end = this.path[last]!;
    if (typeof end === 'number') {
      if (!Array.isArray(cur) || end >= cur.length) return false;
      cur[end] = value;
      return true;
    }
    if (!isMap(cur)) return false;
    setField(cur, end, value);
    return true;
  }

  /** Deletes the value; returns whether something was deleted. Array elements are removed (splice). */
  delete(record: Record<string, unknown>): boolean {
    let cur: unknown = record;
    const last = this.path.length - 1;
    for (let i = 0; i < last; i++) {
      const part = this.path[i]!;
      if (typeof part === 'number') {
        if (!Array.isArray(cur) || part >= cur.length) return false;
        cur = cur[part];
      } else {
        if (!isMap(cur) || !hasField(cur, part)) return false;
        cur = step(cur, part);
      }
    }
    const end = this.path[last]!;
    if (typeof end === 'number') {
      if (!Array.isArray(cur) || end >= cur.length) return false;
      cur.splice(end, 1);
      return true;
    }
    if (!isMap(cur) || !hasField(cur, end)) return false;
    delete cur[end];
    return true;
  }
}

const IDENT = /[_A-Za-z][A-Za-z0-9_.-]*/y;

/** Parses `[...]` sub-keys starting at `pos`; returns the parts and the position after them. */
function parseSubkeys(text: string, pos: number): { parts: PathPart[]; end: number } {
  const parts: PathPart[] = [];
  let i = pos;
  while (text[i] === '[') {
    const q = text[i + 1];
    if (q === "'" || q === '"') {
      let j = i + 2;
      let s = '';
      for (;;) {
        if (j >= text.length) throw new AccessorSyntaxError(`unterminated sub-key at offset ${i} in '${text}'`);
        if (text[j] === q) {
          if (text[j + 1] === q) {
            s += q;
            j += 2;
            continue;
          }
          break;
        }
        s += text[j];
        j++;
      }
      if (text[j + 1] !== ']') throw new AccessorSyntaxError(`expected ] after the sub-key at offset ${j + 1} in '${text}'`);
      parts.push(s);
      i = j + 2;
    } else {
      const m = /^\[(0|[1-9][0-9]*)\]/.exec(text.slice(i, i + 24));
      if (!m) throw new AccessorSyntaxError(`expected ['name'] or [index] at offset ${i} in '${text}'`);
      parts.push(Number(m[1]));
      i += m[0].length;
    }
  }
  return { parts, end: i };
}

export interface AccessorOptions {
  /**
   * Without `$`, take the text as one literal top-level key (Fluent Bit does so for modify's
   * conditions and grep's keys). Default true.
   */
  allowLiteral?: boolean;
}

/** Compiles `$key['sub'][0]` (or, with allowLiteral, a plain key name). */
export function compileAccessor(text: string, options: AccessorOptions = {}): RecordAccessor {
  const t = text.trim();
  if (!t.startsWith('$')) {
    if (options.allowLiteral === false) throw new AccessorSyntaxError(`a record accessor starts with $ (e.g. $log or $kubernetes['labels']['app']), found '${text}'`);
    if (t === '') throw new AccessorSyntaxError('empty key');
    return new RecordAccessor(text, [t]);
  }
  IDENT.lastIndex = 1;
  const m = IDENT.exec(t);
  if (!m) throw new AccessorSyntaxError(`expected a key name after $ in '${text}' (letters, digits, _ . -, not starting with a digit)`);
  const { parts, end } = parseSubkeys(t, 1 + m[0].length);
  if (end !== t.length) throw new AccessorSyntaxError(`unexpected '${t.slice(end)}' at offset ${end} in '${text}'`);
  return new RecordAccessor(text, [m[0], ...parts]);
}

/**
 * Fluent Bit's record accessor translation of a value into text (flb_ra_translate): strings as
 * they are, integers in decimal, other numbers with six decimals (printf %f), booleans
 * true/false, null as `null`, maps as JSON; arrays and missing values give nothing.
 */
export function valueToText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(6);
  if (typeof v === 'bigint') return String(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (v === null) return 'null';
  if (isMap(v)) return JSON.stringify(v);
  return undefined;
}

type Part = { kind: 'text'; text: string } | { kind: 'key'; accessor: RecordAccessor } | { kind: 'tag' } | { kind: 'tagPart'; index: number } | { kind: 'capture'; index: number };

/** A compiled record accessor template. */
export class Template {
  constructor(
    readonly pattern: string,
    private readonly parts: readonly Part[],
  ) {}

  /** True when the template uses no record key and no capture (its value depends on the tag at most). */
  get isStatic(): boolean {
    return this.parts.every((p) => p.kind === 'text' || p.kind === 'tag' || p.kind === 'tagPart');
  }

  /** The record keys the template reads. */
  get accessors(): RecordAccessor[] {
    return this.parts.flatMap((p) => (p.kind === 'key' ? [p.accessor] : []));
  }

  /**
   * Renders the template. A missing key renders as nothing; with `strict`, a missing key makes
   * the result undefined (Fluent Bit's flb_ra_translate_check).
   */
  render(tag: string, record: Record<string, unknown>, captures?: ArrayLike<string | undefined> | null, strict = false): string | undefined {
    return this.build(tag, record, undefined, captures, strict);
  }

  /**
   * Renders the template with the record's values given by `read` (for instance through a view
   * over the record's msgpack bytes) instead of read from an object; otherwise as `render`.
   */
  renderWith(tag: string, read: (accessor: RecordAccessor) => unknown, captures?: ArrayLike<string | undefined> | null, strict = false): string | undefined {
    return this.build(tag, undefined, read, captures, strict);
  }

  private build(
    tag: string,
    record: Record<string, unknown> | undefined,
    read: ((accessor: RecordAccessor) => unknown) | undefined,
    captures: ArrayLike<string | undefined> | null | undefined,
    strict: boolean,
  ): string | undefined {
    let out = '';
    for (const p of this.parts) {
      switch (p.kind) {
        case 'text':
          out += p.text;
          break;
        case 'tag':
          out += tag;
          break;
        case 'tagPart': {
          const s = tag.split('.')[p.index];
          if (s !== undefined) out += s;
          break;
        }
        case 'capture': {
          const s = captures?.[p.index];
          if (s !== undefined && s !== null) out += s;
          break;
        }
        case 'key': {
          const s = valueToText(read !== undefined ? read(p.accessor) : p.accessor.get(record!));
          if (s === undefined) {
            if (strict) return undefined;
          } else out += s;
          break;
        }
      }
    }
    return out;
  }
}

/**
 * Compiles a template (flb_record_accessor.c ra_parse_buffer): `$TAG`, `$TAG[n]` (the n-th
 * dot-separated part of the tag), `$0`..`$9` (regex captures), `$key['sub']...` (record values;
 * the key name is letters, digits and `_`). Everything else is literal text.
 * `${VAR}` is substituted by the config loader before this sees the text.
 */
export function compileTemplate(text: string): Template {
  const parts: Part[] = [];
  let lit = '';
  const flush = () => {
    if (lit) parts.push({ kind: 'text', text: lit });
    lit = '';
  };
  for (let i = 0; i < text.length; ) {
    const c = text[i]!;
    if (c !== '$' || i + 1 >= text.length) {
      lit += c;
      i++;
      continue;
    }
    const n = text[i + 1]!;
    if (n >= '0' && n <= '9') {
      flush();
      parts.push({ kind: 'capture', index: Number(n) });
      i += 2;
      continue;
    }
    if (text.startsWith('TAG', i + 1)) {
      flush();
      const m = /^\[(\d+)\]/.exec(text.slice(i + 4, i + 16));
      if (m) {
        parts.push({ kind: 'tagPart', index: Number(m[1]) });
        i += 4 + m[0].length;
      } else {
        parts.push({ kind: 'tag' });
        i += 4;
      }
      continue;
    }
    // In a template a key name ends at any character but a letter, digit or _ (Fluent Bit ends
    // it at '.', ' ', ',' or '"' and rejects the rest), so `logs-$app-prod` reads key `app`.
    const m = /[_A-Za-z][A-Za-z0-9_]*/y;
    m.lastIndex = i + 1;
    const id = m.exec(text);
    if (!id) {
      lit += c;
      i++;
      continue;
    }
    const { parts: sub, end } = parseSubkeys(text, i + 1 + id[0].length);
    flush();
    parts.push({ kind: 'key', accessor: new RecordAccessor(text.slice(i, end), [id[0], ...sub]) });
    i = end;
  }
  flush();
  return new Template(text, parts);
}

import { randomBytes } from 'node:crypto';
import { RawMsgpack, decode } from './msgpack.js';
import { JsonWriter, writeRecordJSON } from './msgpack-json.js';

/**
 * JSON for records decoded from msgpack. JSON.stringify is the fast path; records holding a
 * 64-bit integer beyond 2^53 (a BigInt, which JSON.stringify refuses) or binary values (Buffers)
 * take a slower exact path: BigInts are written as their exact digits, binary as UTF-8 text.
 */

function slow(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'string':
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v instanceof Uint8Array) return JSON.stringify(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8'));
      if (Array.isArray(v)) return `[${v.map((x) => (x === undefined || typeof x === 'function' ? 'null' : slow(x))).join(',')}]`;
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? 'null' : JSON.stringify(v.toISOString());
      if (typeof (v as { toJSON?: unknown }).toJSON === 'function' && !(v instanceof Uint8Array)) {
        return slow((v as { toJSON: () => unknown }).toJSON());
      }
      let out = '{';
      let first = true;
      for (const k of Object.keys(v)) {
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined || typeof x === 'function') continue;
        out += `${first ? '' : ','}${JSON.stringify(k)}:${slow(x)}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      return 'null';
  }
}

/**
 * BigInts (Falco's nanosecond times in alert records) through JSON.stringify: JSON.stringify
 * asks a BigInt for `toJSON` before it refuses one, so BigInt.prototype gets a toJSON that hands
 * the BigInt back unchanged (JSON.stringify then throws, or a replacer sees it, exactly as
 * without one) except while toJSONLine serialises: then it becomes a string holding a token no
 * record can hold (random per process, after a NUL), replaced by its digits in the text
 * afterwards. One pass of JSON.stringify for records with BigInts too, no replacer call per value.
 */
const BIG_TOKEN = `\u0000${randomBytes(12).toString('hex')}:`;
const BIG_TEXT = new RegExp(`"\\\\u0000${BIG_TOKEN.slice(1)}(-?[0-9]+)\\\\u0000"`, 'g');
let bigHook: ((b: bigint) => string) | undefined;
let bigsSeen = 0;
const bigToken = (b: bigint): string => {
  bigsSeen++;
  return `${BIG_TOKEN}${b.toString()}\u0000`;
};
Object.defineProperty(BigInt.prototype, 'toJSON', {
  value: function toJSON(this: bigint): unknown {
    return bigHook === undefined ? this : bigHook(this);
  },
  writable: true,
  configurable: true,
  enumerable: false,
});

/**
 * Values kept as msgpack bytes (RawMsgpack) stand in the text as a string holding a token no
 * record can hold, replaced afterwards by the value's JSON written from its bytes: the same text
 * as serialising the decoded value, without decoding it.
 */
const RAW_TOKEN = `\u0000${randomBytes(12).toString('hex')}r`;
const RAW_TEXT = new RegExp(`"\\\\u0000${RAW_TOKEN.slice(1)}([0-9]+)\\\\u0000"`, 'g');
let rawWriter: JsonWriter | undefined;

function rawJSON(r: RawMsgpack): string {
  const b = r.bytes;
  const t = b[0];
  if (t === undefined || !((t >= 0x80 && t <= 0x8f) || t === 0xde || t === 0xdf)) return plainJSONLine(decode(b));
  const w = (rawWriter ??= new JsonWriter(4096));
  w.reset();
  writeRecordJSON(w, b);
  return w.view().toString('utf8');
}

/** The RawMsgpack values met by the serialisation under way (toJSONLine may nest). */
const raws: RawMsgpack[] = [];
const rawHook = (r: RawMsgpack): string => `${RAW_TOKEN}${raws.push(r) - 1}\u0000`;
const rawReplace = (_m: string, i: string): string => rawJSON(raws[Number(i)]!);

/** Serialises a value to one line of JSON without losing 64-bit integers or mangling binary. */
export function toJSONLine(v: unknown): string {
  const outer = RawMsgpack.jsonHook;
  const from = raws.length;
  RawMsgpack.jsonHook = rawHook;
  let s: string;
  try {
    s = plainJSONLine(v);
  } finally {
    RawMsgpack.jsonHook = outer;
  }
  if (raws.length === from) return s;
  try {
    return s.replace(RAW_TEXT, rawReplace);
  } finally {
    raws.length = from;
  }
}

function plainJSONLine(v: unknown): string {
  let s: string;
  const outer = bigHook;
  const seen = bigsSeen;
  bigHook = bigToken;
  try {
    s = JSON.stringify(v);
  } catch {
    return slow(v);
  } finally {
    bigHook = outer;
  }
  if (bigsSeen !== seen) s = s.replace(BIG_TEXT, '$1');
  // Buffer#toJSON yields {"type":"Buffer","data":[...]}; write the bytes as text instead.
  return s.includes('"type":"Buffer"') ? slow(v) : s;
}

/**
 * One serialisation per record for all outputs. A kept event usually goes to several outputs
 * that each want it as JSON (the file line, the Loki line, the web page); records do not change
 * once they reached the outputs, so the first output's text serves the others. The cache holds
 * no record alive (weak keys) and at most JSON_CACHE_BYTES of text: two generations, the older
 * dropped whole when the newer fills its half; a record whose text was dropped is serialised
 * again. Callers must only pass records that reached the outputs (filters may still change
 * records before that).
 */
export const JSON_CACHE_BYTES = 32 * 1024 * 1024;
let young = new WeakMap<object, string>();
let old = new WeakMap<object, string>();
let youngBytes = 0;

export function recordJSON(record: object): string {
  let s = young.get(record);
  if (s !== undefined) return s;
  s = old.get(record);
  if (s === undefined) s = toJSONLine(record);
  if (youngBytes + s.length > JSON_CACHE_BYTES / 2) {
    old = young;
    young = new WeakMap();
    youngBytes = 0;
  }
  young.set(record, s);
  youngBytes += s.length;
  return s;
}

/** Offset after the JSON string that starts at `i` (a `"`). */
function skipString(s: string, i: number): number {
  for (;;) {
    const j = s.indexOf('"', i + 1);
    if (j < 0) throw new SyntaxError('unterminated string');
    let b = j - 1;
    while (s.charCodeAt(b) === 0x5c) b--;
    if ((j - 1 - b) % 2 === 0) return j + 1;
    i = j;
  }
}

/** Offset after the compact JSON value that starts at `i`. */
function skipValue(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === 0x22) return skipString(s, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (;;) {
      const ch = s.charCodeAt(i);
      if (ch === 0x22) {
        i = skipString(s, i);
        continue;
      }
      if (ch === 0x7b || ch === 0x5b) depth++;
      else if (ch === 0x7d || ch === 0x5d) {
        if (--depth === 0) return i + 1;
      } else if (Number.isNaN(ch)) throw new SyntaxError('unterminated value');
      i++;
    }
  }
  for (;;) {
    const ch = s.charCodeAt(i);
    if (ch === 0x2c || ch === 0x7d || ch === 0x5d || Number.isNaN(ch)) return i;
    i++;
  }
}

/**
 * The compact JSON object `json` (as toJSONLine writes it) without the top-level members whose
 * keys are in `keys`, given as JSON text (`"verb"`). The same text as serialising the record
 * without those keys, found by skipping over the values rather than by serialising again.
 */
export function withoutMembers(json: string, keys: readonly string[]): string {
  if (json.charCodeAt(1) === 0x7d) return json;
  // The text between removed members is copied in whole slices: one per removed member.
  let out = '';
  let from = 0;
  let i = 1;
  for (;;) {
    const keyEnd = skipString(json, i);
    const valueEnd = skipValue(json, keyEnd + 1);
    const last = json.charCodeAt(valueEnd) !== 0x2c;
    if (keys.includes(json.slice(i, keyEnd))) {
      out += json.slice(from, i);
      if (last) {
        // The last member goes with the comma before it, if a member is left before it.
        if (out.charCodeAt(out.length - 1) === 0x2c) out = out.slice(0, -1);
        from = valueEnd;
      } else from = valueEnd + 1;
    }
    if (last) break;
    i = valueEnd + 1;
  }
  return from === 0 ? json : out + json.slice(from);
}

/**
 * Whether a parsed value nests deeper than `max` arrays and objects. JSON.parse builds any depth
 * without recursing, but serialising and evaluating such a value recurse per level and would
 * overflow the stack far from the input; the inputs refuse it instead. Iterative, depth-first:
 * it holds one list per open level, never all the siblings of a wide value at once.
 */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  if (!isContainer(value)) return false;
  if (max < 1) return true;
  const lists: unknown[][] = [childrenOf(value)];
  const next: number[] = [0];
  while (lists.length) {
    const top = lists.length - 1;
    const list = lists[top]!;
    if (next[top]! >= list.length) {
      lists.pop();
      next.pop();
      continue;
    }
    const x = list[next[top]!++];
    if (!isContainer(x)) continue;
    if (lists.length >= max) return true;
    lists.push(childrenOf(x));
    next.push(0);
  }
  return false;
}

function isContainer(v: unknown): v is object {
  return v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) && !(v instanceof Date);
}

function childrenOf(v: object): unknown[] {
  return Array.isArray(v) ? v : Object.values(v);
}

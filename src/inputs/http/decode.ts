/**
 * Bodies of the `http` input, decoded into records. Fluent Bit's in_http (plugins/in_http/
 * http_prot.c) takes JSON (an object, an array of objects, or several objects one after the
 * other) and application/x-www-form-urlencoded; logwarden also takes newline-delimited JSON
 * under its own type (as Fluentd's in_http does) and msgpack.
 *
 * JSON.parse and the msgpack codec keep a `__proto__` key as an own data property, so a record
 * can never reach a prototype.
 */
import { nestedDeeperThan } from '../../core/json.js';
import { decodeMultiple } from '../../core/msgpack.js';
import { checkValue, MAX_DEPTH, ScanError } from '../../core/msgpack-scan.js';
import { setField } from '../../core/record-accessor.js';
import { HttpError } from '../http-common.js';

export type BodyType = 'json' | 'ndjson' | 'urlencoded' | 'msgpack';

export const MEDIA_TYPES: Record<string, BodyType> = {
  'application/json': 'json',
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
  'application/x-www-form-urlencoded': 'urlencoded',
  'application/msgpack': 'msgpack',
  'application/x-msgpack': 'msgpack',
  'application/vnd.msgpack': 'msgpack',
};

type Rec = Record<string, unknown>;

function isRecord(v: unknown): v is Rec {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'binary';
  // Decoded values other than plain maps: msgpack extension types, the reserved byte 0xC1.
  return typeof v === 'object' ? `a ${(v as object).constructor?.name ?? 'non-map'} value` : `a ${typeof v}`;
}

/**
 * The records of decoded top-level values: an object is one record, an array gives one record
 * per element. Anything else (or an array element that is no object) refuses the whole request.
 */
function recordsOf(values: unknown[], where: (i: number) => string, depthChecked = false): Rec[] {
  const out: Rec[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!depthChecked && nestedDeeperThan(v, MAX_DEPTH)) throw new HttpError(400, `${where(i)}nested deeper than ${MAX_DEPTH} levels`, 'too_deep');
    if (isRecord(v)) out.push(v);
    else if (Array.isArray(v)) {
      for (let k = 0; k < v.length; k++) {
        const x = v[k];
        if (!isRecord(x)) throw new HttpError(400, `${where(i)}element ${k} is ${kindOf(x)}; each record must be an object`, 'malformed');
        out.push(x);
      }
    } else throw new HttpError(400, `${where(i)}found ${kindOf(v)}; expected an object or an array of objects`, 'malformed');
  }
  return out;
}

function parseLines(text: string): unknown[] {
  const values: unknown[] = [];
  let line = 0;
  for (const raw of text.split('\n')) {
    line++;
    if (raw.trim() === '') continue;
    try {
      values.push(JSON.parse(raw));
    } catch (e) {
      throw new HttpError(400, `invalid JSON on line ${line}: ${(e as Error).message}`, 'malformed');
    }
  }
  return values;
}

/**
 * application/json: one JSON value; when the body is not one value but holds several lines,
 * each line is taken as one value (what Fluent Bit's JSON packer does with objects written one
 * after the other). The error shown is the one for the whole body unless the body is clearly
 * line-delimited (its first line is a complete value).
 */
export function decodeJSON(text: string): Rec[] {
  let values: unknown[];
  try {
    values = [JSON.parse(text)];
  } catch (e) {
    const first = text.trimStart().split('\n', 1)[0]!;
    let lineDelimited = false;
    try {
      JSON.parse(first);
      lineDelimited = text.trim().includes('\n');
    } catch {
      // not line-delimited: report the whole-body error
    }
    if (!lineDelimited) throw new HttpError(400, `invalid JSON: ${(e as Error).message}`, 'malformed');
    values = parseLines(text);
    return recordsOf(values, (i) => `value ${i + 1}: `);
  }
  return recordsOf(values, () => '');
}

/** application/x-ndjson: one JSON value per line; blank lines are skipped. */
export function decodeNDJSON(text: string): Rec[] {
  const values = parseLines(text);
  return recordsOf(values, (i) => `value ${i + 1}: `);
}

/** msgpack: one or more values, each an object or an array of objects. */
export function decodeMsgpack(body: Buffer): Rec[] {
  const values: unknown[] = [];
  // Checked before decoding: the decoder recurses per nesting level and takes extension values
  // as they come (an invalid timestamp would become an Invalid Date).
  // Malformed bytes are left to the decoder, which says what it found (nothing before them nests
  // past the limit); should it take them (the reserved byte 0xC1), the values are walked for depth.
  let malformed: string | undefined;
  for (let pos = 0, i = 1; pos < body.length; i++) {
    try {
      pos = checkValue(body, pos);
    } catch (e) {
      if (!(e instanceof ScanError)) throw e;
      if (e.reason !== 'malformed') throw new HttpError(400, `refused msgpack: value ${i}: ${e.message}`, e.reason);
      malformed = `value ${i}: ${e.message}`;
      break;
    }
  }
  try {
    decodeMultiple(body, (v) => values.push(v));
  } catch (e) {
    throw new HttpError(400, `invalid msgpack: ${(e as Error).message}`, 'malformed');
  }
  return recordsOf(values, (i) => `value ${i + 1}: `, malformed === undefined);
}

const HEX = /^[0-9A-Fa-f]{2}$/;

/** Percent-decoding with `+` as space, byte-wise as Fluent Bit's sds_uri_decode; null when a `%` is not followed by two hex digits. */
function uriDecode(s: string): string | null {
  if (!s.includes('%') && !s.includes('+')) return s;
  const bytes: number[] = [];
  const src = Buffer.from(s, 'utf8');
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b === 0x25) {
      const hex = src.subarray(i + 1, i + 3).toString('latin1');
      if (!HEX.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(b === 0x2b ? 0x20 : b);
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * application/x-www-form-urlencoded, as Fluent Bit parses it: one record per request; pairs split
 * on `&`, each `key=value` trimmed; pairs without `=` or with an empty key are skipped; values
 * are percent-decoded (keys are not); a value with a broken `%` escape is kept as sent.
 */
export function decodeURLEncoded(text: string, onBadEscape: (key: string) => void): Rec[] {
  const rec: Rec = {};
  let pairs = 0;
  for (const part of text.split('&')) {
    const start = part.startsWith('\n') ? part.slice(1) : part;
    if (start === '' || start[0] === '=') continue;
    const eq = start.indexOf('=');
    if (eq === -1) continue;
    const key = start.slice(0, eq).trim();
    const raw = start.slice(eq + 1).trim();
    const value = uriDecode(raw);
    if (value === null) onBadEscape(key);
    setField(rec, key, value ?? raw);
    pairs++;
  }
  if (pairs === 0) throw new HttpError(400, 'no key=value pair in the form body', 'malformed');
  return [rec];
}

/** Fluent Bit's sanitize_tag: every character other than letters, digits, `_` and `.` becomes `_`. */
export function sanitizeTag(s: string): string {
  return s.replace(/[^A-Za-z0-9_.]/g, '_');
}

/**
 * The tag a request path gives (Fluent Bit: the path without its leading `/`, URL-decoded and
 * sanitized); undefined for `/`, where the input's own tag applies.
 */
export function tagFromPath(path: string): string | undefined {
  if (path.length <= 1) return undefined;
  let p = path.slice(1);
  try {
    p = decodeURIComponent(p);
  } catch {
    // keep the raw path; sanitizing replaces the '%'
  }
  return sanitizeTag(p);
}

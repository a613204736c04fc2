/**
 * Records as their msgpack bytes. A RecordView reads fields by path (`user.username`,
 * `objectRef.resource`) by scanning the bytes, without decoding the record: the top-level map is
 * indexed once per record, a nested path scans only the maps on its way, and only the value found
 * is decoded. Edits (remove a path, put a top-level key, rename one) are recorded on the event
 * (WireEvent) and applied to the bytes in one copy pass when something reads them
 * (`applyEdits`), or to the decoded object (`applyEdit`) when something reads the record.
 *
 * Everything answers as decoding the record would (src/core/msgpack.ts): a duplicate key reads
 * as its last value and keeps its first place, a `__proto__` key is data like any other. Where a
 * view cannot answer byte for byte (a map key that is not a string, truncated bytes) it throws
 * the one ViewUnsupported instance and the caller decodes instead. The work is bounded by the
 * bytes: every step moves forward through the buffer, nothing recurses per nesting level but
 * the maps a path or an edit names.
 */
import { decode, encode } from './msgpack.js';
import { isUtf8 } from 'node:buffer';
import { readU32, skipValue } from './msgpack-scan.js';

export type PathPart = string | number;

/** Thrown where a view cannot answer as decoding would; the caller decodes the record. */
export class ViewUnsupported extends Error {}
export const UNSUPPORTED = new ViewUnsupported('record view: the record must be decoded');

/** A change recorded on an event instead of applied to a decoded record. */
export type Edit =
  /** Deletes the value at `path` (map keys and array indexes on the way; the last part a map key). */
  | { readonly op: 'remove'; readonly path: readonly PathPart[] }
  /** Sets top-level `key`: in its place when it exists (`move` false) or moved to the end (`move` true). */
  | { readonly op: 'put'; readonly key: string; readonly value: unknown; readonly move: boolean }
  /** Renames top-level `key` to `to` in its place; an existing `to` is removed. */
  | { readonly op: 'rename'; readonly key: string; readonly to: string }
  /**
   * Moves the top-level keys `match` accepts (in record order) into a new map, each named
   * `name(key)` there, and sets that map as top-level `under` at the end of the record (an
   * existing `under` is replaced). Nothing changes when no key matches.
   */
  | { readonly op: 'nest'; readonly under: string; readonly match: (key: string) => boolean; readonly name: (key: string) => string }
  /**
   * When top-level `under` is a map: removes it and puts each of its entries (in its order) at
   * the end of the record as `name(key)`, replacing an existing key of that name.
   */
  | { readonly op: 'lift'; readonly under: string; readonly name: (key: string) => string }
  /** Removes every top-level key `match` accepts. */
  | { readonly op: 'removeKeys'; readonly match: (key: string) => boolean }
  /**
   * Puts a copy of top-level `key`'s value right after it as `to`; an existing `to` is removed.
   * Recorded when `key` is there (as rename).
   */
  | { readonly op: 'copy'; readonly key: string; readonly to: string }
  /** Moves the top-level keys `match` accepts (in record order) to the start or the end of the record. */
  | { readonly op: 'move'; readonly match: (key: string) => boolean; readonly toStart: boolean };

const EMPTY = Buffer.alloc(0);
const NO_INDEX = new Int32Array(0);
/** Top-level indexes of the records views read (RecordView#idx), many records per array. */
let indexArena = new Int32Array(1 << 16);
let indexUsed = 0;
const keyCache = new Map<string, Buffer>();

/** The UTF-8 bytes of a key (keys come from configuration and rules: a bounded set). */
export function keyBytes(k: string): Buffer {
  let b = keyCache.get(k);
  if (b === undefined) {
    if (keyCache.size >= 4096) keyCache.clear();
    b = Buffer.from(k, 'utf8');
    keyCache.set(k, b);
  }
  return b;
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

// Results of the header readers (no tuple per call).
let S = 0;
let E = 0;

/** A str header at `p`: sets S/E to the string's bytes; false when the value is no str. */
function strAt(b: Buffer, p: number): boolean {
  const t = b[p]!;
  if (t >= 0xa0 && t <= 0xbf) {
    S = p + 1;
    E = S + (t & 0x1f);
  } else if (t === 0xd9) {
    S = p + 2;
    E = S + b[p + 1]!;
  } else if (t === 0xda) {
    S = p + 3;
    E = S + ((b[p + 1]! << 8) | b[p + 2]!);
  } else if (t === 0xdb) {
    S = p + 5;
    E = S + readU32(b, p + 1);
  } else return false;
  if (E > b.length) throw UNSUPPORTED;
  return true;
}

/** Map header at `p`: the number of entries (S = first entry), or -1. */
function mapAt(b: Buffer, p: number): number {
  const t = b[p]!;
  if (t >= 0x80 && t <= 0x8f) {
    S = p + 1;
    return t & 0x0f;
  }
  if (t === 0xde) {
    if (p + 3 > b.length) throw UNSUPPORTED;
    S = p + 3;
    return (b[p + 1]! << 8) | b[p + 2]!;
  }
  if (t === 0xdf) {
    if (p + 5 > b.length) throw UNSUPPORTED;
    S = p + 5;
    return readU32(b, p + 1);
  }
  return -1;
}

/** Array header at `p`: the number of items (S = first item), or -1. */
function arrayAt(b: Buffer, p: number): number {
  const t = b[p]!;
  if (t >= 0x90 && t <= 0x9f) {
    S = p + 1;
    return t & 0x0f;
  }
  if (t === 0xdc) {
    if (p + 3 > b.length) throw UNSUPPORTED;
    S = p + 3;
    return (b[p + 1]! << 8) | b[p + 2]!;
  }
  if (t === 0xdd) {
    if (p + 5 > b.length) throw UNSUPPORTED;
    S = p + 5;
    return readU32(b, p + 1);
  }
  return -1;
}

/** bin and ext values decode to Buffers (or EventTime / Date): objects whose properties a path could reach. */
function isBinOrExt(t: number): boolean {
  return (t >= 0xc4 && t <= 0xc9) || (t >= 0xd4 && t <= 0xd8);
}

function eq(b: Buffer, s: number, e: number, k: Buffer): boolean {
  const n = k.length;
  if (e - s !== n) return false;
  for (let i = 0; i < n; i++) if (b[s + i] !== k[i]) return false;
  return true;
}

function same(b: Buffer, x: number, y: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (b[x + i] !== b[y + i]) return false;
  return true;
}

function skip(b: Buffer, p: number): number {
  try {
    return skipValue(b, p);
  } catch {
    throw UNSUPPORTED;
  }
}

const INDEX = /^(0|[1-9][0-9]*)$/;

/** An array index given as a path part: a number, or a string in canonical decimal form. */
function indexPart(part: PathPart): number {
  if (typeof part === 'number') return part;
  return INDEX.test(part) ? Number(part) : -1;
}

/** Containers up to this size are built here: the codec's fixed cost per call is more. */
const SMALL = 512;
const SMALL_DEPTH = 16;
class NeedsCodec extends Error {}
const NEEDS_CODEC = new NeedsCodec();

/**
 * The value at `p` as decode() gives it, for what this reads exactly (ASCII strings, integers up
 * to 32 bits, float64, nil, booleans, maps with ASCII string keys, arrays); NEEDS_CODEC for the
 * rest. Sets E to the offset after the value.
 */
function small(b: Buffer, p: number, depth: number): unknown {
  const t = b[p]!;
  if (t <= 0x7f) {
    E = p + 1;
    return t;
  }
  if (t >= 0xe0) {
    E = p + 1;
    return t - 0x100;
  }
  if (strAt(b, p)) {
    const text = asciiText(b, S, E);
    if (text === undefined) throw NEEDS_CODEC;
    return text;
  }
  if (depth > SMALL_DEPTH) throw NEEDS_CODEC;
  const items = arrayAt(b, p);
  if (items >= 0) {
    const out = new Array<unknown>(items);
    let q = S;
    for (let i = 0; i < items; i++) {
      if (q >= b.length) throw UNSUPPORTED;
      out[i] = small(b, q, depth + 1);
      q = E;
    }
    E = q;
    return out;
  }
  const entries = mapAt(b, p);
  if (entries >= 0) {
    const out: Record<string, unknown> = {};
    let q = S;
    for (let i = 0; i < entries; i++) {
      if (q >= b.length || !strAt(b, q)) throw NEEDS_CODEC;
      const z = E;
      const key = asciiText(b, S, z);
      if (key === undefined) throw NEEDS_CODEC;
      if (z >= b.length) throw UNSUPPORTED;
      const v = small(b, z, depth + 1);
      q = E;
      if (key === '__proto__') Object.defineProperty(out, key, { value: v, writable: true, enumerable: true, configurable: true });
      else out[key] = v;
    }
    E = q;
    return out;
  }
  if (p + 1 > b.length) throw UNSUPPORTED;
  switch (t) {
    case 0xc0:
      E = p + 1;
      return null;
    case 0xc2:
      E = p + 1;
      return false;
    case 0xc3:
      E = p + 1;
      return true;
  }
  let v: number;
  switch (t) {
    case 0xcc:
      E = p + 2;
      v = b[p + 1]!;
      break;
    case 0xcd:
      E = p + 3;
      v = (b[p + 1]! << 8) | b[p + 2]!;
      break;
    case 0xce:
      E = p + 5;
      v = readU32(b, p + 1);
      break;
    case 0xd0:
      E = p + 2;
      v = (b[p + 1]! << 24) >> 24;
      break;
    case 0xd1:
      E = p + 3;
      v = (((b[p + 1]! << 8) | b[p + 2]!) << 16) >> 16;
      break;
    case 0xd2:
      E = p + 5;
      v = (b[p + 1]! << 24) | (b[p + 2]! << 16) | (b[p + 3]! << 8) | b[p + 4]!;
      break;
    case 0xcb:
      E = p + 9;
      if (E > b.length) throw UNSUPPORTED;
      return b.readDoubleBE(p + 1);
    default:
      throw NEEDS_CODEC; // float32, 64-bit integers, bin, ext
  }
  if (E > b.length) throw UNSUPPORTED;
  return v;
}

/** Decodes the value in `b[s, e)` as decode() would. */
function valueAt(b: Buffer, s: number, e: number): unknown {
  if (e - s <= SMALL) {
    try {
      return small(b, s, 0);
    } catch (err) {
      if (err !== NEEDS_CODEC) throw err;
    }
    return decode(b.subarray(s, e));
  }
  const t = b[s]!;
  if (t <= 0x7f) return t;
  if (t >= 0xe0) return t - 0x100;
  if (strAt(b, s)) {
    return asciiText(b, S, E) ?? decode(b.subarray(s, e));
  }
  switch (t) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xcc:
      return b[s + 1]!;
    case 0xcd:
      return b.readUInt16BE(s + 1);
    case 0xce:
      return b.readUInt32BE(s + 1);
    case 0xd0:
      return b.readInt8(s + 1);
    case 0xd1:
      return b.readInt16BE(s + 1);
    case 0xd2:
      return b.readInt32BE(s + 1);
    case 0xcb:
      return b.readDoubleBE(s + 1);
    default:
      // maps, arrays, float32, 64-bit integers, bin, ext: the codec's own reading
      return decode(b.subarray(s, e));
  }
}

/**
 * A view over one record's msgpack bytes (a map). Reusable: `reset` points it at the next record;
 * the top-level index is built on the first read and kept until then.
 */
export class RecordView {
  b: Buffer = EMPTY;
  /** The bytes as given to reset (the identity that keeps the index). */
  src: Uint8Array = EMPTY;
  // The top-level index: five offsets per entry (key header, key bytes start and end, value
  // start and end). Kept by the event (WireEvent) with its bytes, so each filter of the chain
  // reads a record without scanning it again; applyEdits writes the index of what it produces.
  /** Top-level entries indexed, or -1 before the first read. */
  n = -1;
  idx: Int32Array = NO_INDEX;
  /** Where this record's entries start in `idx` (indexes shared by many records). */
  base = 0;
  /** The value the last `find` found: its bytes are `b[vStart, vEnd)`. */
  vStart = 0;
  vEnd = 0;

  /** Points the view at a record; `index` is its top-level index when known (RecordView#idx). */
  reset(bytes: Uint8Array, index?: Int32Array, at = 0, n = index === undefined ? 0 : index.length / 5): this {
    if (bytes === this.src && this.n >= 0) return this; // the same record: keep its index
    this.src = bytes;
    this.b = asBuffer(bytes);
    if (index !== undefined) {
      this.idx = index;
      this.base = at;
      this.n = n;
    } else this.n = -1;
    return this;
  }

  /** Whether the top level can be read byte for byte (a map with string keys); indexes it. */
  readable(): boolean {
    try {
      if (this.n < 0) this.index();
      return true;
    } catch (e) {
      if (e === UNSUPPORTED) return false;
      throw e;
    }
  }

  private index(): void {
    const b = this.b;
    const count = mapAt(b, 0);
    if (count < 0) throw UNSUPPORTED;
    let p = S;
    if (count > (b.length - p) >> 1) throw UNSUPPORTED; // truncated: an entry takes two bytes at least
    // Written straight into an array shared by many records (no array per record).
    if (indexUsed + count * 5 > indexArena.length) {
      indexArena = new Int32Array(Math.max(1 << 16, count * 5));
      indexUsed = 0;
    }
    const x = indexArena;
    const base = indexUsed;
    for (let i = 0; i < count; i++) {
      if (p >= b.length) throw UNSUPPORTED;
      if (!strAt(b, p)) throw UNSUPPORTED;
      const o = base + i * 5;
      x[o] = p;
      x[o + 1] = S;
      x[o + 2] = E;
      x[o + 3] = E;
      p = skip(b, E);
      x[o + 4] = p;
    }
    indexUsed = base + count * 5;
    this.idx = x;
    this.base = base;
    this.n = count;
  }

  /** Where the entry of top-level key `k` is in `idx` (the last one, as decoding keeps the last), or -1. */
  private top(k: Buffer): number {
    if (this.n < 0) this.index();
    const b = this.b;
    const x = this.idx;
    const o = this.base;
    for (let i = this.n - 1; i >= 0; i--) if (eq(b, x[o + i * 5 + 1]!, x[o + i * 5 + 2]!, k)) return o + i * 5;
    return -1;
  }

  /** Whether the record has top-level key `key`. */
  has(key: string): boolean {
    return this.top(keyBytes(key)) >= 0;
  }

  /** The number of top-level entries (a duplicate key counts each time it is written). */
  size(): number {
    if (this.n < 0) this.index();
    return this.n;
  }

  /** The key of top-level entry `i` (0 ≤ i < size()). */
  keyAt(i: number): string {
    const o = this.base + i * 5;
    return keyText(this.b, this.idx[o + 1]!, this.idx[o + 2]!);
  }

  /** Whether the key of entry `i` is written again after it (decoding keeps that later value). */
  repeated(i: number): boolean {
    const b = this.b;
    const x = this.idx;
    const o = this.base + i * 5;
    const ks = x[o + 1]!;
    const len = x[o + 2]! - ks;
    for (let j = i + 1; j < this.n; j++) {
      const q = this.base + j * 5;
      if (x[q + 2]! - x[q + 1]! === len && same(b, ks, x[q + 1]!, len)) return true;
    }
    return false;
  }

  /**
   * The value of entry `i` as text: a string, a boolean as `true` / `false`, undefined for any
   * other value (which is not decoded).
   */
  textAt(i: number): string | undefined {
    const o = this.base + i * 5;
    const vs = this.idx[o + 3]!;
    const t = this.b[vs]!;
    if (t === 0xc2) return 'false';
    if (t === 0xc3) return 'true';
    if ((t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb)) return valueAt(this.b, vs, this.idx[o + 4]!) as string;
    return undefined;
  }

  /** The value of top-level key `key`, or undefined. */
  getTop(key: string): unknown {
    const i = this.top(keyBytes(key));
    return i < 0 ? undefined : valueAt(this.b, this.idx[i + 3]!, this.idx[i + 4]!);
  }

  /**
   * Finds the value at `path` (map keys; array indexes as numbers or decimal strings): true and
   * vStart/vEnd set, or false when a step is missing or not a map / array.
   */
  find(path: readonly PathPart[]): boolean {
    const first = path[0];
    if (typeof first !== 'string') return false;
    const i = this.top(keyBytes(first));
    if (i < 0) return false;
    const b = this.b;
    let p = this.idx[i + 3]!;
    let e = this.idx[i + 4]!;
    for (let j = 1; j < path.length; j++) {
      const part = path[j]!;
      const t = b[p]!;
      const items = arrayAt(b, p);
      if (items >= 0) {
        const idx = indexPart(part);
        if (idx < 0 || idx >= items) return false;
        p = S;
        for (let k = 0; k < idx; k++) p = skip(b, p);
        e = skip(b, p);
        continue;
      }
      const entries = mapAt(b, p);
      if (entries < 0 || typeof part !== 'string') {
        if (isBinOrExt(t)) throw UNSUPPORTED; // a Buffer's own properties: leave it to the object
        return false;
      }
      const k = keyBytes(part);
      let q = S;
      let found = -1;
      let foundEnd = -1;
      for (let m = 0; m < entries; m++) {
        if (q >= b.length || !strAt(b, q)) throw UNSUPPORTED;
        const hit = eq(b, S, E, k);
        q = E;
        const end = skip(b, q);
        if (hit) {
          found = q;
          foundEnd = end;
        }
        q = end;
      }
      if (found < 0) return false;
      p = found;
      e = foundEnd;
    }
    this.vStart = p;
    this.vEnd = e;
    return true;
  }

  /** The value at `path`, decoded, or undefined. */
  get(path: readonly PathPart[]): unknown {
    if (path.length === 1 && typeof path[0] === 'string') return this.getTop(path[0]);
    return this.find(path) ? valueAt(this.b, this.vStart, this.vEnd) : undefined;
  }

  /** The number of items of the array at `path`, or -1 when there is no array there. */
  arrayLength(path: readonly PathPart[]): number {
    return this.find(path) ? arrayAt(this.b, this.vStart) : -1;
  }

  /** Whether the value at `path` is a map (an object once decoded). */
  isMapAt(path: readonly PathPart[]): boolean {
    return this.find(path) && mapAt(this.b, this.vStart) >= 0;
  }

  /** The whole record, decoded. */
  decode(): Record<string, unknown> {
    return decode(this.b) as Record<string, unknown>;
  }
}

/**
 * One view for every filter: filters run one after the other (synchronously) and point it at
 * each record they read, with the index the record keeps (WireEvent).
 */
export const sharedView = new RecordView();

// ---------------------------------------------------------------------------------------------
// Edits on a decoded record

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Applies one edit to a decoded record (changing it) and returns the record; the reference for
 * what `applyEdits` does to the bytes.
 */
export function applyEdit(r: Record<string, unknown>, e: Edit): Record<string, unknown> {
  switch (e.op) {
    case 'put':
      if (e.move && hasOwn(r, e.key)) delete r[e.key];
      setOwn(r, e.key, e.value);
      return r;
    case 'remove': {
      let cur: unknown = r;
      const last = e.path.length - 1;
      for (let i = 0; i < last; i++) {
        const part = e.path[i]!;
        if (Array.isArray(cur)) {
          const idx = indexPart(part);
          if (idx < 0 || idx >= cur.length) return r;
          cur = cur[idx];
        } else if (isObj(cur) && typeof part === 'string' && hasOwn(cur, part)) cur = cur[part];
        else return r;
      }
      const end = e.path[last]!;
      if (isObj(cur) && typeof end === 'string' && hasOwn(cur, end)) delete cur[end];
      return r;
    }
    case 'rename': {
      if (!hasOwn(r, e.key) || e.key === e.to) return r;
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(r)) {
        if (k === e.to) continue;
        setOwn(out, k === e.key ? e.to : k, r[k]);
      }
      return out;
    }
    case 'nest': {
      let nested: Record<string, unknown> | undefined;
      for (const k of Object.keys(r)) {
        if (!e.match(k)) continue;
        nested ??= {};
        setOwn(nested, e.name(k), r[k]);
        delete r[k];
      }
      if (nested === undefined) return r;
      if (hasOwn(r, e.under)) delete r[e.under];
      setOwn(r, e.under, nested);
      return r;
    }
    case 'lift': {
      const inner = hasOwn(r, e.under) ? r[e.under] : undefined;
      if (!isObj(inner)) return r;
      delete r[e.under];
      for (const k of Object.keys(inner)) {
        const name = e.name(k);
        if (hasOwn(r, name)) delete r[name];
        setOwn(r, name, inner[k]);
      }
      return r;
    }
    case 'removeKeys':
      for (const k of Object.keys(r)) if (e.match(k)) delete r[k];
      return r;
    case 'copy': {
      if (!hasOwn(r, e.key) || e.key === e.to) return r;
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(r)) {
        if (k === e.to) continue;
        setOwn(out, k, r[k]);
        if (k === e.key) setOwn(out, e.to, r[k]);
      }
      return out;
    }
    case 'move': {
      const moved: string[] = [];
      const rest: string[] = [];
      for (const k of Object.keys(r)) (e.match(k) ? moved : rest).push(k);
      if (moved.length === 0) return r;
      const out: Record<string, unknown> = {};
      for (const k of e.toStart ? moved : rest) setOwn(out, k, r[k]);
      for (const k of e.toStart ? rest : moved) setOwn(out, k, r[k]);
      return out;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Edits on the bytes

/** A growing output buffer for spliced records. */
class Out {
  buf = Buffer.allocUnsafe(64 * 1024);
  len = 0;
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  copy(b: Buffer, s: number, e: number): void {
    const n = e - s;
    this.ensure(n);
    if (n < 64) {
      // Buffer#copy's fixed cost (a view object per call) is more than a short loop.
      const o = this.buf;
      let p = this.len;
      for (let i = s; i < e; i++) o[p++] = b[i]!;
      this.len = p;
    } else this.len += b.copy(this.buf, this.len, s, e);
  }
  mapHeader(n: number): void {
    this.ensure(5);
    const o = this.buf;
    if (n < 16) o[this.len++] = 0x80 | n;
    else if (n < 0x10000) {
      o[this.len++] = 0xde;
      o[this.len++] = n >> 8;
      o[this.len++] = n & 0xff;
    } else {
      o[this.len++] = 0xdf;
      o.writeUInt32BE(n, this.len);
      this.len += 4;
    }
  }
  arrayHeader(n: number): void {
    this.ensure(5);
    const o = this.buf;
    if (n < 16) o[this.len++] = 0x90 | n;
    else if (n < 0x10000) {
      o[this.len++] = 0xdc;
      o[this.len++] = n >> 8;
      o[this.len++] = n & 0xff;
    } else {
      o[this.len++] = 0xdd;
      o.writeUInt32BE(n, this.len);
      this.len += 4;
    }
  }
  str(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(n + 5);
    const o = this.buf;
    if (n < 32) o[this.len++] = 0xa0 | n;
    else if (n < 0x100) {
      o[this.len++] = 0xd9;
      o[this.len++] = n;
    } else if (n < 0x10000) {
      o[this.len++] = 0xda;
      o[this.len++] = n >> 8;
      o[this.len++] = n & 0xff;
    } else {
      o[this.len++] = 0xdb;
      o.writeUInt32BE(n, this.len);
      this.len += 4;
    }
    this.len += o.write(s, this.len, 'utf8');
  }
  value(v: unknown): void {
    if (typeof v === 'string') this.str(v);
    else {
      const enc = encode(v);
      this.copy(enc, 0, enc.length);
    }
  }
}

const out = new Out();

// Top-level slots of the record being spliced (reused: applyEdits is synchronous).
let slotHead = new Int32Array(64); // offset of the key's header (original keys)
let slotKs = new Int32Array(64);
let slotKe = new Int32Array(64);
let slotVs = new Int32Array(64); // original value bytes, -1 when the value is new, -2 a nested map (nest)
let slotVe = new Int32Array(64);
const slotKey: Array<string | null> = []; // key text when the key is new (put, rename)
const slotKeyText: Array<string | null> = []; // the text of an original key, once read (edits that match keys)
const slotVal: unknown[] = [];
const slotNested: Array<PathPart[][] | null> = [];
// A nested map a nest edit built (slotVs -2): the slots of its entries and their names.
const slotMoved: Array<number[] | null> = [];
const slotNames: Array<string[] | null> = [];
const slotLive: boolean[] = [];
let slots = 0;
// The record's order: slot numbers as the entries are written (copy and move change it; a slot
// keeps its number, which nested maps refer to).
let slotOrder = new Int32Array(64);
let ordered = 0;
let orderScratch = new Int32Array(64);
/**
 * The records applyEdits produces are slices of one larger buffer at a time, not a buffer each:
 * a record's bytes never change once produced, and the slices of one buffer belong to records
 * of the same few chunks.
 */
const RESULT_BYTES = 1 << 20;
let results = Buffer.allocUnsafeSlow(RESULT_BYTES);
let resultsUsed = 0;

function resultBytes(n: number): Buffer {
  if (n > RESULT_BYTES >> 3) return Buffer.allocUnsafe(n);
  if (resultsUsed + n > results.length) {
    results = Buffer.allocUnsafeSlow(RESULT_BYTES);
    resultsUsed = 0;
  }
  const r = results.subarray(resultsUsed, resultsUsed + n);
  resultsUsed += n;
  return r;
}

// Where applyEdits wrote each entry (key bytes, value bytes) in its output.
/**
 * The top-level index of the bytes the last applyEdits returned (RecordView#idx's form):
 * `editedIndexN` entries from `editedIndex[editedIndexAt]`, in an array shared by many records.
 */
export let editedIndex: Int32Array = new Int32Array(1 << 16);
export let editedIndexAt = 0;
export let editedIndexN = 0;
let editedUsed = 0;

function growSlots(): void {
  const g = (a: Int32Array) => {
    const x = new Int32Array(a.length * 2);
    x.set(a);
    return x;
  };
  slotHead = g(slotHead);
  slotKs = g(slotKs);
  slotKe = g(slotKe);
  slotVs = g(slotVs);
  slotVe = g(slotVe);
  slotOrder = g(slotOrder);
  orderScratch = g(orderScratch);
}

/**
 * The slot from `from` on whose key is the bytes ks..ke of `b`, or a new one for that key (its
 * head at `head`, live as given): a duplicate key keeps its first place.
 */
function keySlot(b: Buffer, from: number, head: number, ks: number, ke: number, live: boolean): number {
  for (let j = from; j < slots; j++) {
    if (slotKe[j]! - slotKs[j]! === ke - ks && same(b, ks, slotKs[j]!, ke - ks)) return j;
  }
  const s = newSlot();
  slotHead[s] = head;
  slotKs[s] = ks;
  slotKe[s] = ke;
  slotLive[s] = live;
  return s;
}

function newSlot(): number {
  if (slots >= slotKs.length) growSlots();
  const i = slots++;
  slotOrder[ordered++] = i;
  slotKey[i] = null;
  slotKeyText[i] = null;
  slotVal[i] = undefined;
  slotNested[i] = null;
  slotMoved[i] = null;
  slotNames[i] = null;
  slotLive[i] = true;
  return i;
}

/** The text of a key in `b[s, e)` as decoding gives it; UNSUPPORTED for bytes that are not UTF-8. */
function keyText(b: Buffer, s: number, e: number): string {
  const t = asciiText(b, s, e);
  if (t !== undefined) return t;
  const sub = b.subarray(s, e);
  if (!isUtf8(sub)) throw UNSUPPORTED;
  return sub.toString('utf8');
}

/** The key of slot `i` as it stands (renamed or not). */
function slotText(b: Buffer, i: number): string {
  return slotKey[i] ?? (slotKeyText[i] ??= keyText(b, slotKs[i]!, slotKe[i]!));
}

/**
 * Two keys moved to the same name: the one decoding's object order gives last wins. That order is
 * the bytes' order except for keys that are array indexes (an object lists them first): those
 * are left to the object.
 */
function collides(x: string, y: string): void {
  if (INDEX.test(x) || INDEX.test(y)) throw UNSUPPORTED;
}

/** A new slot holding what slot `m` holds (its key, value and pending changes). */
function copySlot(m: number): number {
  const s = newSlot();
  slotHead[s] = slotHead[m]!;
  slotKs[s] = slotKs[m]!;
  slotKe[s] = slotKe[m]!;
  slotVs[s] = slotVs[m]!;
  slotVe[s] = slotVe[m]!;
  slotKey[s] = slotKey[m]!;
  slotVal[s] = slotVal[m];
  slotNested[s] = slotNested[m]!;
  slotMoved[s] = slotMoved[m]!;
  slotNames[s] = slotNames[m]!;
  return s;
}

function slotIs(b: Buffer, i: number, key: string, kb: Buffer): boolean {
  const k = slotKey[i];
  return k !== null ? k === key : eq(b, slotKs[i]!, slotKe[i]!, kb);
}

function findSlot(b: Buffer, key: string): number {
  const kb = keyBytes(key);
  for (let i = 0; i < slots; i++) if (slotLive[i] && slotIs(b, i, key, kb)) return i;
  return -1;
}

/**
 * The record `bytes` (a msgpack map) with `edits` applied, as new msgpack bytes: the same record
 * as decoding, applying each edit (applyEdit) and encoding would give. Values the edits do not
 * touch are copied byte for byte. Throws UNSUPPORTED where that cannot be done byte for byte.
 */
export function applyEdits(bytes: Uint8Array, edits: readonly Edit[], index?: Int32Array, at = 0, indexN = index === undefined ? 0 : index.length / 5): Buffer {
  const b = asBuffer(bytes);
  const count = mapAt(b, 0);
  if (count < 0) throw UNSUPPORTED;
  slots = 0;
  ordered = 0;
  let copied = false;
  let p = S;
  // The bytes' index, when a filter read them already: no scan then.
  const v = index !== undefined && indexN === count ? index : null;
  for (let i = 0; i < count; i++) {
    let head: number;
    let ks: number;
    let ke: number;
    let ve: number;
    if (v !== null) {
      head = v[at + i * 5]!;
      ks = v[at + i * 5 + 1]!;
      ke = v[at + i * 5 + 2]!;
      ve = v[at + i * 5 + 4]!;
    } else {
      if (p >= b.length) throw UNSUPPORTED;
      head = p;
      if (!strAt(b, p)) throw UNSUPPORTED;
      ks = S;
      ke = E;
      ve = skip(b, ke);
    }
    const vs = ke;
    p = ve;
    // A duplicate key keeps its first place and takes the last value, as decoding.
    const s = keySlot(b, 0, head, ks, ke, true);
    slotVs[s] = vs;
    slotVe[s] = ve;
  }
  if (p !== b.length) throw UNSUPPORTED;
  for (const e of edits) {
    switch (e.op) {
      case 'put': {
        let s = findSlot(b, e.key);
        if (s >= 0 && e.move) {
          slotLive[s] = false;
          s = -1;
        }
        if (s < 0) {
          s = newSlot();
          slotKey[s] = e.key;
        }
        slotVs[s] = -1;
        slotVal[s] = e.value;
        slotNested[s] = null;
        break;
      }
      case 'remove': {
        const first = e.path[0];
        if (typeof first !== 'string') break;
        const s = findSlot(b, first);
        if (s < 0) break;
        if (e.path.length === 1) slotLive[s] = false;
        else {
          if (slotVs[s]! < 0) throw UNSUPPORTED; // inside a value an edit made: leave it to the object
          // A copy shares its value with the source in the object, where removing inside one
          // removes inside both: leave that to the object.
          if (copied) throw UNSUPPORTED;
          (slotNested[s] ??= []).push(e.path.slice(1) as PathPart[]);
        }
        break;
      }
      case 'rename': {
        if (e.key === e.to) break;
        const s = findSlot(b, e.key);
        if (s < 0) break;
        const t = findSlot(b, e.to);
        if (t >= 0) slotLive[t] = false;
        slotKey[s] = e.to;
        break;
      }
      case 'nest': {
        let moved: number[] | null = null;
        let names: string[] | null = null;
        for (let j = 0; j < ordered; j++) {
          const i = slotOrder[j]!;
          if (!slotLive[i]) continue;
          const key = slotText(b, i);
          if (!e.match(key)) continue;
          const name = e.name(key);
          moved ??= [];
          names ??= [];
          const at = names.indexOf(name);
          if (at >= 0) {
            // A name given twice: its first place, the last value.
            collides(slotText(b, moved[at]!), key);
            moved[at] = i;
          } else {
            moved.push(i);
            names.push(name);
          }
          slotLive[i] = false;
        }
        if (moved === null) break;
        const u = findSlot(b, e.under);
        if (u >= 0) slotLive[u] = false;
        const s = newSlot();
        slotKey[s] = e.under;
        slotVs[s] = -2;
        slotMoved[s] = moved;
        slotNames[s] = names;
        break;
      }
      case 'lift': {
        const u = findSlot(b, e.under);
        if (u < 0) break;
        const vs = slotVs[u]!;
        if (vs === -2) {
          // The map a nest edit built: its entries move up as they are.
          slotLive[u] = false;
          const moved = slotMoved[u]!;
          const names = slotNames[u]!;
          const first = slots;
          for (let j = 0; j < moved.length; j++) {
            const name = e.name(names[j]!);
            const t = findSlot(b, name);
            if (t >= 0) {
              if (t >= first) collides(names[t - first]!, names[j]!);
              slotLive[t] = false;
            }
            const s = copySlot(moved[j]!);
            if (slotKey[s] !== null || name !== keyText(b, slotKs[s]!, slotKe[s]!)) slotKey[s] = name;
          }
          break;
        }
        if (vs < 0 || slotNested[u] !== null) throw UNSUPPORTED; // a value an edit put: the object
        const entries = mapAt(b, vs);
        if (entries < 0) {
          // An ext decodes to an object (EventTime, Date) the lift would read: the object. A bin
          // (a Buffer) and anything else is no map: unchanged.
          if (isBinOrExt(b[vs]!) && !(b[vs]! >= 0xc4 && b[vs]! <= 0xc6)) throw UNSUPPORTED;
          break;
        }
        slotLive[u] = false;
        // The map's entries as decoding gives them (a duplicate key: first place, last value),
        // staged as slots that are not live yet.
        const first = slots;
        let q = S;
        for (let m = 0; m < entries; m++) {
          if (q >= b.length || !strAt(b, q)) throw UNSUPPORTED;
          const head = q;
          const ks = S;
          const ke = E;
          const ve = skip(b, ke);
          q = ve;
          const s = keySlot(b, first, head, ks, ke, false);
          slotVs[s] = ke;
          slotVe[s] = ve;
        }
        // Each goes to the end under its name, replacing a key of that name.
        const last = slots;
        for (let j = first; j < last; j++) {
          const key = keyText(b, slotKs[j]!, slotKe[j]!);
          const name = e.name(key);
          const t = findSlot(b, name);
          if (t >= 0) {
            if (t >= first) collides(keyText(b, slotKs[t]!, slotKe[t]!), key);
            slotLive[t] = false;
          }
          if (name !== key) slotKey[j] = name;
          slotLive[j] = true;
        }
        break;
      }
      case 'removeKeys': {
        for (let j = 0; j < ordered; j++) {
          const i = slotOrder[j]!;
          if (slotLive[i] && e.match(slotText(b, i))) slotLive[i] = false;
        }
        break;
      }
      case 'copy': {
        if (e.key === e.to) break;
        const s = findSlot(b, e.key);
        if (s < 0) break;
        // An object lists keys that are array indexes first: the place after one is the object's.
        if (INDEX.test(e.key)) throw UNSUPPORTED;
        const t = findSlot(b, e.to);
        if (t >= 0) slotLive[t] = false;
        const c = copySlot(s);
        slotKey[c] = e.to;
        if (slotNested[c] !== null) slotNested[c] = slotNested[c]!.slice();
        // newSlot put the copy last: it goes right after the source.
        let at = 0;
        while (slotOrder[at] !== s) at++;
        for (let j = ordered - 1; j > at + 1; j--) slotOrder[j] = slotOrder[j - 1]!;
        slotOrder[at + 1] = c;
        copied = true;
        break;
      }
      case 'move': {
        // The matching live slots aside, the others kept in order in place; then both joined.
        const moved = orderScratch;
        let m = 0;
        let rest = 0;
        for (let j = 0; j < ordered; j++) {
          const i = slotOrder[j]!;
          if (!slotLive[i]) continue;
          if (e.match(slotText(b, i))) moved[m++] = i;
          else slotOrder[rest++] = i;
        }
        if (e.toStart) {
          for (let j = rest - 1; j >= 0; j--) slotOrder[j + m] = slotOrder[j]!;
          for (let j = 0; j < m; j++) slotOrder[j] = moved[j]!;
        } else for (let j = 0; j < m; j++) slotOrder[rest + j] = moved[j]!;
        ordered = rest + m;
        break;
      }
    }
  }
  let live = 0;
  for (let i = 0; i < slots; i++) if (slotLive[i]) live++;
  out.len = 0;
  out.mapHeader(live);
  if (editedUsed + live * 5 > editedIndex.length) {
    editedIndex = new Int32Array(Math.max(1 << 16, live * 5));
    editedUsed = 0;
  }
  const o = editedIndex;
  const ob = editedUsed;
  let n = 0;
  // Entries that stay as they are and follow each other in the bytes are copied as one run.
  let runStart = -1;
  let runEnd = -1;
  let runOut = 0; // where the run starts in the output
  for (let j = 0; j < ordered; j++) {
    const i = slotOrder[j]!;
    if (!slotLive[i]) continue;
    const k = slotKey[i] ?? null;
    if (k === null && slotNested[i] === null && slotVs[i] === slotKe[i]) {
      const head = slotHead[i]!;
      if (head !== runEnd) {
        if (runStart >= 0) out.copy(b, runStart, runEnd);
        runStart = head;
        runOut = out.len;
      }
      runEnd = slotVe[i]!;
      const d = runOut - runStart;
      o[ob + n * 5] = head + d;
      o[ob + n * 5 + 1] = slotKs[i]! + d;
      o[ob + n * 5 + 2] = slotKe[i]! + d;
      o[ob + n * 5 + 3] = slotVs[i]! + d;
      o[ob + n * 5 + 4] = slotVe[i]! + d;
      n++;
      continue;
    }
    if (runStart >= 0) out.copy(b, runStart, runEnd);
    runStart = runEnd = -1;
    o[ob + n * 5] = out.len;
    if (k === null) {
      const d = out.len - slotHead[i]!;
      out.copy(b, slotHead[i]!, slotKe[i]!);
      o[ob + n * 5 + 1] = slotKs[i]! + d;
      o[ob + n * 5 + 2] = slotKe[i]! + d;
    } else {
      out.str(k);
      o[ob + n * 5 + 2] = out.len;
      o[ob + n * 5 + 1] = out.len - Buffer.byteLength(k, 'utf8');
    }
    o[ob + n * 5 + 3] = out.len;
    writeValue(b, i);
    o[ob + n * 5 + 4] = out.len;
    n++;
  }
  if (runStart >= 0) out.copy(b, runStart, runEnd);
  for (let i = 0; i < slots; i++) {
    slotVal[i] = undefined;
    slotKeyText[i] = null;
    slotNested[i] = null;
    slotMoved[i] = null;
    slotNames[i] = null;
  }
  const result = resultBytes(out.len);
  out.buf.copy(result, 0, 0, out.len);
  editedIndexAt = ob;
  editedIndexN = n;
  editedUsed = ob + n * 5;
  return result;
}

/** Writes the value of slot `i`: its bytes (less what removes name), a put value or a nested map. */
function writeValue(b: Buffer, i: number): void {
  const vs = slotVs[i]!;
  if (vs === -1) out.value(slotVal[i]);
  else if (vs === -2) {
    const moved = slotMoved[i]!;
    const names = slotNames[i]!;
    out.mapHeader(moved.length);
    for (let j = 0; j < moved.length; j++) {
      const m = moved[j]!;
      const name = names[j]!;
      if (slotKey[m] === null && name === keyText(b, slotKs[m]!, slotKe[m]!)) out.copy(b, slotHead[m]!, slotKe[m]!);
      else out.str(name);
      writeValue(b, m);
    }
  } else {
    const nested = slotNested[i] ?? null;
    if (nested === null) out.copy(b, vs, slotVe[i]!);
    else writeWithout(b, vs, slotVe[i]!, nested);
  }
}

/** Writes the value at `b[s, e)` without the values at `paths` (relative to it). */
function writeWithout(b: Buffer, s: number, e: number, paths: PathPart[][]): void {
  const items = arrayAt(b, s);
  if (items >= 0) {
    // Array items are never removed (the last part of a path is a map key): recurse into the
    // items the paths name, copy the rest.
    let q = S;
    out.copy(b, s, q);
    for (let i = 0; i < items; i++) {
      const end = skip(b, q);
      let sub: PathPart[][] | null = null;
      for (const path of paths) {
        if (path.length > 1 && indexPart(path[0]!) === i) (sub ??= []).push(path.slice(1));
      }
      if (sub === null) out.copy(b, q, end);
      else writeWithout(b, q, end, sub);
      q = end;
    }
    return;
  }
  const entries = mapAt(b, s);
  if (entries < 0) {
    if (isBinOrExt(b[s]!)) throw UNSUPPORTED;
    out.copy(b, s, e); // not a container: the path is missing, nothing to remove
    return;
  }
  const first = S;
  // First pass: how many entries stay.
  let q = first;
  let kept = 0;
  const hits = new Int32Array(paths.length);
  for (let m = 0; m < entries; m++) {
    if (q >= b.length || !strAt(b, q)) throw UNSUPPORTED;
    if (!removes(b, S, E, paths)) kept++;
    for (let i = 0; i < paths.length; i++) {
      const part = paths[i]![0]!;
      // A key a path names twice: decoding keeps one value; leave that to the object path.
      if (typeof part === 'string' && eq(b, S, E, keyBytes(part)) && ++hits[i]! > 1) throw UNSUPPORTED;
    }
    q = skip(b, E);
  }
  out.mapHeader(kept);
  q = first;
  for (let m = 0; m < entries; m++) {
    strAt(b, q);
    const head = q;
    const ks = S;
    const ke = E;
    const end = skip(b, ke);
    q = end;
    if (removes(b, ks, ke, paths)) continue;
    let sub: PathPart[][] | null = null;
    for (const path of paths) {
      const part = path[0]!;
      if (path.length > 1 && typeof part === 'string' && eq(b, ks, ke, keyBytes(part))) (sub ??= []).push(path.slice(1));
    }
    out.copy(b, head, ke);
    if (sub === null) out.copy(b, ke, end);
    else writeWithout(b, ke, end, sub);
  }
}

function removes(b: Buffer, ks: number, ke: number, paths: PathPart[][]): boolean {
  for (const path of paths) {
    const part = path[0]!;
    if (path.length === 1 && typeof part === 'string' && eq(b, ks, ke, keyBytes(part))) return true;
  }
  return false;
}

/**
 * Short strings read recently, by a hash of their bytes: audit events repeat the same verbs,
 * resources, namespaces, user names and keys, and a string found here is not allocated again.
 * Direct-mapped: a miss replaces the slot's string.
 */
const INTERN_SLOTS = 4096;
const INTERN_MAX = 64;
const interned: Array<string | undefined> = new Array<string | undefined>(INTERN_SLOTS).fill(undefined);

/** Bytes a..z as a string when they are all ASCII (then latin1 and UTF-8 agree); undefined otherwise. */
export function asciiText(b: Buffer, a: number, z: number): string | undefined {
  const n = z - a;
  if (n > INTERN_MAX) {
    for (let i = a; i < z; i++) if (b[i]! >= 0x80) return undefined;
    return (b as unknown as { latin1Slice(s: number, e: number): string }).latin1Slice(a, z);
  }
  let h = 0x811c9dc5 ^ n;
  for (let i = a; i < z; i++) {
    const c = b[i]!;
    if (c >= 0x80) return undefined;
    h = Math.imul(h ^ c, 0x01000193);
  }
  const slot = (h ^ (h >>> 13)) & (INTERN_SLOTS - 1);
  const hit = interned[slot];
  if (hit !== undefined && hit.length === n) {
    let i = 0;
    while (i < n && hit.charCodeAt(i) === b[a + i]) i++;
    if (i === n) return hit;
  }
  const t = (b as unknown as { latin1Slice(s: number, e: number): string }).latin1Slice(a, z);
  interned[slot] = t;
  return t;
}

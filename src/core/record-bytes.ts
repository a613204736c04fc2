/**
 * Reading msgpack bytes in place, shared by the record view (record-view.ts) and the copy pass
 * that applies edits to the bytes (record-splice.ts): header readers that leave their result in
 * S/E (no tuple per call), key comparison, skipping a value, decoding one value as decode() would
 * (small values built here, the rest by the codec), and interned ASCII strings.
 */
import { isUtf8 } from 'node:buffer';
import { decode } from './msgpack.js';
import { readU32, skipValue } from './msgpack-scan.js';
import type { PathPart } from './record-view.js';

/** Thrown where a view cannot answer as decoding would; the caller decodes the record. */
export class ViewUnsupported extends Error {}
export const UNSUPPORTED = new ViewUnsupported('record view: the record must be decoded');

export const EMPTY = Buffer.alloc(0);

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

export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

// Results of the header readers (no tuple per call).
export let S = 0;
export let E = 0;

/** A str header at `p`: sets S/E to the string's bytes; false when the value is no str. */
export function strAt(b: Buffer, p: number): boolean {
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
export function mapAt(b: Buffer, p: number): number {
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
export function arrayAt(b: Buffer, p: number): number {
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
export function isBinOrExt(t: number): boolean {
  return (t >= 0xc4 && t <= 0xc9) || (t >= 0xd4 && t <= 0xd8);
}

export function eq(b: Buffer, s: number, e: number, k: Buffer): boolean {
  const n = k.length;
  if (e - s !== n) return false;
  for (let i = 0; i < n; i++) if (b[s + i] !== k[i]) return false;
  return true;
}

export function same(b: Buffer, x: number, y: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (b[x + i] !== b[y + i]) return false;
  return true;
}

export function skip(b: Buffer, p: number): number {
  try {
    return skipValue(b, p);
  } catch {
    throw UNSUPPORTED;
  }
}

export const INDEX = /^(0|[1-9][0-9]*)$/;

/** An array index given as a path part: a number, or a string in canonical decimal form. */
export function indexPart(part: PathPart): number {
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
export function valueAt(b: Buffer, s: number, e: number): unknown {
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

/** The text of a key in `b[s, e)` as decoding gives it; UNSUPPORTED for bytes that are not UTF-8. */
export function keyText(b: Buffer, s: number, e: number): string {
  const t = asciiText(b, s, e);
  if (t !== undefined) return t;
  const sub = b.subarray(s, e);
  if (!isUtf8(sub)) throw UNSUPPORTED;
  return sub.toString('utf8');
}

/**
 * Records as their msgpack bytes. A RecordView reads fields by path (`user.username`,
 * `objectRef.resource`) by scanning the bytes, without decoding the record: the top-level map is
 * indexed once per record, a nested path scans only the maps on its way, and only the value found
 * is decoded. Edits (remove a path, put a top-level key, rename one) are recorded on the event
 * (WireEvent) and applied to the bytes in one copy pass when something reads them
 * (`applyEdits`, record-splice.ts), or to the decoded object (`applyEdit`, record-edit.ts) when
 * something reads the record. The byte readers they share are in record-bytes.ts.
 *
 * Everything answers as decoding the record would (src/core/msgpack.ts): a duplicate key reads
 * as its last value and keeps its first place, a `__proto__` key is data like any other. Where a
 * view cannot answer byte for byte (a map key that is not a string, truncated bytes) it throws
 * the one ViewUnsupported instance and the caller decodes instead. The work is bounded by the
 * bytes: every step moves forward through the buffer, nothing recurses per nesting level but
 * the maps a path or an edit names.
 */
import { decode } from './msgpack.js';
import { arrayAt, asBuffer, E, EMPTY, eq, indexPart, isBinOrExt, keyBytes, keyText, mapAt, S, same, skip, strAt, UNSUPPORTED, valueAt } from './record-bytes.js';

export { UNSUPPORTED, ViewUnsupported } from './record-bytes.js';

export type PathPart = string | number;

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

const NO_INDEX = new Int32Array(0);
/** Top-level indexes of the records views read (RecordView#idx), many records per array. */
let indexArena = new Int32Array(1 << 16);
let indexUsed = 0;

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

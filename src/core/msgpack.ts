/**
 * The msgpack codec, behind one module. msgpackr was chosen by measurement (BENCHMARKS.md and
 * ../shared/reference/msgpack-codecs.md): 5-7x faster than msgpack-lite on audit events with its
 * native addon. Settings that make it correct for the forward protocol:
 * - EventTime (ext type 0, fixext8 and ext8) is registered before anything is decoded; msgpackr
 *   would otherwise decode it silently as undefined.
 * - int64AsType 'auto': integers beyond 2^53 become BigInt (exact) instead of losing precision.
 * - Maps msgpackr cannot turn into plain objects (binary keys) and maps with a `__proto__` key take
 *   a slow exact path: binary keys become UTF-8 text where valid, and `__proto__` stays an own
 *   data property that never reaches a prototype.
 */
import { Packr, Unpackr, addExtension, isNativeAccelerationEnabled } from 'msgpackr';
import { EventTime } from './event.js';
import { badExt } from './msgpack-scan.js';

addExtension({
  // msgpackr refuses the number 0 as an extension type; the string form registers type 0.
  type: '0' as unknown as number,
  Class: EventTime,
  unpack(buf: Buffer): EventTime | Buffer {
    // Not an EventTime: keep the bytes, as for any other extension.
    if (buf.length !== 8) return Buffer.from(buf);
    return new EventTime(buf.readUInt32BE(0), buf.readUInt32BE(4));
  },
  pack(t: EventTime): Buffer {
    const b = Buffer.allocUnsafe(8);
    b.writeUInt32BE(t.sec >>> 0, 0);
    b.writeUInt32BE(t.nsec >>> 0, 4);
    return b;
  },
});

/**
 * One msgpack value kept as its encoded bytes (a copy, never a view into a reusable buffer): a
 * record can carry a whole sub-record without decoding it (detect's `include_event`). The
 * encoder writes the bytes in place, byte for byte; JSON writers convert them from the bytes
 * (core/json toJSONLine); code that reads the value as an object gets it from `value`, decoded
 * on first use.
 */
export class RawMsgpack {
  /** Set by toJSONLine while it serialises: the text JSON.stringify writes for the value. */
  static jsonHook: ((r: RawMsgpack) => string) | undefined;
  #value: unknown;
  #decoded = false;

  constructor(readonly bytes: Uint8Array) {}

  /** The value decoded (once). */
  get value(): unknown {
    if (!this.#decoded) {
      this.#value = decode(this.bytes);
      this.#decoded = true;
    }
    return this.#value;
  }

  toJSON(): unknown {
    const hook = RawMsgpack.jsonHook;
    return hook !== undefined ? hook(this) : this.value;
  }
}

/**
 * structuredClone of a record that keeps the RawMsgpack values it holds (structuredClone alone
 * would turn them into plain objects). They are shared: their bytes never change. A Buffer (a
 * bin value as decoding gives it) stays a Buffer: structuredClone makes it a plain Uint8Array,
 * which JSON writes as an object of its bytes instead of the text.
 */
export function cloneRecord<T>(v: T): T {
  const c = structuredClone(v);
  return keepRaw(v, c) as T;
}

function keepRaw(v: unknown, c: unknown): unknown {
  if (v instanceof RawMsgpack) return v;
  if (Buffer.isBuffer(v)) {
    const u = c as Uint8Array;
    return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  }
  if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v) || v instanceof Date || v instanceof EventTime) return c;
  if (Array.isArray(v)) {
    const a = c as unknown[];
    for (let i = 0; i < v.length; i++) a[i] = keepRaw(v[i], a[i]);
    return a;
  }
  const o = c as Record<string, unknown>;
  for (const k of Object.keys(v)) {
    const x = (v as Record<string, unknown>)[k];
    if (x !== null && typeof x === 'object') {
      const kept = keepRaw(x, o[k]);
      if (kept !== o[k]) Object.defineProperty(o, k, { value: kept, writable: true, enumerable: true, configurable: true });
    }
  }
  return o;
}

// Written in place: no extension header, the bytes are the value. The type is only what msgpackr
// requires to register a packer; its unpacker stays the one every unknown type has (its bytes).
addExtension({
  type: 127,
  Class: RawMsgpack,
  pack(r: RawMsgpack, allocate: (n: number) => { target: Uint8Array; position: number }): undefined {
    const { target, position } = allocate(r.bytes.length);
    target.set(r.bytes, position);
    return undefined;
  },
  unpack: (buf: Buffer) => Buffer.from(buf),
} as unknown as Parameters<typeof addExtension>[0]);

// copyBuffers: binary values must not be views into the connection's reusable frame buffer.
// Extension types logwarden does not know arrive as their bytes (like bin) instead of failing the
// whole record: a sender's application-specific ext must not make a chunk undeliverable.
for (let type = 1; type <= 127; type++) {
  addExtension({ type, unpack: (buf: Buffer) => Buffer.from(buf) } as unknown as Parameters<typeof addExtension>[0]);
}
// msgpackr keys its decoders by the unsigned type byte: 0x80-0xfe are the reserved types -128 to
// -2 (it would throw on them), 0xff is the timestamp (-1), which it decodes to an Invalid Date when
// its length or value is wrong. The inputs refuse such values (msgpack-scan checkValue); a value
// that still arrives (a chunk stored before) decodes as its bytes, so it can never throw later.
for (let type = 0x80; type <= 0xfe; type++) {
  addExtension({ type, unpack: (buf: Buffer) => Buffer.from(buf) } as unknown as Parameters<typeof addExtension>[0]);
}
addExtension({
  type: 0xff,
  unpack(buf: Buffer): Date | Buffer {
    if (badExt(buf, -1, 0, buf.length) !== undefined) return Buffer.from(buf);
    let ms: number;
    if (buf.length === 4) ms = buf.readUInt32BE(0) * 1000;
    else if (buf.length === 8) ms = ((buf.readUInt32BE(0) & 3) * 0x100000000 + buf.readUInt32BE(4)) * 1000 + (buf.readUInt32BE(0) >>> 2) / 1e6;
    else ms = (buf.readInt32BE(4) * 0x100000000 + buf.readUInt32BE(8)) * 1000 + buf.readUInt32BE(0) / 1e6;
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? Buffer.from(buf) : d;
  },
} as unknown as Parameters<typeof addExtension>[0]);

const fast = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'auto' as 'bigint', copyBuffers: true });
const exact = new Unpackr({ useRecords: false, mapsAsObjects: false, int64AsType: 'auto' as 'bigint', copyBuffers: true });
const packr = new Packr({ useRecords: false, variableMapSize: true, encodeUndefinedAsNil: true, int64AsType: 'auto' as 'bigint' });

export const nativeAcceleration: boolean = isNativeAccelerationEnabled;

const PROTO = Buffer.from('__proto__');
const utf8 = new TextDecoder('utf-8', { fatal: true });

function keyText(k: unknown): string {
  if (typeof k === 'string') return k;
  if (k instanceof Uint8Array) {
    try {
      return utf8.decode(k);
    } catch {
      return Buffer.from(k).toString('hex');
    }
  }
  return String(k);
}

function fromExact(v: unknown): unknown {
  if (v instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of v) {
      const key = keyText(k);
      const value = fromExact(x);
      if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
      else out[key] = value;
    }
    return out;
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = fromExact(v[i]);
    return v;
  }
  return v;
}

/** Decodes one msgpack value (the whole buffer). */
export function decode(buf: Uint8Array): unknown {
  if (Buffer.prototype.indexOf.call(buf, PROTO) === -1) {
    try {
      return fast.unpack(buf);
    } catch (e) {
      if (!/non-string keys|Invalid property type/.test((e as Error).message)) throw e;
    }
  }
  return fromExact(exact.unpack(buf));
}

/** Decodes a stream of concatenated msgpack values (PackedForward entries). */
export function decodeMultiple(buf: Uint8Array, each: (v: unknown) => void): void {
  if (Buffer.prototype.indexOf.call(buf, PROTO) === -1) {
    let ok = true;
    const seen: unknown[] = [];
    try {
      fast.unpackMultiple(buf, (v: unknown) => {
        seen.push(v);
      });
    } catch (e) {
      if (!/non-string keys|Invalid property type/.test((e as Error).message)) throw e;
      ok = false;
    }
    if (ok) {
      for (const v of seen) each(v);
      return;
    }
  }
  exact.unpackMultiple(buf, (v: unknown) => {
    each(fromExact(v));
  });
}

export function encode(v: unknown): Buffer {
  return packr.pack(v);
}

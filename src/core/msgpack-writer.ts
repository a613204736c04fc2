/**
 * msgpack written value by value into one growing buffer, for records built from parts (detect's
 * alerts) without an object to encode: the same bytes the codec (src/core/msgpack.ts) writes for
 * the same strings, numbers, BigInts, arrays and maps. `take` hands out what was written as a
 * slice of a larger buffer shared by many records (their bytes never change once taken).
 */

import { ByteBuffer } from './byte-buffer.js';

const TAKE_BYTES = 1 << 20;
let taken = Buffer.allocUnsafeSlow(TAKE_BYTES);
let takenUsed = 0;

export class MsgpackWriter extends ByteBuffer {
  constructor(initial = 16 * 1024) {
    super(initial);
  }

  /** The bytes written since the last reset, copied out; the writer is reset. */
  take(): Buffer {
    const n = this.len;
    let out: Buffer;
    if (n > TAKE_BYTES >> 3) out = Buffer.allocUnsafe(n);
    else {
      if (takenUsed + n > taken.length) {
        taken = Buffer.allocUnsafeSlow(TAKE_BYTES);
        takenUsed = 0;
      }
      out = taken.subarray(takenUsed, takenUsed + n);
      takenUsed += n;
    }
    this.buf.copy(out, 0, 0, n);
    this.len = 0;
    return out;
  }

  private header(n: number, fix: number, fixMax: number, t16: number, t32: number): void {
    this.ensure(5);
    const o = this.buf;
    if (n <= fixMax) o[this.len++] = fix | n;
    else if (n < 0x10000) {
      o[this.len++] = t16;
      o[this.len++] = n >> 8;
      o[this.len++] = n & 0xff;
    } else {
      o[this.len++] = t32;
      o.writeUInt32BE(n, this.len);
      this.len += 4;
    }
  }

  map(n: number): void {
    this.header(n, 0x80, 15, 0xde, 0xdf);
  }

  array(n: number): void {
    this.header(n, 0x90, 15, 0xdc, 0xdd);
  }

  nil(): void {
    this.ensure(1);
    this.buf[this.len++] = 0xc0;
  }

  /** A string (UTF-8), with the smallest header for its byte length. */
  str(s: string): void {
    const max = s.length * 3;
    const room = max < 32 ? 1 : max < 0x100 ? 2 : max < 0x10000 ? 3 : 5;
    this.ensure(room + max);
    const o = this.buf;
    const at = this.len;
    const n = o.write(s, at + room, 'utf8');
    const need = n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
    if (need < room) o.copyWithin(at + need, at + room, at + room + n);
    if (need === 1) o[at] = 0xa0 | n;
    else if (need === 2) {
      o[at] = 0xd9;
      o[at + 1] = n;
    } else if (need === 3) {
      o[at] = 0xda;
      o[at + 1] = n >> 8;
      o[at + 2] = n & 0xff;
    } else {
      o[at] = 0xdb;
      o.writeUInt32BE(n, at + 1);
    }
    this.len = at + need + n;
  }

  /** A number as the codec writes it: integers in the smallest form, others as float64. */
  num(v: number): void {
    this.ensure(9);
    const o = this.buf;
    let p = this.len;
    if (Number.isInteger(v) && v >= -0x80000000 && v <= 0xffffffff) {
      if (v >= 0) {
        if (v < 0x80) o[p++] = v;
        else if (v < 0x100) {
          o[p++] = 0xcc;
          o[p++] = v;
        } else if (v < 0x10000) {
          o[p++] = 0xcd;
          o.writeUInt16BE(v, p);
          p += 2;
        } else {
          o[p++] = 0xce;
          o.writeUInt32BE(v, p);
          p += 4;
        }
      } else if (v >= -0x20) o[p++] = v & 0xff;
      else if (v >= -0x80) {
        o[p++] = 0xd0;
        o.writeInt8(v, p++);
      } else if (v >= -0x8000) {
        o[p++] = 0xd1;
        o.writeInt16BE(v, p);
        p += 2;
      } else {
        o[p++] = 0xd2;
        o.writeInt32BE(v, p);
        p += 4;
      }
    } else {
      o[p++] = 0xcb;
      o.writeDoubleBE(v, p);
      p += 8;
    }
    this.len = p;
  }

  /** A BigInt in 64 bits, as the codec writes it: int64, or uint64 from 2^63. */
  big(v: bigint): void {
    this.ensure(9);
    if (v >= 1n << 63n) {
      this.buf[this.len] = 0xcf;
      this.buf.writeBigUInt64BE(v, this.len + 1);
    } else {
      this.buf[this.len] = 0xd3;
      this.buf.writeBigInt64BE(v, this.len + 1);
    }
    this.len += 9;
  }

  /** Bytes that are one msgpack value already, copied in place. */
  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
}

/** The header of a msgpack str of `len` bytes, on its own (for frames assembled from parts). */
export function strHead(len: number): Buffer {
  if (len < 32) return Buffer.from([0xa0 | len]);
  if (len < 0x100) return Buffer.from([0xd9, len]);
  if (len < 0x10000) return Buffer.from([0xda, len >> 8, len & 0xff]);
  const b = Buffer.allocUnsafe(5);
  b[0] = 0xdb;
  b.writeUInt32BE(len, 1);
  return b;
}

/** The header of a msgpack array of `n` items, on its own. */
export function arrayHead(n: number): Buffer {
  if (n < 16) return Buffer.from([0x90 | n]);
  if (n < 0x10000) return Buffer.from([0xdc, n >> 8, n & 0xff]);
  const b = Buffer.allocUnsafe(5);
  b[0] = 0xdd;
  b.writeUInt32BE(n, 1);
  return b;
}

/** The header of a msgpack bin of `len` bytes, on its own. */
export function binHead(len: number): Buffer {
  if (len < 0x100) return Buffer.from([0xc4, len]);
  if (len < 0x10000) return Buffer.from([0xc5, len >> 8, len & 0xff]);
  const b = Buffer.allocUnsafe(5);
  b[0] = 0xc6;
  b.writeUInt32BE(len, 1);
  return b;
}

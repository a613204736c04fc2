/**
 * Reading msgpack structure without decoding values: the end of a value, headers, and EventTime.
 * Used to find each record's bytes inside a forward frame, so records that nothing reads are
 * never turned into objects (decode once — or not at all).
 */

export class ScanError extends Error {
  constructor(
    message: string,
    /** Metric label: `malformed`, `too_deep` (nesting limit) or `bad_ext` (an invalid extension value). */
    readonly reason: 'malformed' | 'too_deep' | 'bad_ext' = 'malformed',
  ) {
    super(message);
  }
}

/** Nesting accepted in one value, as the forward framer accepts in one frame. */
export const MAX_DEPTH = 256;

/** Largest seconds value a JavaScript Date holds (8.64e15 ms). */
export const MAX_DATE_SECONDS = 8_640_000_000_000;

function need(buf: Uint8Array, end: number): void {
  if (end > buf.length) throw new ScanError('truncated msgpack value');
}

/** Returns the offset just past the value that starts at `pos`. */
export function skipValue(buf: Uint8Array, pos: number): number {
  let left = 1; // values still to skip at this level and below
  const b = buf;
  while (left > 0) {
    if (pos >= b.length) throw new ScanError('truncated msgpack value');
    const t = b[pos]!;
    left--;
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) {
      pos += 1;
    } else if (t >= 0x80 && t <= 0x8f) {
      left += (t & 0x0f) * 2;
      pos += 1;
    } else if (t >= 0x90 && t <= 0x9f) {
      left += t & 0x0f;
      pos += 1;
    } else if (t >= 0xa0 && t <= 0xbf) {
      pos += 1 + (t & 0x1f);
    } else {
      switch (t) {
        case 0xc4:
        case 0xd9:
          need(b, pos + 2);
          pos += 2 + b[pos + 1]!;
          break;
        case 0xc5:
        case 0xda:
          need(b, pos + 3);
          pos += 3 + ((b[pos + 1]! << 8) | b[pos + 2]!);
          break;
        case 0xc6:
        case 0xdb:
          need(b, pos + 5);
          pos += 5 + readU32(b, pos + 1);
          break;
        case 0xc7:
          need(b, pos + 2);
          pos += 3 + b[pos + 1]!;
          break;
        case 0xc8:
          need(b, pos + 3);
          pos += 4 + ((b[pos + 1]! << 8) | b[pos + 2]!);
          break;
        case 0xc9:
          need(b, pos + 5);
          pos += 6 + readU32(b, pos + 1);
          break;
        case 0xca:
          pos += 5;
          break;
        case 0xcb:
          pos += 9;
          break;
        case 0xcc:
        case 0xd0:
          pos += 2;
          break;
        case 0xcd:
        case 0xd1:
          pos += 3;
          break;
        case 0xce:
        case 0xd2:
          pos += 5;
          break;
        case 0xcf:
        case 0xd3:
          pos += 9;
          break;
        case 0xd4:
          pos += 3;
          break;
        case 0xd5:
          pos += 4;
          break;
        case 0xd6:
          pos += 6;
          break;
        case 0xd7:
          pos += 10;
          break;
        case 0xd8:
          pos += 18;
          break;
        case 0xdc:
          need(b, pos + 3);
          left += (b[pos + 1]! << 8) | b[pos + 2]!;
          pos += 3;
          break;
        case 0xdd:
          need(b, pos + 5);
          left += readU32(b, pos + 1);
          pos += 5;
          break;
        case 0xde:
          need(b, pos + 3);
          left += ((b[pos + 1]! << 8) | b[pos + 2]!) * 2;
          pos += 3;
          break;
        case 0xdf:
          need(b, pos + 5);
          left += readU32(b, pos + 1) * 2;
          pos += 5;
          break;
        default:
          throw new ScanError(`invalid msgpack type byte 0x${t.toString(16)}`);
      }
    }
  }
  if (pos > b.length) throw new ScanError('truncated msgpack value');
  return pos;
}

export function readU32(b: Uint8Array, p: number): number {
  return ((b[p]! << 24) >>> 0) + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
}

/** Array header at `pos`: [count, offset of the first item], or null when the value is no array. */
export function arrayHeader(b: Uint8Array, pos: number): [number, number] | null {
  const t = b[pos]!;
  if (t >= 0x90 && t <= 0x9f) return [t & 0x0f, pos + 1];
  if (t === 0xdc) {
    need(b, pos + 3);
    return [(b[pos + 1]! << 8) | b[pos + 2]!, pos + 3];
  }
  if (t === 0xdd) {
    need(b, pos + 5);
    return [readU32(b, pos + 1), pos + 5];
  }
  return null;
}

/** Where the array header or EventTime arrayLength / eventTimeAt read last ends. */
export let scanNext = 0;
/** The EventTime eventTimeAt read last. */
export let timeSec = 0;
export let timeNsec = 0;

/** arrayHeader without a tuple: the number of items (scanNext = the first), or -1 when no array is there. */
export function arrayLength(b: Uint8Array, pos: number): number {
  const t = b[pos]!;
  if (t >= 0x90 && t <= 0x9f) {
    scanNext = pos + 1;
    return t & 0x0f;
  }
  if (t === 0xdc) {
    need(b, pos + 3);
    scanNext = pos + 3;
    return (b[pos + 1]! << 8) | b[pos + 2]!;
  }
  if (t === 0xdd) {
    need(b, pos + 5);
    scanNext = pos + 5;
    return readU32(b, pos + 1);
  }
  return -1;
}

/** readEventTime without a tuple: true with timeSec, timeNsec and scanNext set, or false. */
export function eventTimeAt(b: Uint8Array, pos: number): boolean {
  if (b[pos] === 0xd7 && b[pos + 1] === 0x00) {
    need(b, pos + 10);
    timeSec = readU32(b, pos + 2);
    timeNsec = readU32(b, pos + 6);
    scanNext = pos + 10;
    return true;
  }
  if (b[pos] === 0xc7 && b[pos + 1] === 0x08 && b[pos + 2] === 0x00) {
    need(b, pos + 11);
    timeSec = readU32(b, pos + 3);
    timeNsec = readU32(b, pos + 7);
    scanNext = pos + 11;
    return true;
  }
  return false;
}

export function isMapType(t: number): boolean {
  return (t >= 0x80 && t <= 0x8f) || t === 0xde || t === 0xdf;
}

/** EventTime ext at `pos` (fixext8 `D7 00` or ext8 `C7 08 00`): [sec, nsec, next], or null. */
export function readEventTime(b: Uint8Array, pos: number): [number, number, number] | null {
  if (b[pos] === 0xd7 && b[pos + 1] === 0x00) {
    need(b, pos + 10);
    return [readU32(b, pos + 2), readU32(b, pos + 6), pos + 10];
  }
  if (b[pos] === 0xc7 && b[pos + 1] === 0x08 && b[pos + 2] === 0x00) {
    need(b, pos + 11);
    return [readU32(b, pos + 3), readU32(b, pos + 7), pos + 11];
  }
  return null;
}

/**
 * A value read for what it is on the wire: str and bin both become the Buffer of their bytes
 * (never UTF-8 text), maps become Maps keyed by the keys' bytes read as latin1 (one char per byte),
 * ext values their data bytes. For the forward handshake, whose salts, nonces and hostnames are raw
 * bytes that senders (Fluent Bit) put in msgpack str: decoding them as text would change every byte
 * that is not valid UTF-8.
 */
export type RawValue = null | boolean | number | bigint | Buffer | RawValue[] | Map<string, RawValue>;

/** Nesting deeper than this is refused (handshake messages are two levels deep). */
const MAX_RAW_DEPTH = 32;

/** Reads the value at `pos`: [value, offset after it]. Throws ScanError when malformed. */
export function readRawValue(buf: Uint8Array, pos: number, depth = 0): [RawValue, number] {
  if (depth > MAX_RAW_DEPTH) throw new ScanError(`msgpack value nested deeper than ${MAX_RAW_DEPTH} levels`);
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const bytes = (start: number, len: number): [Buffer, number] => {
    need(b, start + len);
    return [Buffer.from(b.subarray(start, start + len)), start + len];
  };
  const items = (n: number, at: number): [RawValue[], number] => {
    const out: RawValue[] = [];
    for (let i = 0; i < n; i++) {
      const [v, next] = readRawValue(b, at, depth + 1);
      out.push(v);
      at = next;
    }
    return [out, at];
  };
  const entries = (n: number, at: number): [Map<string, RawValue>, number] => {
    const m = new Map<string, RawValue>();
    for (let i = 0; i < n; i++) {
      const [k, afterKey] = readRawValue(b, at, depth + 1);
      const [v, next] = readRawValue(b, afterKey, depth + 1);
      m.set(Buffer.isBuffer(k) ? k.toString('latin1') : String(k), v);
      at = next;
    }
    return [m, at];
  };
  if (pos >= b.length) throw new ScanError('truncated msgpack value');
  const t = b[pos]!;
  if (t <= 0x7f) return [t, pos + 1];
  if (t >= 0xe0) return [t - 0x100, pos + 1];
  if (t <= 0x8f) return entries(t & 0x0f, pos + 1);
  if (t <= 0x9f) return items(t & 0x0f, pos + 1);
  if (t <= 0xbf) return bytes(pos + 1, t & 0x1f);
  need(b, pos + 1);
  switch (t) {
    case 0xc0:
      return [null, pos + 1];
    case 0xc2:
      return [false, pos + 1];
    case 0xc3:
      return [true, pos + 1];
    case 0xc4:
    case 0xd9:
      need(b, pos + 2);
      return bytes(pos + 2, b[pos + 1]!);
    case 0xc5:
    case 0xda:
      need(b, pos + 3);
      return bytes(pos + 3, b.readUInt16BE(pos + 1));
    case 0xc6:
    case 0xdb:
      need(b, pos + 5);
      return bytes(pos + 5, b.readUInt32BE(pos + 1));
    case 0xc7:
      need(b, pos + 3);
      return bytes(pos + 3, b[pos + 1]!);
    case 0xc8:
      need(b, pos + 4);
      return bytes(pos + 4, b.readUInt16BE(pos + 1));
    case 0xc9:
      need(b, pos + 6);
      return bytes(pos + 6, b.readUInt32BE(pos + 1));
    case 0xca:
      need(b, pos + 5);
      return [b.readFloatBE(pos + 1), pos + 5];
    case 0xcb:
      need(b, pos + 9);
      return [b.readDoubleBE(pos + 1), pos + 9];
    case 0xcc:
      need(b, pos + 2);
      return [b[pos + 1]!, pos + 2];
    case 0xcd:
      need(b, pos + 3);
      return [b.readUInt16BE(pos + 1), pos + 3];
    case 0xce:
      need(b, pos + 5);
      return [b.readUInt32BE(pos + 1), pos + 5];
    case 0xcf:
      need(b, pos + 9);
      return [b.readBigUInt64BE(pos + 1), pos + 9];
    case 0xd0:
      need(b, pos + 2);
      return [b.readInt8(pos + 1), pos + 2];
    case 0xd1:
      need(b, pos + 3);
      return [b.readInt16BE(pos + 1), pos + 3];
    case 0xd2:
      need(b, pos + 5);
      return [b.readInt32BE(pos + 1), pos + 5];
    case 0xd3:
      need(b, pos + 9);
      return [b.readBigInt64BE(pos + 1), pos + 9];
    case 0xd4:
      return bytes(pos + 2, 1);
    case 0xd5:
      return bytes(pos + 2, 2);
    case 0xd6:
      return bytes(pos + 2, 4);
    case 0xd7:
      return bytes(pos + 2, 8);
    case 0xd8:
      return bytes(pos + 2, 16);
    case 0xdc:
      need(b, pos + 3);
      return items(b.readUInt16BE(pos + 1), pos + 3);
    case 0xdd:
      need(b, pos + 5);
      return items(b.readUInt32BE(pos + 1), pos + 5);
    case 0xde:
      need(b, pos + 3);
      return entries(b.readUInt16BE(pos + 1), pos + 3);
    case 0xdf:
      need(b, pos + 5);
      return entries(b.readUInt32BE(pos + 1), pos + 5);
    default:
      throw new ScanError(`invalid msgpack type byte 0x${t.toString(16)}`);
  }
}

/** Reads one whole value (the entire buffer must be that value). */
export function decodeRaw(buf: Uint8Array): RawValue {
  const [v, end] = readRawValue(buf, 0);
  if (end !== buf.length) throw new ScanError(`${buf.length - end} bytes after the msgpack value`);
  return v;
}

/**
 * Why the extension value at `data` (`len` bytes of type `type`, signed) would not decode to a
 * sound value, or undefined when it is sound. Type -1 is msgpack's timestamp: 4, 8 or 12 bytes,
 * nanoseconds below 10^9, seconds that a Date can hold. Types -2 to -128 are reserved by the
 * msgpack specification and have no meaning. Types 0 to 127 are the application's (EventTime
 * and others are kept as their bytes when they do not fit).
 */
export function badExt(b: Uint8Array, type: number, data: number, len: number): string | undefined {
  if (type >= 0) return undefined;
  if (type !== -1) return `reserved msgpack extension type ${type}`;
  if (len === 4) return undefined;
  if (len === 8) return readU32(b, data) >>> 2 < 1e9 ? undefined : 'msgpack timestamp with nanoseconds past 999999999';
  if (len === 12) {
    if (readU32(b, data) >= 1e9) return 'msgpack timestamp with nanoseconds past 999999999';
    const hi = (b[data + 4]! << 24) | (b[data + 5]! << 16) | (b[data + 6]! << 8) | b[data + 7]!; // signed
    const sec = hi * 0x100000000 + readU32(b, data + 8);
    return Math.abs(sec) < MAX_DATE_SECONDS ? undefined : `msgpack timestamp ${sec} s is out of range`;
  }
  return `msgpack timestamp extension of ${len} bytes (expected 4, 8 or 12)`;
}

let openStack = new Float64Array(MAX_DEPTH * 4 + 1);

/**
 * Like skipValue, and checks what decoding would choke on: nesting deeper than `maxDepth`
 * containers (the decoder recurses per level) and, with `exts`, extension values that are
 * invalid (badExt).
 * Iterative: hostile depth costs an array of counters, never the call stack.
 */
export function checkValue(buf: Uint8Array, pos: number, maxDepth = MAX_DEPTH, exts = true): number {
  const b = buf;
  // Items left in each enclosing container: a shared stack (checkValue is synchronous).
  if (openStack.length < maxDepth + 1) openStack = new Float64Array(maxDepth + 1);
  const open = openStack;
  let depth = 0;
  let left = 1; // items left at the current level
  for (;;) {
    if (left === 0) {
      if (depth === 0) break;
      left = open[--depth]!;
      continue;
    }
    if (pos >= b.length) throw new ScanError('truncated msgpack value');
    const t = b[pos]!;
    left--;
    let items = 0;
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) pos += 1;
    else if (t >= 0x80 && t <= 0x8f) {
      items = (t & 0x0f) * 2;
      pos += 1;
    } else if (t >= 0x90 && t <= 0x9f) {
      items = t & 0x0f;
      pos += 1;
    } else if (t >= 0xa0 && t <= 0xbf) pos += 1 + (t & 0x1f);
    else {
      let extLen = -1;
      let extAt = 0;
      switch (t) {
        case 0xc4:
        case 0xd9:
          need(b, pos + 2);
          pos += 2 + b[pos + 1]!;
          break;
        case 0xc5:
        case 0xda:
          need(b, pos + 3);
          pos += 3 + ((b[pos + 1]! << 8) | b[pos + 2]!);
          break;
        case 0xc6:
        case 0xdb:
          need(b, pos + 5);
          pos += 5 + readU32(b, pos + 1);
          break;
        case 0xc7:
          need(b, pos + 3);
          extLen = b[pos + 1]!;
          extAt = pos + 2;
          break;
        case 0xc8:
          need(b, pos + 4);
          extLen = (b[pos + 1]! << 8) | b[pos + 2]!;
          extAt = pos + 3;
          break;
        case 0xc9:
          need(b, pos + 6);
          extLen = readU32(b, pos + 1);
          extAt = pos + 5;
          break;
        case 0xca:
          pos += 5;
          break;
        case 0xcb:
          pos += 9;
          break;
        case 0xcc:
        case 0xd0:
          pos += 2;
          break;
        case 0xcd:
        case 0xd1:
          pos += 3;
          break;
        case 0xce:
        case 0xd2:
          pos += 5;
          break;
        case 0xcf:
        case 0xd3:
          pos += 9;
          break;
        case 0xd4:
          extLen = 1;
          extAt = pos + 1;
          break;
        case 0xd5:
          extLen = 2;
          extAt = pos + 1;
          break;
        case 0xd6:
          extLen = 4;
          extAt = pos + 1;
          break;
        case 0xd7:
          extLen = 8;
          extAt = pos + 1;
          break;
        case 0xd8:
          extLen = 16;
          extAt = pos + 1;
          break;
        case 0xdc:
          need(b, pos + 3);
          items = (b[pos + 1]! << 8) | b[pos + 2]!;
          pos += 3;
          break;
        case 0xdd:
          need(b, pos + 5);
          items = readU32(b, pos + 1);
          pos += 5;
          break;
        case 0xde:
          need(b, pos + 3);
          items = ((b[pos + 1]! << 8) | b[pos + 2]!) * 2;
          pos += 3;
          break;
        case 0xdf:
          need(b, pos + 5);
          items = readU32(b, pos + 1) * 2;
          pos += 5;
          break;
        default:
          throw new ScanError(`invalid msgpack type byte 0x${t.toString(16)}`);
      }
      if (extLen >= 0) {
        // extAt is the type byte; the data follows it
        need(b, extAt + 1 + extLen);
        const why = exts ? badExt(b, (b[extAt]! << 24) >> 24, extAt + 1, extLen) : undefined;
        if (why) throw new ScanError(why, 'bad_ext');
        pos = extAt + 1 + extLen;
      }
    }
    if (items > 0) {
      if (depth >= maxDepth) throw new ScanError(`msgpack nesting deeper than ${maxDepth} levels`, 'too_deep');
      open[depth++] = left;
      left = items;
    }
  }
  if (pos > b.length) throw new ScanError('truncated msgpack value');
  return pos;
}

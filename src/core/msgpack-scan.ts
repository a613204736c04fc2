/**
 * Reading msgpack structure without decoding values: the end of a value, headers, and EventTime.
 * Used to find each record's bytes inside a forward frame, so records that nothing reads are
 * never turned into objects (decode once — or not at all).
 */

export class ScanError extends Error {}

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
        case 0xc4: case 0xd9: need(b, pos + 2); pos += 2 + b[pos + 1]!; break;
        case 0xc5: case 0xda: need(b, pos + 3); pos += 3 + ((b[pos + 1]! << 8) | b[pos + 2]!); break;
        case 0xc6: case 0xdb: need(b, pos + 5); pos += 5 + readU32(b, pos + 1); break;
        case 0xc7: need(b, pos + 2); pos += 3 + b[pos + 1]!; break;
        case 0xc8: need(b, pos + 3); pos += 4 + ((b[pos + 1]! << 8) | b[pos + 2]!); break;
        case 0xc9: need(b, pos + 5); pos += 6 + readU32(b, pos + 1); break;
        case 0xca: pos += 5; break;
        case 0xcb: pos += 9; break;
        case 0xcc: case 0xd0: pos += 2; break;
        case 0xcd: case 0xd1: pos += 3; break;
        case 0xce: case 0xd2: pos += 5; break;
        case 0xcf: case 0xd3: pos += 9; break;
        case 0xd4: pos += 3; break;
        case 0xd5: pos += 4; break;
        case 0xd6: pos += 6; break;
        case 0xd7: pos += 10; break;
        case 0xd8: pos += 18; break;
        case 0xdc: need(b, pos + 3); left += (b[pos + 1]! << 8) | b[pos + 2]!; pos += 3; break;
        case 0xdd: need(b, pos + 5); left += readU32(b, pos + 1); pos += 5; break;
        case 0xde: need(b, pos + 3); left += ((b[pos + 1]! << 8) | b[pos + 2]!) * 2; pos += 3; break;
        case 0xdf: need(b, pos + 5); left += readU32(b, pos + 1) * 2; pos += 5; break;
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

/**
 * CRC-32 (IEEE 802.3, the zlib/gzip polynomial 0xEDB88320). Node has it natively as zlib.crc32
 * from 20.15 / 22.2; older Node 20 releases get the table-driven form below, which computes the
 * same value.
 */
import zlib from 'node:zlib';

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** Table-driven CRC-32; `prev` continues a running checksum over several buffers. */
export function crc32Table(data: Uint8Array, prev = 0): number {
  let c = (prev ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

type Crc = (data: Uint8Array, prev?: number) => number;
const native = (zlib as unknown as { crc32?: Crc }).crc32;

export const crc32: Crc = native ? (data, prev = 0) => native(data, prev) >>> 0 : crc32Table;
export const crc32Native: boolean = native !== undefined;

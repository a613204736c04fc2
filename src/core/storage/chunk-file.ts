/**
 * The on-disk form of a filesystem-buffered chunk.
 *
 *   offset size
 *   0      4    magic "LWC1"
 *   4      1    flags: bit 0 = the checksum field holds a CRC-32
 *   5      3    reserved (0)
 *   8      4    header length H (uint32 BE)
 *   12     4    body length B (uint32 BE)
 *   16     4    CRC-32 of header and body (0 without storage.checksum)
 *   20     H    header, msgpack: { input, outputs: [id...], records, created (ms) }
 *   20+H   B    body, msgpack: [[tag, [output index...], [[time, record(, metadata)]...]]...]
 *
 * The body holds the events as they left the filters (the chunk is stored after filtering and
 * routing, as Fluent Bit appends filtered records to its chunks), grouped into segments by tag
 * with the outputs each segment goes to. A replay therefore runs no filter twice and sends each
 * segment only to its own outputs. A file shorter or longer than 20+H+B bytes is torn.
 */
import { EventTime, type LogEvent } from '../event.js';
import { decode, encode } from '../msgpack.js';
import { checkValue, MAX_DEPTH, ScanError } from '../msgpack-scan.js';
import { arrayHead } from '../msgpack-writer.js';
import { crc32 } from './crc32.js';

/** Nesting accepted in a chunk body: segments, events and records (inputs accept MAX_DEPTH), and room for filters. */
const CHUNK_MAX_DEPTH = MAX_DEPTH * 4;

export const MAGIC = Buffer.from('LWC1');
export const PREAMBLE = 20;
const FLAG_CRC = 1;

export interface ChunkHeader {
  input: string;
  outputs: string[];
  records: number;
  created: number;
}

export interface Segment {
  tag: string;
  /** Indexes into ChunkHeader.outputs. */
  outputs: number[];
  events: LogEvent[];
}

export class CorruptChunk extends Error {
  constructor(
    message: string,
    /** Metric label: torn, checksum, format, too_deep. */
    readonly reason: 'torn' | 'checksum' | 'format' | 'too_deep',
  ) {
    super(message);
    this.name = 'CorruptChunk';
  }
}

/** Encodes a chunk; returns the preamble+header and the body as two buffers (written back to back). */
export function encodeChunk(header: ChunkHeader, segments: Segment[], checksum: boolean): { head: Buffer; body: Buffer } {
  const body = encodeBody(segments);
  const h = encode(header);
  const head = Buffer.allocUnsafe(PREAMBLE + h.length);
  MAGIC.copy(head, 0);
  head.writeUInt32BE(checksum ? FLAG_CRC << 24 : 0, 4);
  head.writeUInt32BE(h.length, 8);
  head.writeUInt32BE(body.length, 12);
  head.writeUInt32BE(checksum ? crc32(body, crc32(h)) : 0, 16);
  h.copy(head, PREAMBLE);
  return { head, body };
}

const ENTRY2 = Buffer.from([0x92]);
const ENTRY3 = Buffer.from([0x93]);

/**
 * The body, the same bytes as encoding it as one value, written by parts: a record still in
 * its msgpack bytes (WireEvent#raw, edits applied) is copied as is, never decoded for the write.
 */
function encodeBody(segments: Segment[]): Buffer {
  const parts: Buffer[] = [arrayHead(segments.length)];
  for (const s of segments) {
    parts.push(ENTRY3, encode(s.tag), encode(s.outputs), arrayHead(s.events.length));
    for (const e of s.events) {
      const raw = e.raw;
      if (raw === undefined) {
        parts.push(encode(e.metadata === undefined ? [e.time, e.record] : [e.time, e.record, e.metadata]));
        continue;
      }
      parts.push(e.metadata === undefined ? ENTRY2 : ENTRY3, encode(e.time), Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength));
      if (e.metadata !== undefined) parts.push(encode(e.metadata));
    }
  }
  return Buffer.concat(parts);
}

interface Preamble {
  flags: number;
  headerLength: number;
  bodyLength: number;
  crc: number;
}

function readPreamble(buf: Buffer, fileSize: number): Preamble {
  if (buf.length < PREAMBLE) throw new CorruptChunk(`file has ${buf.length} bytes, shorter than the ${PREAMBLE}-byte preamble`, 'torn');
  if (!buf.subarray(0, 4).equals(MAGIC)) throw new CorruptChunk('bad magic: not a logwarden chunk', 'format');
  const p = { flags: buf[4]!, headerLength: buf.readUInt32BE(8), bodyLength: buf.readUInt32BE(12), crc: buf.readUInt32BE(16) };
  const want = PREAMBLE + p.headerLength + p.bodyLength;
  if (fileSize !== want) throw new CorruptChunk(`file has ${fileSize} bytes, the preamble says ${want}`, 'torn');
  return p;
}

function parseHeader(h: Buffer): ChunkHeader {
  let v: unknown;
  try {
    v = decode(h);
  } catch (e) {
    throw new CorruptChunk(`undecodable header: ${(e as Error).message}`, 'format');
  }
  const o = v as Partial<ChunkHeader> | null;
  if (!o || typeof o.input !== 'string' || !Array.isArray(o.outputs) || !o.outputs.every((x) => typeof x === 'string')) {
    throw new CorruptChunk('header lacks input or outputs', 'format');
  }
  return { input: o.input, outputs: o.outputs, records: Number(o.records ?? 0), created: Number(o.created ?? 0) };
}

/** Reads the header from the first bytes of a file (at least PREAMBLE+H of them) and checks the size. */
export function readHeader(first: Buffer, fileSize: number): { header: ChunkHeader; need: number } {
  const p = readPreamble(first, fileSize);
  if (first.length < PREAMBLE + p.headerLength) return { header: undefined as never, need: PREAMBLE + p.headerLength };
  return { header: parseHeader(first.subarray(PREAMBLE, PREAMBLE + p.headerLength)), need: 0 };
}

/** Decodes and verifies a whole chunk file. Throws CorruptChunk. */
export function decodeChunk(buf: Buffer): { header: ChunkHeader; segments: Segment[] } {
  const p = readPreamble(buf, buf.length);
  const h = buf.subarray(PREAMBLE, PREAMBLE + p.headerLength);
  const body = buf.subarray(PREAMBLE + p.headerLength);
  if (p.flags & FLAG_CRC) {
    const got = crc32(body, crc32(h));
    if (got !== p.crc) throw new CorruptChunk(`checksum mismatch: stored ${p.crc.toString(16)}, computed ${got.toString(16)}`, 'checksum');
  }
  const header = parseHeader(h);
  let raw: unknown;
  try {
    // The decoder recurses per level: a body nested past any record an input accepts (and what
    // filters may add to it) is refused here rather than overflowing the stack on every start.
    checkValue(body, 0, CHUNK_MAX_DEPTH, false);
  } catch (e) {
    if (e instanceof ScanError && e.reason === 'too_deep') throw new CorruptChunk(`body ${e.message}`, 'too_deep');
    throw new CorruptChunk(`undecodable body: ${(e as Error).message}`, 'format');
  }
  try {
    raw = decode(body);
  } catch (e) {
    throw new CorruptChunk(`undecodable body: ${(e as Error).message}`, 'format');
  }
  if (!Array.isArray(raw)) throw new CorruptChunk('body is not a list of segments', 'format');
  const segments: Segment[] = [];
  for (const s of raw) {
    if (!Array.isArray(s) || typeof s[0] !== 'string' || !Array.isArray(s[1]) || !Array.isArray(s[2])) {
      throw new CorruptChunk('malformed segment', 'format');
    }
    const tag = s[0];
    const outputs = (s[1] as unknown[]).map(Number);
    if (outputs.some((i) => !Number.isInteger(i) || i < 0 || i >= header.outputs.length)) throw new CorruptChunk('segment names an unknown output', 'format');
    const events: LogEvent[] = [];
    for (const e of s[2] as unknown[]) {
      if (!Array.isArray(e) || !(e[0] instanceof EventTime) || typeof e[1] !== 'object' || e[1] === null) throw new CorruptChunk('malformed event', 'format');
      events.push(e.length > 2 && e[2] != null ? { tag, time: e[0], record: e[1], metadata: e[2] } : { tag, time: e[0], record: e[1] });
    }
    segments.push({ tag, outputs, events });
  }
  return { header, segments };
}

/**
 * Forward Protocol v1 frames as Fluent Bit's out_forward writes them for logs:
 * - Forward mode `[tag, [entry, ...], options?]` (forward.c flush_forward_mode);
 * - CompressedPackedForward `[tag, bin(gzip(entry stream)), {size, compressed: "gzip"}]` with
 *   `compress gzip`;
 * - an entry is `[EventTime, record]`; `[[EventTime, metadata], record]` when the event carries
 *   metadata and retain_metadata_in_forward_mode is on (Forward Protocol v1.5 metadata);
 *   `[seconds, record]` with time_as_integer (forward_format.c compat mode, which drops metadata).
 * A record nobody read is written as the msgpack bytes it arrived as: it is never decoded here.
 */
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import type { LogEvent } from '../../core/event.js';
import { encode } from '../../core/msgpack.js';
import { arrayHead, binHead, strHead } from '../../core/msgpack-writer.js';

const gzip = promisify(gzipCb);

export interface FrameFormat {
  timeAsInteger: boolean;
  retainMetadata: boolean;
  compress: 'text' | 'gzip';
  /** Send the options map (size, chunk, compressed, add_option entries). */
  sendOptions: boolean;
  requireAck: boolean;
  /** add_option entries, in order. */
  extraOptions: ReadonlyArray<readonly [string, string]>;
}

/** A frame without its options map: written with a fresh `chunk` id on every attempt. */
export interface PreparedFrame {
  tag: string;
  count: number;
  /** Array header, tag, and the entries' array header or bin header. */
  head: Buffer;
  /** Entries (Forward mode) or the gzip of the entry stream. */
  body: Buffer;
}

/** Identifies the encoding choices of a format (nodes of an upstream may differ). */
export function formatKey(f: FrameFormat): string {
  return `${+f.timeAsInteger}${+f.retainMetadata}${f.compress}${+f.sendOptions}${+f.requireAck}${JSON.stringify(f.extraOptions)}`;
}

/** Bytes of a msgpack unsigned integer (time_as_integer seconds). */
function uintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

function writeUint(b: Buffer, p: number, n: number): number {
  if (n < 0x80) {
    b[p] = n;
    return p + 1;
  }
  if (n < 0x100) {
    b[p] = 0xcc;
    b[p + 1] = n;
    return p + 2;
  }
  if (n < 0x10000) {
    b[p] = 0xcd;
    b.writeUInt16BE(n, p + 1);
    return p + 3;
  }
  b[p] = 0xce;
  b.writeUInt32BE(n >>> 0, p + 1);
  return p + 5;
}

/** The entry stream of events (concatenated entries), in one allocation. */
export function encodeEntries(events: readonly LogEvent[], f: FrameFormat): Buffer {
  const n = events.length;
  const records = new Array<Uint8Array>(n);
  const metas = f.retainMetadata && !f.timeAsInteger ? new Array<Buffer | undefined>(n) : undefined;
  let size = 0;
  for (let i = 0; i < n; i++) {
    const ev = events[i]!;
    const rec = ev.raw ?? encode(ev.record);
    records[i] = rec;
    // fixarray(2) + fixext8 EventTime (D7 00 + 8 bytes), or fixarray(2) + uint seconds
    size += 1 + (f.timeAsInteger ? uintSize(ev.time.sec) : 10) + rec.length;
    if (metas) {
      const m = ev.metadata;
      if (m !== undefined && hasKeys(m)) {
        const mb = encode(m);
        metas[i] = mb;
        size += 1 + mb.length; // inner fixarray(2) [time, metadata]
      }
    }
  }
  const b = Buffer.allocUnsafe(size);
  let p = 0;
  for (let i = 0; i < n; i++) {
    const ev = events[i]!;
    b[p++] = 0x92;
    const mb = metas?.[i];
    if (mb) b[p++] = 0x92;
    if (f.timeAsInteger) p = writeUint(b, p, ev.time.sec);
    else {
      b[p] = 0xd7;
      b[p + 1] = 0x00;
      b.writeUInt32BE(ev.time.sec >>> 0, p + 2);
      b.writeUInt32BE(ev.time.nsec >>> 0, p + 6);
      p += 10;
    }
    if (mb) {
      b.set(mb, p);
      p += mb.length;
    }
    const rec = records[i]!;
    b.set(rec, p);
    p += rec.length;
  }
  return b;
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

/** Encodes the events of one tag into a frame (gzip runs off the event loop). */
export async function prepareFrame(tag: string, events: readonly LogEvent[], f: FrameFormat): Promise<PreparedFrame> {
  const entries = encodeEntries(events, f);
  const tagBytes = Buffer.from(tag, 'utf8');
  const withOptions = hasOptions(f);
  if (f.compress === 'gzip') {
    const gz = await gzip(entries);
    return { tag, count: events.length, head: Buffer.concat([arrayHead(3), strHead(tagBytes.length), tagBytes, binHead(gz.length)]), body: gz };
  }
  return {
    tag,
    count: events.length,
    head: Buffer.concat([arrayHead(withOptions ? 3 : 2), strHead(tagBytes.length), tagBytes, arrayHead(events.length)]),
    body: entries,
  };
}

/** Fluent Bit sends the options map when send_options is on, and always with acks, gzip or add_option. */
export function hasOptions(f: FrameFormat): boolean {
  return f.sendOptions || f.requireAck || f.compress === 'gzip' || f.extraOptions.length > 0;
}

/**
 * The options map, in Fluent Bit's order (forward_format.c append_options): chunk, size,
 * compressed, then add_option entries. Undefined when the frame carries none.
 */
export function optionsBytes(frame: PreparedFrame, f: FrameFormat, chunk: string | undefined): Buffer | undefined {
  if (!hasOptions(f)) return undefined;
  const o = new Map<string, unknown>();
  if (chunk !== undefined) o.set('chunk', chunk);
  o.set('size', frame.count);
  if (f.compress === 'gzip') o.set('compressed', 'gzip');
  for (const [k, v] of f.extraOptions) if (!o.has(k)) o.set(k, v);
  return encode(o);
}

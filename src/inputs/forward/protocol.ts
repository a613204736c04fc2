/**
 * Forward Protocol v1 (and the v1.5 / Fluent Bit extensions) decoding of one complete frame.
 *
 * Mode detection follows the spec: look at the second element — an array means Forward mode,
 * str/bin means PackedForward (CompressedPackedForward with {compressed: "gzip"}), an integer,
 * float or ext means Message mode. PackedForward entries sent as msgpack *str* (Fluentd's
 * out_forward) are read as raw bytes, never as UTF-8 text.
 */
import { gunzipSync } from 'node:zlib';
import { EventTime, type LogEvent, type LogRecord } from '../../core/event.js';
import { decode } from '../../core/msgpack.js';
import {
  arrayHeader,
  arrayLength,
  checkValue,
  decodeRaw,
  eventTimeAt,
  isMapType,
  MAX_DATE_SECONDS,
  MAX_DEPTH,
  ScanError,
  scanNext,
  skipValue,
  skipValue as rawSkip,
  timeNsec,
  timeSec,
  type RawValue,
} from '../../core/msgpack-scan.js';
import { WireEvent } from '../../core/wire-event.js';

export class ProtocolError extends Error {
  constructor(
    message: string,
    /** Metric label. */
    readonly reason: string,
  ) {
    super(message);
  }
}

/** A PING, each field the bytes it was on the wire. */
export interface PingMessage {
  type: 'ping';
  hostname: Buffer;
  sharedKeySalt: Buffer;
  /** Hex text. */
  sharedKeyDigest: Buffer;
  username: Buffer;
  /** Hex text, empty without user authentication. */
  passwordDigest: Buffer;
}

export interface EventsMessage {
  type: 'events';
  mode: 'message' | 'forward' | 'packed' | 'compressed';
  tag: string;
  events: LogEvent[];
  /** `chunk` option: the sender wants {ack: chunk} once committed. */
  chunk?: string;
  /** Bytes of the entries once decoded (inflated for CompressedPackedForward). */
  size: number;
}

export type ForwardMessage = { type: 'heartbeat' } | PingMessage | EventsMessage;

/** Decompressed PackedForward payloads are capped (a gzip bomb must not exhaust memory). */
export const MAX_DECOMPRESSED = 100 * 1024 * 1024;

/**
 * What one received event costs on the heap besides its record bytes (the event object, its
 * EventTime, the view on its bytes, its slot in the chunk): about 210 bytes measured on Node 20,
 * rounded up. A frame's memory is estimated as its decoded bytes + events x this.
 */
export const EVENT_HEAP_BYTES = 256;

/** A frame whose decoded events would not fit the memory a frame may take. */
export class FrameOverBudget extends ProtocolError {
  constructor(message: string) {
    super(message, 'memory_limit');
  }
}

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

interface Cursor {
  buf: Buffer;
  pos: number;
}

function readArrayHeader(c: Cursor): number {
  const t = c.buf[c.pos]!;
  if (t >= 0x90 && t <= 0x9f) {
    c.pos += 1;
    return t & 0x0f;
  }
  if (t === 0xdc) {
    c.pos += 3;
    return c.buf.readUInt16BE(c.pos - 2);
  }
  if (t === 0xdd) {
    c.pos += 5;
    return c.buf.readUInt32BE(c.pos - 4);
  }
  return -1;
}

/** Reads a str or bin header; returns the payload bounds, or null when the value is neither. */
function readRaw(c: Cursor): { start: number; end: number; kind: 'str' | 'bin' } | null {
  const b = c.buf;
  const t = b[c.pos]!;
  let hdr: number;
  let len: number;
  let kind: 'str' | 'bin' = 'str';
  if (t >= 0xa0 && t <= 0xbf) {
    hdr = 1;
    len = t & 0x1f;
  } else if (t === 0xd9 || t === 0xc4) {
    hdr = 2;
    len = b[c.pos + 1]!;
  } else if (t === 0xda || t === 0xc5) {
    hdr = 3;
    len = b.readUInt16BE(c.pos + 1);
  } else if (t === 0xdb || t === 0xc6) {
    hdr = 5;
    len = b.readUInt32BE(c.pos + 1);
  } else return null;
  if (t >= 0xc4 && t <= 0xc6) kind = 'bin';
  const start = c.pos + hdr;
  c.pos = start + len;
  return { start, end: c.pos, kind };
}

function isArrayType(t: number): boolean {
  return (t >= 0x90 && t <= 0x9f) || t === 0xdc || t === 0xdd;
}

function isRawType(t: number): boolean {
  return (t >= 0xa0 && t <= 0xbf) || (t >= 0xc4 && t <= 0xc6) || (t >= 0xd9 && t <= 0xdb);
}

/** Group markers of Fluent Bit's event format: timestamps -1 (start) and -2 (end). */
const GROUP_START = -1;
const GROUP_END = -2;

function isGroupMarker(t: unknown): boolean {
  if (typeof t === 'number') return t === GROUP_START || t === GROUP_END;
  // As an EventTime, -1/-2 arrive as uint32 seconds 0xFFFFFFFF / 0xFFFFFFFE.
  return t instanceof EventTime && (t.sec === 0xffffffff || t.sec === 0xfffffffe);
}

function toTime(t: unknown): EventTime {
  if (t instanceof EventTime) return t;
  if (typeof t === 'number' && Number.isFinite(t) && t >= 0 && t < MAX_DATE_SECONDS) return Number.isInteger(t) ? new EventTime(t, 0) : EventTime.fromSeconds(t);
  throw new ProtocolError(`invalid event time ${typeof t === 'bigint' ? String(t) : (JSON.stringify(t) ?? typeof t)}`, 'bad_time');
}

function isRecord(v: unknown): v is LogRecord {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof EventTime);
}

/** Appends one `[time, record]` or `[[time, {meta}], record]` entry; group markers are skipped. */
function pushEntry(out: LogEvent[], tag: string, entry: unknown): void {
  if (!Array.isArray(entry) || entry.length < 2) throw new ProtocolError('entry is not an array [time, record]', 'bad_entry');
  let t = entry[0];
  let metadata: LogRecord | undefined;
  if (Array.isArray(t)) {
    // Forward Protocol v1.5: Metadata ::= [EventTime, Hash*]
    const meta = t[1];
    t = t[0];
    if (meta !== undefined && meta !== null && !isRecord(meta)) throw new ProtocolError('entry metadata is not a map', 'bad_entry');
    if (meta && Object.keys(meta).length) metadata = meta as LogRecord;
  }
  if (isGroupMarker(t)) return;
  const record = entry[1];
  if (!isRecord(record)) throw new ProtocolError('record is not a map', 'bad_record');
  const ev: LogEvent = metadata ? { tag, time: toTime(t), record, metadata } : { tag, time: toTime(t), record };
  out.push(ev);
}

/**
 * Reads `count` entries (-1: until the end of `b`) starting at `pos` without decoding records:
 * `[time, record]` or `[[time, {metadata}], record]`. Returns the offset after the last entry.
 * Every value is checked as it is skipped (checkValue): an entry nested deeper than MAX_DEPTH
 * levels (counted from the entry itself) or holding an invalid extension value refuses the frame
 * here, before anything decodes it. `depth` is how deep the entries sit in what was framed.
 */
function scanEntries(
  b: Buffer,
  pos: number,
  count: number,
  tag: string,
  out: LogEvent[],
  depth = 0,
  maxHeap = Infinity,
  mode = 'PackedForward',
  /** The framer has checked these bytes already (a Forward-mode frame it framed). */
  framed = false,
): number {
  // Levels left below an entry's array, and below its [time, metadata] array.
  const inEntry = MAX_DEPTH - depth - 1;
  const skipValue = framed ? (buf: Buffer, at: number, _levels?: number) => rawSkip(buf, at) : (buf: Buffer, at: number, levels = inEntry) => checkValue(buf, at, levels);
  // Refused as soon as the events seen so far would not fit, before the rest are built.
  const maxEvents = Math.floor((maxHeap - b.length) / EVENT_HEAP_BYTES);
  try {
    for (let i = 0; count < 0 ? pos < b.length : i < count; i++) {
      if (i >= maxEvents) throw overBudget(b.length, maxEvents, maxHeap);
      const items = arrayLength(b, pos);
      if (items < 2) throw new ProtocolError('entry is not an array [time, record]', 'bad_entry');
      pos = scanNext;
      let metadata: LogRecord | undefined;
      let timePos = pos;
      let afterTime: number;
      const metaItems = arrayLength(b, pos);
      const meta = metaItems >= 0;
      if (meta) {
        // Forward Protocol v1.5: Metadata ::= [EventTime, Hash*]
        timePos = scanNext;
        const timeEnd = skipValue(b, timePos, inEntry - 1);
        afterTime = timeEnd;
        for (let k = 1; k < metaItems; k++) {
          const end = skipValue(b, afterTime, inEntry - 1);
          if (k === 1 && !emptyMap(b, afterTime, end)) {
            const m = decode(b.subarray(afterTime, end));
            if (!isRecord(m)) throw new ProtocolError('entry metadata is not a map', 'bad_entry');
            metadata = m;
          }
          afterTime = end;
        }
      } else afterTime = skipValue(b, pos);
      let time: EventTime;
      if (eventTimeAt(b, timePos)) {
        // -1 / -2 (group start / end) arrive as uint32 seconds 0xFFFFFFFF / 0xFFFFFFFE
        if (timeSec === 0xffffffff || timeSec === 0xfffffffe) time = GROUP_MARKER;
        else time = new EventTime(timeSec, timeNsec);
      } else {
        const t = decode(b.subarray(timePos, meta ? skipValue(b, timePos, inEntry - 1) : afterTime));
        time = isGroupMarker(t) ? GROUP_MARKER : toTime(t);
      }
      const recStart = afterTime;
      if (!isMapType(b[recStart]!)) {
        if (recStart >= b.length) throw new ProtocolError('truncated entry', 'bad_entry');
        throw new ProtocolError('record is not a map', 'bad_record');
      }
      // The record's top-level index is written while it is skipped (the same pass), for the
      // filters that read it in place (RecordView).
      const idxAt = indexUsed;
      const recEnd = indexRecord(b, recStart, skipValue, inEntry);
      pos = recEnd;
      for (let k = 2; k < items; k++) pos = skipValue(b, pos);
      if (time !== GROUP_MARKER) {
        const e = new WireEvent(tag, time, b.subarray(recStart, recEnd), metadata);
        if (indexUsed > idxAt) e.setIndex(index, idxAt, (indexUsed - idxAt) / 5);
        out.push(e);
      }
    }
    return pos;
  } catch (e) {
    if (e instanceof ScanError) {
      if (e.reason === 'too_deep') throw new ProtocolError(`refused ${mode} entry: nested deeper than ${MAX_DEPTH} levels`, e.reason);
      throw new ProtocolError(`${e.reason === 'malformed' ? 'malformed' : 'refused'} ${mode} entry: ${e.message}`, e.reason);
    }
    throw e;
  }
}

const GROUP_MARKER = new EventTime(-1, 0);

// Top-level indexes of the records framed, five offsets per key (RecordView's form), in shared
// arrays: one allocation per many records. A full array is left to the events that use it.
let index = new Int32Array(1 << 16);
let indexUsed = 0;

/**
 * Skips the record (a map) at `start` as `skip` would, and writes its top-level index (offsets
 * relative to `start`) at `index[indexUsed...]` when every key is a string; returns the end.
 */
/** Whether the value at [at, end) is a map without entries (Fluent Bit writes an empty metadata map as map32). */
function emptyMap(b: Buffer, at: number, end: number): boolean {
  const t = b[at]!;
  return t === 0x80 || ((t === 0xde || t === 0xdf) && end === at + (t === 0xde ? 3 : 5));
}

function indexRecord(b: Buffer, start: number, skip: (buf: Buffer, at: number, levels?: number) => number, levels: number): number {
  const t = b[start]!;
  let n: number;
  let p: number;
  if (t >= 0x80 && t <= 0x8f) {
    n = t & 0x0f;
    p = start + 1;
  } else if (t === 0xde && start + 3 <= b.length) {
    n = (b[start + 1]! << 8) | b[start + 2]!;
    p = start + 3;
  } else if (t === 0xdf && start + 5 <= b.length) {
    // Fluent Bit writes every record map as map32, whatever its size.
    n = b.readUInt32BE(start + 1);
    p = start + 5;
    if (n > (b.length - p) >> 1) return skip(b, start); // truncated: the skip reports it
  } else return skip(b, start);
  if (n === 0) return p;
  // The record is one level of what checkValue allows; its keys and values get the rest.
  if (levels < 1) return skip(b, start);
  if (indexUsed + n * 5 > index.length) {
    index = new Int32Array(Math.max(1 << 16, n * 5));
    indexUsed = 0;
  }
  const base = indexUsed;
  let o = base;
  let strings = true;
  for (let i = 0; i < n; i++) {
    const kh = p;
    const kt = b[p]!;
    let ks: number;
    if (kt >= 0xa0 && kt <= 0xbf) ks = p + 1;
    else if (kt === 0xd9) ks = p + 2;
    else if (kt === 0xda) ks = p + 3;
    else if (kt === 0xdb) ks = p + 5;
    else {
      strings = false;
      ks = p;
    }
    const ke = skip(b, p, levels - 1);
    const ve = skip(b, ke, levels - 1);
    if (strings) {
      index[o] = kh - start;
      index[o + 1] = ks - start;
      index[o + 2] = ke - start;
      index[o + 3] = ke - start;
      index[o + 4] = ve - start;
      o += 5;
    }
    p = ve;
  }
  if (strings) indexUsed = o;
  return p;
}

function overBudget(bytes: number, maxEvents: number, maxHeap: number): FrameOverBudget {
  return new FrameOverBudget(
    `frame of ${mib(bytes)} decoded holds more than ${Math.max(0, maxEvents)} events, above the ${mib(maxHeap)} a frame may take in memory (a quarter of service.memory_limit, ${EVENT_HEAP_BYTES} bytes per event + its bytes)`,
  );
}

/**
 * Throws FrameOverBudget when `b` holds more than `maxEvents` values. Entries take at least 3
 * bytes, so only a payload longer than 3 x maxEvents is scanned (values skipped, nothing built).
 */
function countEntries(b: Buffer, maxEvents: number, maxHeap: number): void {
  if (b.length <= 3 * maxEvents) return;
  let pos = 0;
  try {
    for (let i = 0; pos < b.length; i++) {
      if (i >= maxEvents) throw overBudget(b.length, maxEvents, maxHeap);
      pos = skipValue(b, pos);
    }
  } catch (e) {
    if (e instanceof ScanError) return; // scanEntries reports it
    throw e;
  }
}

/** Checks a whole frame before it is decoded at once (invalid extension values, nesting). */
function checked(frame: Buffer): void {
  try {
    checkValue(frame, 0);
  } catch (e) {
    if (e instanceof ScanError) throw new ProtocolError(`refused message: ${e.message}`, e.reason);
    throw e;
  }
}

function optionsOf(v: unknown): { chunk?: string; compressed?: string } {
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) throw new ProtocolError('option is not a map', 'bad_option');
  const out: { chunk?: string; compressed?: string } = {};
  if (v.chunk !== undefined) {
    if (typeof v.chunk === 'string') out.chunk = v.chunk;
    else if (v.chunk instanceof Uint8Array) out.chunk = Buffer.from(v.chunk).toString('utf8');
    else throw new ProtocolError('option chunk is not a string', 'bad_option');
  }
  if (v.compressed !== undefined) out.compressed = String(v.compressed);
  return out;
}

function gunzip(payload: Buffer, maxHeap: number): Buffer {
  const max = Math.min(MAX_DECOMPRESSED, maxHeap);
  try {
    // Several gzip members may be concatenated; zlib reads them all.
    return gunzipSync(payload, { maxOutputLength: max });
  } catch (e) {
    const msg = (e as Error).message;
    if (/maxOutputLength|Cannot create a Buffer larger/i.test(msg) || (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      if (max < MAX_DECOMPRESSED) {
        throw new FrameOverBudget(`${payload.length} bytes of gzip inflate past ${mib(max)}, the memory a frame may take (a quarter of service.memory_limit)`);
      }
      throw new ProtocolError(`decompressed PackedForward payload exceeds ${MAX_DECOMPRESSED} bytes`, 'too_large');
    }
    throw new ProtocolError(`bad gzip payload: ${msg}`, 'bad_gzip');
  }
}

/**
 * Decodes one complete frame. Throws ProtocolError (or a decoder error) on malformed input, and
 * FrameOverBudget when its events would take more than `maxHeap` bytes of memory (estimated).
 * `framed`: the frame comes from the Framer, which refused nesting past 256 levels and invalid
 * extension values in it, so only what it could not see (PackedForward payloads) is checked here.
 */
export function decodeFrame(frame: Buffer, maxHeap = Infinity, framed = false): ForwardMessage {
  const first = frame[0]!;
  if (first === 0xc0) return { type: 'heartbeat' };
  const c: Cursor = { buf: frame, pos: 0 };
  const n = readArrayHeader(c);
  if (n < 0) throw new ProtocolError(`message is not an array (type byte 0x${first.toString(16)})`, 'not_array');
  if (n < 2) throw new ProtocolError(`message array has ${n} elements; expected 2 to 4`, 'bad_message');
  const tagRaw = readRaw(c);
  if (tagRaw?.kind !== 'str') throw new ProtocolError('tag is not a string', 'bad_tag');
  const tag = frame.toString('utf8', tagRaw.start, tagRaw.end);
  if (tag === 'PING' && n === 6) return decodePing(frame);
  if (n > 4) throw new ProtocolError(`message array has ${n} elements; expected 2 to 4`, 'bad_message');
  const second = frame[c.pos]!;

  if (isArrayType(second)) {
    // Keep the records as bytes: the frame is copied out of the connection buffer once.
    const own = Buffer.from(frame);
    const [count, first] = arrayHeader(own, c.pos)!;
    const events: LogEvent[] = [];
    const after = scanEntries(own, first, count, tag, events, 2, maxHeap, 'Forward', framed);
    const opts = n > 2 ? optionsOf(decode(own.subarray(after))) : {};
    return { type: 'events', mode: 'forward', tag, events, size: frame.length, ...(opts.chunk !== undefined ? { chunk: opts.chunk } : {}) };
  }

  if (isRawType(second)) {
    const raw = readRaw(c)!;
    const opts = n > 2 ? optionsOf(decode(frame.subarray(c.pos))) : {};
    let payload = frame.subarray(raw.start, raw.end);
    let mode: EventsMessage['mode'] = 'packed';
    const gzipMagic = payload.length >= 2 && payload[0] === 0x1f && payload[1] === 0x8b;
    const zstdMagic = payload.length >= 4 && payload.readUInt32LE(0) === 0xfd2fb528;
    if (opts.compressed !== undefined && opts.compressed !== 'gzip' && opts.compressed !== 'text') {
      throw new ProtocolError(`unsupported compression '${opts.compressed}' (gzip only)`, 'bad_compression');
    }
    if (zstdMagic) throw new ProtocolError('zstd-compressed payloads are not supported; use compress gzip', 'bad_compression');
    // As Fluent Bit does, the magic bytes decide when they disagree with the option.
    if (gzipMagic) {
      payload = gunzip(payload, maxHeap);
      mode = 'compressed';
    } else if (opts.compressed === 'gzip') {
      throw new ProtocolError('option says gzip but the payload is not gzip', 'bad_gzip');
    }
    const events: LogEvent[] = [];
    // A payload that may hold more entries than fit is counted first, before it is copied.
    if (mode === 'packed') countEntries(payload, Math.floor((maxHeap - payload.length) / EVENT_HEAP_BYTES), maxHeap);
    // gunzip made a fresh buffer; an uncompressed payload still lives in the connection buffer.
    const own = mode === 'compressed' ? payload : Buffer.from(payload);
    scanEntries(own, 0, -1, tag, events, 0, maxHeap, mode === 'compressed' ? 'CompressedPackedForward' : 'PackedForward');
    return { type: 'events', mode, tag, events, size: own.length, ...(opts.chunk !== undefined ? { chunk: opts.chunk } : {}) };
  }

  // Message mode: [tag, time, record, option?]
  if (!framed) checked(frame);
  const all = decode(frame) as unknown[];
  if (n < 3) throw new ProtocolError('message mode needs [tag, time, record]', 'bad_message');
  const events: LogEvent[] = [];
  pushEntry(events, tag, [all[1], all[2]]);
  const opts = optionsOf(all[3]);
  return { type: 'events', mode: 'message', tag, events, size: frame.length, ...(opts.chunk !== undefined ? { chunk: opts.chunk } : {}) };
}

const PING_FIELDS = ['hostname', 'shared_key_salt', 'shared_key_digest', 'username', 'password_digest'] as const;

/**
 * PING [hostname, shared_key_salt, shared_key_digest, username, password_digest]: every field is
 * kept as the bytes it is on the wire, str or bin. Fluent Bit's out_forward sends its 16 random
 * salt bytes in a msgpack str; read as UTF-8 text they would change and no digest would match.
 */
function decodePing(frame: Buffer): PingMessage {
  let all: RawValue;
  try {
    all = decodeRaw(frame);
  } catch (e) {
    throw new ProtocolError(`malformed PING: ${(e as Error).message}`, 'bad_handshake');
  }
  const fields = (all as RawValue[]).slice(1).map((v, i) => {
    if (!Buffer.isBuffer(v)) throw new ProtocolError(`PING ${PING_FIELDS[i]} is not a str or bin`, 'bad_handshake');
    return v;
  });
  const [hostname, sharedKeySalt, sharedKeyDigest, username, passwordDigest] = fields as [Buffer, Buffer, Buffer, Buffer, Buffer];
  return { type: 'ping', hostname, sharedKeySalt, sharedKeyDigest, username, passwordDigest };
}

/**
 * Record formats shared by the file and stdout outputs, with Fluent Bit's names:
 * out_file: `out_file` (tag: [time, {record}]), `plain`, `csv`, `ltsv`, `template`, `msgpack`;
 * out_stdout / out_http: `json_lines`, `json` with `json_date_key` and `json_date_format`.
 */
import type { LogEvent } from '../core/event.js';
import { recordJSON, toJSONLine } from '../core/json.js';
import { encode } from '../core/msgpack.js';
import { JsonWriter, writeObjectJSON, writeRecordJSON } from '../core/msgpack-json.js';
import type { OptionTable } from '../config/schema.js';

export const dateFormats = ['double', 'epoch', 'epoch_ms', 'iso8601', 'java_sql_timestamp'] as const;

export const jsonDateOptions = {
  json_date_key: { type: 'string', default: 'date', description: "Key of the time in json_lines/json records; 'false' leaves it out" },
  json_date_format: { type: 'enum', values: dateFormats, default: 'double', description: 'Format of json_date_key' },
} satisfies OptionTable;

export interface FormatOptions {
  format: string;
  json_date_key?: string;
  json_date_format?: string;
  delimiter?: string;
  label_delimiter?: string;
  template?: string;
}

function delimiterOf(v: string | undefined, dflt: string): string {
  if (v === undefined) return dflt;
  switch (v.toLowerCase()) {
    case '\\t':
    case 'tab':
      return '\t';
    case 'space':
      return ' ';
    case 'comma':
      return ',';
    default:
      return v;
  }
}

function dateValue(ev: LogEvent, fmt: string): string {
  switch (fmt) {
    case 'epoch':
      return String(ev.time.sec);
    case 'epoch_ms':
      return String(ev.time.sec * 1000 + Math.floor(ev.time.nsec / 1e6));
    case 'iso8601':
      return `"${new Date(ev.time.sec * 1000 + Math.floor(ev.time.nsec / 1e6)).toISOString().slice(0, 19)}.${String(Math.floor(ev.time.nsec / 1000)).padStart(6, '0')}Z"`;
    case 'java_sql_timestamp':
      return `"${new Date(ev.time.sec * 1000).toISOString().slice(0, 19).replace('T', ' ')}.${String(Math.floor(ev.time.nsec / 1000)).padStart(6, '0')}"`;
    default:
      return ev.time.toFixed9().slice(0, -3); // double with microseconds, as Fluent Bit prints it
  }
}

/** Writes json_date_key's value: the numeric forms digit by digit, without a string per record. */
function writeDate(w: JsonWriter, ev: LogEvent, fmt: string): void {
  const { sec, nsec } = ev.time;
  if (sec >= 0 && Number.isSafeInteger(sec * 1000)) {
    switch (fmt) {
      case 'double':
        w.digits(sec);
        w.byte(0x2e);
        w.digits(Math.floor(nsec / 1000), 6);
        return;
      case 'epoch':
        w.digits(sec);
        return;
      case 'epoch_ms':
        w.digits(sec * 1000 + Math.floor(nsec / 1e6));
        return;
    }
  }
  w.text(dateValue(ev, fmt));
}

/**
 * Writers kept for the next batch once the caller is done with the bytes (Formatter#release):
 * a batch's JSON is written into the buffer of an earlier one instead of a new one each time.
 */
const POOLED = 2;
const POOLED_MAX_BYTES = 8 * 1024 * 1024;

/** Events -> text (or bytes for msgpack). */
export interface Formatter {
  (events: readonly LogEvent[]): string | Buffer;
  /**
   * The caller no longer needs `data` (what this formatter returned): its buffer may be reused
   * for a later batch. Optional to call; data not from this formatter is ignored.
   */
  release(data: string | Buffer): void;
}

function pooled(write: (w: JsonWriter, events: readonly LogEvent[]) => void): Formatter {
  const free: JsonWriter[] = [];
  const lent = new Map<ArrayBuffer, JsonWriter>();
  const f = ((events: readonly LogEvent[]) => {
    let w = free.pop();
    const hint = sizeHint(events);
    if (w === undefined) w = new JsonWriter(Math.max(hint, 64 * 1024));
    else {
      w.reset();
      w.ensure(hint);
    }
    write(w, events);
    // Buffers of 64 KiB and more own their memory (never a slice of Buffer's shared pool).
    lent.set(w.buf.buffer as ArrayBuffer, w);
    if (lent.size > 64) lent.clear(); // callers that never release: forget the oldest
    return w.view();
  }) as Formatter;
  f.release = (data) => {
    if (typeof data === 'string') return;
    const w = lent.get(data.buffer as ArrayBuffer);
    if (w === undefined || w.buf.buffer !== data.buffer) return;
    lent.delete(data.buffer as ArrayBuffer);
    if (free.length < POOLED && w.buf.length <= POOLED_MAX_BYTES) free.push(w);
  };
  return f;
}

function plain(format: (events: readonly LogEvent[]) => string | Buffer): Formatter {
  const f = format as Formatter;
  f.release = () => undefined;
  return f;
}

const ARRAY2 = Buffer.from([0x92]);

/** Room for the batch's JSON: wire bytes plus a little where known, else 1 KB per record. */
function sizeHint(events: readonly LogEvent[]): number {
  let n = 64;
  for (const ev of events) n += ev.raw ? ev.raw.length + (ev.raw.length >> 3) + 64 : 1024;
  return n;
}

function scalarText(v: unknown): string {
  return typeof v === 'string' ? v : toJSONLine(v);
}

/** Compiles a formatter: events -> text (or bytes for msgpack). */
export function compileFormat(o: FormatOptions): Formatter {
  switch (o.format) {
    case 'json_lines':
    case 'json': {
      const key = o.json_date_key && o.json_date_key.toLowerCase() !== 'false' ? o.json_date_key : undefined;
      const fmt = o.json_date_format ?? 'double';
      const keyJSON = key === undefined ? '' : JSON.stringify(key);
      const array = o.format === 'json';
      return pooled((w, events) => {
        if (array) w.byte(0x5b);
        for (let i = 0; i < events.length; i++) {
          const ev = events[i]!;
          if (array && i) w.byte(0x2c);
          if (key === undefined) appendRecord(w, ev, false);
          else {
            w.byte(0x7b);
            w.text(keyJSON);
            w.byte(0x3a);
            writeDate(w, ev, fmt);
            appendRecord(w, ev, true);
          }
          if (!array) w.byte(0x0a);
        }
        if (array) w.text(']\n');
      });
    }
    case 'plain':
      return pooled((w, events) => {
        for (let i = 0; i < events.length; i++) {
          appendRecord(w, events[i]!, false);
          w.byte(0x0a);
        }
      });
    case 'csv': {
      const d = delimiterOf(o.delimiter, ',');
      return plain((events) => events.map((ev) => [ev.time.toFixed9(), ...Object.values(ev.record).map((v) => toJSONLine(v))].join(d)).join('\n') + '\n');
    }
    case 'ltsv': {
      const d = delimiterOf(o.delimiter, '\t');
      const ld = delimiterOf(o.label_delimiter, ':');
      return plain((events) => events.map((ev) => [`time${ld}${ev.time.toFixed9()}`, ...Object.entries(ev.record).map(([k, v]) => `${k}${ld}${scalarText(v)}`)].join(d)).join('\n') + '\n');
    }
    case 'template': {
      const parts = (o.template ?? '{time} {message}').split(/(\{[^{}]+\})/);
      return plain((events) => {
        let s = '';
        for (const ev of events) {
          for (const p of parts) {
            if (p.length > 2 && p.startsWith('{') && p.endsWith('}')) {
              const k = p.slice(1, -1);
              if (k === 'time') s += ev.time.toFixed9();
              else if (k === 'tag') s += ev.tag;
              else {
                const v = Object.hasOwn(ev.record, k) ? ev.record[k] : undefined;
                s += v === undefined ? '' : scalarText(v);
              }
            } else s += p;
          }
          s += '\n';
        }
        return s;
      });
    }
    case 'msgpack':
      // [time, record]; a record nobody read is written as the bytes it arrived as.
      return plain((events) => Buffer.concat(events.map((ev) => (ev.raw ? Buffer.concat([ARRAY2, encode(ev.time), ev.raw]) : encode([ev.time, ev.record])))));
    default: // out_file: `tag: [sec.nsec, {record}]`
      return pooled((w, events) => {
        for (const ev of events) {
          w.text(`${ev.tag}: [${ev.time.toFixed9()}, `);
          appendRecord(w, ev, false);
          w.text(']\n');
        }
      });
  }
}

/**
 * The record as JSON: from its wire bytes when nothing read it, else from the object. With
 * `open`, the object is open and has a first member already (writeRecordJSON).
 */
function appendRecord(w: JsonWriter, ev: LogEvent, open: boolean): void {
  const raw = ev.raw;
  if (raw !== undefined) writeRecordJSON(w, raw, open);
  else writeObjectJSON(w, recordJSON(ev.record), open);
}

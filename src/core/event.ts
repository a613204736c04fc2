/**
 * Events and time. An event is `{ tag, time, record }`; `time` keeps nanoseconds end to end
 * because Fluent Bit sends EventTime with nanoseconds and Loki takes nanoseconds.
 */

/** Forward Protocol v1 EventTime: seconds and nanoseconds since the epoch. */
export class EventTime {
  constructor(
    public readonly sec: number,
    public readonly nsec: number,
  ) {}

  static now(): EventTime {
    const ms = Date.now();
    const hr = process.hrtime.bigint() % 1_000_000n;
    return new EventTime(Math.floor(ms / 1000), (ms % 1000) * 1_000_000 + Number(hr));
  }

  /** From a number of seconds (integer or float). */
  static fromSeconds(s: number): EventTime {
    const sec = Math.floor(s);
    const nsec = Math.round((s - sec) * 1e9);
    return nsec >= 1e9 ? new EventTime(sec + 1, nsec - 1e9) : new EventTime(sec, nsec);
  }

  /** From an RFC 3339 / ISO 8601 timestamp with up to nanosecond digits; null when unparsable. */
  static fromISO(s: string): EventTime | null {
    const m = /^(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:?\d{2})?$/.exec(s);
    if (!m) return null;
    const ms = Date.parse(`${m[1]!.replace(' ', 'T')}${m[3] ?? 'Z'}`);
    if (Number.isNaN(ms)) return null;
    const frac = (m[2] ?? '').padEnd(9, '0');
    return new EventTime(Math.floor(ms / 1000), Number(frac));
  }

  toSeconds(): number {
    return this.sec + this.nsec / 1e9;
  }

  /** Nanoseconds since the epoch as a decimal string (Loki's timestamp form). */
  toNanoString(): string {
    return this.sec === 0 ? String(this.nsec) : `${this.sec}${String(this.nsec).padStart(9, '0')}`;
  }

  /** RFC 3339 in UTC with nine fractional digits; `sec.nnnnnnnnn` for seconds no Date can hold. */
  toISO(): string {
    const d = new Date(this.sec * 1000);
    if (Number.isNaN(d.getTime())) return this.toFixed9();
    return `${d.toISOString().slice(0, 19)}.${String(this.nsec).padStart(9, '0')}Z`; // from YYYY-MM-DDTHH:MM:SS.000Z
  }

  /** `sec.nnnnnnnnn`, the form Fluent Bit's out_file and stdout print. */
  toFixed9(): string {
    return `${this.sec}.${String(this.nsec).padStart(9, '0')}`;
  }

  compare(o: EventTime): number {
    return this.sec - o.sec || this.nsec - o.nsec;
  }
}

export type LogRecord = Record<string, unknown>;

export interface LogEvent {
  tag: string;
  time: EventTime;
  record: LogRecord;
  /** Forward Protocol v1.5 / Fluent Bit metadata map, kept when the sender sent one. */
  metadata?: LogRecord;
  /** The record's msgpack bytes, present only while the record was neither read nor replaced. */
  readonly raw?: Uint8Array;
}

export function makeEvent(tag: string, time: EventTime, record: LogRecord, metadata?: LogRecord): LogEvent {
  return metadata === undefined ? { tag, time, record } : { tag, time, record, metadata };
}

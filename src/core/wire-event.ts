/**
 * An event as received on the wire: the record stays as its msgpack bytes until something reads
 * it. Outputs that only re-encode records (forward → file json_lines, forward → forward) use
 * `raw` and never build the object; the first read of `record` decodes it once and drops the
 * bytes (the record may then change, so the bytes would be stale).
 */
import type { EventTime, LogEvent, LogRecord } from './event.js';
import { decode } from './msgpack.js';

export class WireEvent implements LogEvent {
  #raw: Uint8Array | undefined;
  #record: LogRecord | undefined;
  metadata?: LogRecord;

  constructor(
    public tag: string,
    public time: EventTime,
    raw: Uint8Array,
    metadata?: LogRecord,
  ) {
    this.#raw = raw;
    if (metadata !== undefined) this.metadata = metadata;
  }

  get record(): LogRecord {
    if (this.#record === undefined) {
      this.#record = decode(this.#raw!) as LogRecord;
      this.#raw = undefined;
    }
    return this.#record;
  }

  set record(r: LogRecord) {
    this.#record = r;
    this.#raw = undefined;
  }

  /** The record's msgpack bytes while nobody has read or replaced the record. */
  get raw(): Uint8Array | undefined {
    return this.#raw;
  }
}

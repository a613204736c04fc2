/**
 * An event as received on the wire: the record stays as its msgpack bytes until something reads
 * it. Outputs that only re-encode records (forward → file json_lines, forward → forward) use
 * `raw` and never build the object; filters read fields through a RecordView over `raw`
 * (src/core/record-view.ts) and record their changes with `edit`, applied to the bytes in one
 * copy pass when `raw` is next read. The first read of `record` decodes it once, applies the
 * pending edits to the object and drops the bytes (the record may then change, so the bytes
 * would be stale).
 */
import type { EventTime, LogEvent, LogRecord } from './event.js';
import { decode } from './msgpack.js';
import { ScanError } from './msgpack-scan.js';
import { applyEdit } from './record-edit.js';
import { applyEdits, editedIndex, editedIndexAt, editedIndexN } from './record-splice.js';
import { UNSUPPORTED, ViewUnsupported, type Edit, type RecordView } from './record-view.js';

export class WireEvent implements LogEvent {
  #raw: Uint8Array | undefined;
  #record: LogRecord | undefined;
  #edits: Edit[] | undefined;
  /** The top-level index of #raw (RecordView#idx), from the input or the first view. */
  #index: Int32Array | undefined;
  #indexAt = 0;
  #indexN = 0;
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
      let r = decode(this.#raw!) as LogRecord;
      const edits = this.#edits;
      if (edits !== undefined) {
        for (const e of edits) r = applyEdit(r, e);
        this.#edits = undefined;
      }
      this.#record = r;
      this.#raw = undefined;
      this.#index = undefined;
    }
    return this.#record;
  }

  set record(r: LogRecord) {
    this.#record = r;
    this.#raw = undefined;
    this.#edits = undefined;
    this.#index = undefined;
  }

  /**
   * Points `view` at the record's bytes with the pending edits applied (`edited`) or without,
   * with the index the event keeps (built on the first look and kept for the next filters).
   * False when the record is no longer bytes or its top level cannot be read byte for byte.
   */
  open(view: RecordView, edited = true): boolean {
    if (edited && this.#edits !== undefined) this.#flush();
    const raw = this.#raw;
    if (raw === undefined) return false;
    view.reset(raw, this.#index, this.#indexAt, this.#indexN);
    if (this.#index !== undefined) return true;
    if (!view.readable()) return false;
    this.#setIndex(view.idx, view.base, view.n);
    return true;
  }

  /** The top-level index of the bytes as the input found it: `n` entries from `index[at]`. */
  setIndex(index: Int32Array, at: number, n: number): void {
    if (this.#edits === undefined && this.#record === undefined) this.#setIndex(index, at, n);
  }

  #setIndex(index: Int32Array | undefined, at: number, n: number): void {
    this.#index = index;
    this.#indexAt = at;
    this.#indexN = n;
  }

  /** The record's msgpack bytes (edits applied) while nobody has read or replaced the record. */
  get raw(): Uint8Array | undefined {
    if (this.#edits !== undefined) this.#flush();
    return this.#raw;
  }

  /** Whether the record is still bytes (with or without pending edits). */
  get isBytes(): boolean {
    return this.#raw !== undefined;
  }

  /**
   * A new event over the same record bytes (the pending edits applied first, so both start from
   * the same record), with the top-level index shared; undefined once the record is an object.
   * Sharing is safe because bytes are never written once produced: applyEdits writes a new
   * buffer, decoding and the view only read, and each event keeps its own edits.
   */
  fork(tag: string, metadata?: LogRecord): WireEvent | undefined {
    if (this.#edits !== undefined) this.#flush();
    const raw = this.#raw;
    if (raw === undefined) return undefined;
    const copy = new WireEvent(tag, this.time, raw, metadata);
    if (this.#index !== undefined) copy.#setIndex(this.#index, this.#indexAt, this.#indexN);
    return copy;
  }

  /** Records a change: kept with the bytes, or applied to the record once it was decoded. */
  edit(e: Edit): void {
    if (this.#raw === undefined) {
      this.#record = applyEdit(this.#record!, e);
      return;
    }
    if (this.#edits === undefined) this.#edits = [e];
    else this.#edits.push(e);
  }

  /**
   * Whether top-level `key` is there after the pending edits, without applying them: the edits
   * answer for the keys they name, `view` (pointed at the bytes here) for the others.
   */
  hasKey(key: string, view: RecordView): boolean {
    if (this.#raw === undefined) return Object.hasOwn(this.#record!, key);
    const edits = this.#edits;
    if (edits !== undefined) {
      for (let i = edits.length - 1; i >= 0; i--) {
        const e = edits[i]!;
        if (e.op === 'nest' || e.op === 'lift') {
          // Which keys these move depends on the record: apply the edits and look.
          this.#flush();
          if (this.#raw === undefined) return Object.hasOwn(this.#record!, key);
          if (!this.open(view, false)) throw UNSUPPORTED;
          return view.has(key);
        }
        if (e.op === 'put' && e.key === key) return true;
        if (e.op === 'remove' && e.path.length === 1 && e.path[0] === key) return false;
        if (e.op === 'removeKeys' && e.match(key)) return false;
        if (e.op === 'rename' && e.key !== e.to) {
          if (e.to === key) return true; // recorded only when its key was there
          if (e.key === key) return false;
        }
        if (e.op === 'copy' && e.key !== e.to && e.to === key) return true; // likewise
      }
    }
    if (!this.open(view, false)) throw UNSUPPORTED;
    return view.has(key);
  }

  #flush(): void {
    const edits = this.#edits!;
    this.#edits = undefined;
    try {
      this.#raw = applyEdits(this.#raw!, edits, this.#index, this.#indexAt, this.#indexN);
      this.#setIndex(editedIndex, editedIndexAt, editedIndexN);
    } catch (e) {
      if (!(e instanceof ViewUnsupported) && !(e instanceof ScanError) && !(e instanceof RangeError)) throw e;
      // Not byte for byte (keys that are not strings, a duplicate key an edit names): the object.
      let r = decode(this.#raw!) as LogRecord;
      for (const x of edits) r = applyEdit(r, x);
      this.#record = r;
      this.#raw = undefined;
      this.#index = undefined;
    }
  }
}

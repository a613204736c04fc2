/**
 * Finds the boundaries of top-level msgpack values in a TCP byte stream without decoding them.
 *
 * The scanner is resumable: it keeps its position and a stack of "items left" per open
 * array/map, so bytes already scanned are never scanned again when the next segment arrives
 * (a naive "try to decode, retry on incomplete" is quadratic on multi-MiB Forward-mode frames).
 * str/bin/ext payloads are skipped by length in O(1).
 *
 * The buffer grows by doubling from `buffer_chunk_size` up to `buffer_max_size` (Fluent Bit's
 * in_forward grows in chunk-size steps to the same cap); a frame larger than the cap is an error.
 * It is allocated on the first byte (as large as that segment, up to `buffer_chunk_size`), shrinks
 * back to `buffer_chunk_size` once a larger frame is done, and every byte of it is taken from a budget shared by all connections of the input, so
 * the partial frames of many connections together stay within their share of memory_limit.
 */

import { badExt } from '../core/msgpack-scan.js';

export class FrameTooLarge extends Error {
  constructor(
    readonly size: number,
    readonly max: number,
  ) {
    super(`incoming frame exceeds buffer_max_size (${size} > ${max} bytes)`);
  }
}

export class MalformedFrame extends Error {
  constructor(
    message: string,
    /** Metric label: `malformed`, or `bad_ext` for an extension value that would not decode soundly. */
    readonly reason: 'malformed' | 'bad_ext' = 'malformed',
  ) {
    super(message);
  }
}

/** The shared budget of partial-frame buffers refused to grow this connection's buffer. */
export class BudgetExhausted extends Error {
  constructor(
    readonly wanted: number,
    readonly used: number,
    readonly max: number,
  ) {
    super(`partial frames of all connections hold ${used} of ${max} bytes; ${wanted} more do not fit`);
  }
}

/** Bytes of connection buffers, shared by the connections of one input. */
export class BufferBudget {
  used = 0;
  constructor(readonly max: number) {}
  take(n: number): boolean {
    if (this.used + n > this.max) return false;
    this.used += n;
    return true;
  }
  give(n: number): void {
    this.used -= n;
  }
}

const EMPTY = Buffer.alloc(0);

export class Framer {
  private buf: Buffer = EMPTY;
  private start = 0; // first byte of the frame being scanned
  private end = 0; // end of valid data
  private pos = 0; // scan position
  private stack: number[] = []; // items left in each open container
  private minNeeded = 0; // do not rescan before `end` reaches this
  /** Complete frames so far. */
  frames = 0;

  /** `maxSize` may be changed later (raised once a connection is authenticated). */
  constructor(
    private readonly chunkSize: number,
    public maxSize: number,
    private readonly budget: BufferBudget = new BufferBudget(Infinity),
  ) {}

  /** Bytes held for an incomplete frame. */
  get buffered(): number {
    return this.end - this.start;
  }

  /** Bytes allocated for this connection (taken from the budget). */
  get capacity(): number {
    return this.buf.length;
  }

  private released = false;

  /** Gives the buffer back to the budget (the connection is closed); push() then ignores data. */
  release(): void {
    this.released = true;
    this.budget.give(this.buf.length);
    this.buf = EMPTY;
    this.start = this.end = this.pos = this.minNeeded = 0;
    this.stack = [];
  }

  private resize(size: number, keepFrom: number, keepTo: number): void {
    const grow = size - this.buf.length;
    if (grow > 0 && !this.budget.take(grow)) throw new BudgetExhausted(grow, this.budget.used, this.budget.max);
    if (grow < 0) this.budget.give(-grow);
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, keepFrom, keepTo);
    this.buf = next;
  }

  /**
   * Appends data and calls `onFrame` for every complete top-level value (a view into the
   * internal buffer, valid only during the call). Throws FrameTooLarge / MalformedFrame.
   */
  push(data: Buffer, onFrame: (frame: Buffer) => void): void {
    let offset = 0;
    if (this.released) return;
    // Memory follows the bytes that arrive: a first segment gets what it needs (at least 4 KiB),
    // not buffer_chunk_size, so silent or dripping connections hold little of the budget.
    if (this.buf.length === 0 && data.length > 0) this.resize(Math.min(this.chunkSize, this.maxSize, Math.max(4096, data.length)), 0, 0);
    while (offset < data.length && !this.released) {
      // Copy as much as fits; compact or grow when full.
      if (this.end === this.buf.length) this.makeRoom(data.length - offset);
      const n = Math.min(data.length - offset, this.buf.length - this.end);
      data.copy(this.buf, this.end, offset, offset + n);
      this.end += n;
      offset += n;
      this.scan(onFrame);
    }
  }

  private makeRoom(incoming: number): void {
    const held = this.end - this.start;
    if (this.start > 0 && held + incoming <= this.buf.length) {
      this.buf.copy(this.buf, 0, this.start, this.end);
    } else {
      let size = this.buf.length;
      while (size < held + Math.min(incoming, this.chunkSize)) size *= 2;
      if (held >= this.maxSize) throw new FrameTooLarge(held + incoming, this.maxSize);
      size = Math.min(Math.max(size, held + 1), this.maxSize);
      this.resize(size, this.start, this.end);
    }
    this.pos -= this.start;
    this.minNeeded = Math.max(0, this.minNeeded - this.start);
    this.end = held;
    this.start = 0;
  }

  private scan(onFrame: (frame: Buffer) => void): void {
    const b = this.buf;
    for (;;) {
      if (this.end < this.minNeeded) {
        if (this.minNeeded - this.start > this.maxSize) throw new FrameTooLarge(this.minNeeded - this.start, this.maxSize);
        return;
      }
      if (this.pos >= this.end) return;
      const p = this.pos;
      const t = b[p]!;
      let hdr = 1;
      let len = 0; // payload bytes after the header
      let children = 0; // container items
      if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) {
        // fixint, nil, false, true
      } else if (t >= 0x80 && t <= 0x8f) children = (t & 0x0f) * 2;
      else if (t >= 0x90 && t <= 0x9f) children = t & 0x0f;
      else if (t >= 0xa0 && t <= 0xbf) len = t & 0x1f;
      else {
        switch (t) {
          case 0xc4:
          case 0xd9: // bin8, str8
            hdr = 2;
            if (!this.have(p, 2)) return;
            len = b[p + 1]!;
            break;
          case 0xc5:
          case 0xda: // bin16, str16
            hdr = 3;
            if (!this.have(p, 3)) return;
            len = b.readUInt16BE(p + 1);
            break;
          case 0xc6:
          case 0xdb: // bin32, str32
            hdr = 5;
            if (!this.have(p, 5)) return;
            len = b.readUInt32BE(p + 1);
            break;
          case 0xc7:
            hdr = 3;
            if (!this.have(p, 3)) return;
            len = b[p + 1]!;
            break; // ext8 (+type)
          case 0xc8:
            hdr = 4;
            if (!this.have(p, 4)) return;
            len = b.readUInt16BE(p + 1);
            break; // ext16
          case 0xc9:
            hdr = 6;
            if (!this.have(p, 6)) return;
            len = b.readUInt32BE(p + 1);
            break; // ext32
          case 0xca:
            len = 4;
            break; // float32
          case 0xcb:
            len = 8;
            break; // float64
          case 0xcc:
          case 0xd0:
            len = 1;
            break;
          case 0xcd:
          case 0xd1:
            len = 2;
            break;
          case 0xce:
          case 0xd2:
            len = 4;
            break;
          case 0xcf:
          case 0xd3:
            len = 8;
            break;
          case 0xd4:
            len = 2;
            break; // fixext1 (type + 1)
          case 0xd5:
            len = 3;
            break;
          case 0xd6:
            len = 5;
            break;
          case 0xd7:
            len = 9;
            break;
          case 0xd8:
            len = 17;
            break;
          case 0xdc:
            hdr = 3;
            if (!this.have(p, 3)) return;
            children = b.readUInt16BE(p + 1);
            break; // array16
          case 0xdd:
            hdr = 5;
            if (!this.have(p, 5)) return;
            children = b.readUInt32BE(p + 1);
            break; // array32
          case 0xde:
            hdr = 3;
            if (!this.have(p, 3)) return;
            children = b.readUInt16BE(p + 1) * 2;
            break; // map16
          case 0xdf:
            hdr = 5;
            if (!this.have(p, 5)) return;
            children = b.readUInt32BE(p + 1) * 2;
            break; // map32
          default:
            throw new MalformedFrame(`invalid msgpack type byte 0x${t.toString(16)} at offset ${p - this.start}`);
        }
      }
      if (children > 0) {
        // A container header: descend. Its items are counted as they complete.
        this.pos = p + hdr;
        if (this.stack.length >= 256) throw new MalformedFrame('msgpack nesting deeper than 256 levels');
        this.stack.push(children);
        continue;
      }
      const next = p + hdr + len;
      if (next > this.end) {
        this.minNeeded = next;
        if (next - this.start > this.maxSize) throw new FrameTooLarge(next - this.start, this.maxSize);
        return;
      }
      this.pos = next;
      if ((t >= 0xc7 && t <= 0xc9) || (t >= 0xd4 && t <= 0xd8)) {
        // An extension value, complete: type byte last in the header (ext8/16/32) or first of
        // fixext's payload. An invalid timestamp or a reserved type refuses the frame here, so
        // what is framed needs no second check (entries of PackedForward payloads are not framed).
        const typeAt = t <= 0xc9 ? p + hdr - 1 : p + 1;
        const why = badExt(b, (b[typeAt]! << 24) >> 24, typeAt + 1, next - typeAt - 1);
        if (why) throw new MalformedFrame(why, 'bad_ext');
      }
      // One value completed: unwind finished containers.
      let done = this.stack.length === 0;
      while (!done) {
        const top = this.stack.length - 1;
        if (--this.stack[top]! > 0) break;
        this.stack.pop();
        done = this.stack.length === 0;
      }
      if (done) {
        const frame = b.subarray(this.start, this.pos);
        this.start = this.pos;
        this.frames++;
        onFrame(frame);
        if (this.buf !== b) return; // released by onFrame (connection closed)
        if (this.start === this.end) {
          this.start = this.end = this.pos = this.minNeeded = 0;
          // A large frame is done: give its memory back.
          if (this.buf.length > this.chunkSize) this.resize(Math.min(this.chunkSize, this.maxSize), 0, 0);
          return;
        }
      }
    }
  }

  private have(p: number, n: number): boolean {
    if (p + n <= this.end) return true;
    this.minNeeded = p + n;
    return false;
  }
}

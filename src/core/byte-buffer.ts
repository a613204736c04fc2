/**
 * A byte buffer written from the front that grows by doubling: the base of the writers that
 * build msgpack (msgpack-writer.ts, the record splicer) and JSON text (msgpack-json.ts) in place.
 */
export class ByteBuffer {
  buf: Buffer;
  len = 0;

  constructor(initial: number) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  /** Room for `n` more bytes after `len`. */
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  /** The bytes written since the last reset (a view: valid until the next write). */
  view(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  reset(): void {
    this.len = 0;
  }
}

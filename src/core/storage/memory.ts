/**
 * The filesystem buffer's memory budget. A chunk's events are counted as an estimate,
 * HEAP_FACTOR x file bytes, against service `memory_limit`: chunks queued to one output take at
 * most its share of half of it (the other half is the garbage collector's headroom and the
 * outputs' encoding buffers), chunks waiting for their write an eighth, beyond which filesystem
 * inputs pause. Chunk files read back take at most `storage.backlog.mem_limit` bytes at once, and
 * at most `storage.max_chunks_up` chunks are queued or being read back at once.
 */
import type { Logger } from 'pino';
import type { FlowControl } from '../flow.js';

/** Share of memory_limit for chunks queued to outputs (split evenly between outputs). */
const UP_SHARE = 1 / 2;
/** Share of memory_limit for chunks whose events wait for their write. */
const WRITE_SHARE = 1 / 8;

export class MemoryBudget {
  /** Estimated memory of every chunk whose events are in memory or being read back. */
  used = 0;
  /** The part of `used` held by chunks waiting for their write. */
  writingBytes = 0;
  /** Chunks waiting for their write. */
  writing = 0;
  /** File bytes of chunks read back (or being read) and still in memory. */
  loadedBytes = 0;
  readonly upLimit: number;
  /** Each output's share of upLimit. */
  readonly outLimit: number;
  readonly writeLimit: number;
  private writesBlocked = false;

  constructor(
    private readonly opts: { memoryLimit: number; maxChunksUp: number; backlogMemLimit: number },
    outputs: number,
    private readonly flow: FlowControl,
    private readonly log: Logger,
  ) {
    this.upLimit = opts.memoryLimit * UP_SHARE;
    this.outLimit = this.upLimit / Math.max(1, outputs);
    this.writeLimit = opts.memoryLimit * WRITE_SHARE;
  }

  /** Estimated memory of the chunks up (queued or being read back). */
  get up(): number {
    return this.used - this.writingBytes;
  }

  count(cost: number): void {
    this.used += cost;
  }

  uncount(cost: number): void {
    this.used -= cost;
  }

  /** A chunk waits for its write; past max_chunks_up or the write share, filesystem inputs pause. */
  startWrite(cost: number): void {
    this.writing++;
    this.writingBytes += cost;
    if (!this.writesBlocked && (this.writing > this.opts.maxChunksUp || this.writingBytes > this.writeLimit)) {
      this.writesBlocked = true;
      this.log.warn({ writing: this.writing, memory: this.writingBytes }, 'filesystem buffer: writes are behind; pausing filesystem inputs');
      this.flow.block('storage:writes', `${this.writing} chunks (~${this.writingBytes} bytes in memory) waiting to be written`, { storage: true });
    }
  }

  /** A write ended; inputs resume once the writes waiting are down to half of both bounds. */
  endWrite(cost: number): void {
    this.writing--;
    this.writingBytes -= cost;
    if (this.writesBlocked && this.writing <= this.opts.maxChunksUp / 2 && this.writingBytes <= this.writeLimit / 2) {
      this.writesBlocked = false;
      this.flow.unblock('storage:writes');
    }
  }

  /** Whether an output holding `held` may take a chunk of `cost` more (one chunk always fits). */
  outputFits(held: number, cost: number): boolean {
    return !(held > 0 && held + cost > this.outLimit);
  }

  /** Whether a chunk on disk (`bytes`, `cost`) may be read back now, with `up` chunks queued or loading. */
  canLoad(bytes: number, cost: number, up: number): boolean {
    if (up >= this.opts.maxChunksUp) return false;
    // Chunks waiting for their write have their own share; the rest of memory holds what is queued.
    const inUse = this.up;
    if (inUse > 0 && inUse + cost > this.upLimit) return false;
    // One chunk larger than the limit still loads when nothing else is loaded, or it never would.
    return this.loadedBytes === 0 || this.loadedBytes + bytes <= this.opts.backlogMemLimit;
  }
}

/**
 * A chunk of the filesystem buffer and its one state: where its events are (being written,
 * in memory, on disk only, being read back, in memory only because it is not buffered, gone).
 * The per-output sets say what each output still has to do with it.
 */
import { basename } from 'node:path';
import type { Commit } from '../commit.js';
import type { Segment } from './chunk-file.js';

/**
 * Heap bytes of decoded events per byte of their chunk file. Measured on Kubernetes audit events
 * (Node 20, msgpackr): events read back from a chunk file take 2.8x its bytes; events parsed from
 * JSON by the parser filter ~1.5x their file bytes. The larger one is used for every chunk.
 */
export const HEAP_FACTOR = 3;

/** Events of a chunk held in memory; `segmentBytes` (wire bytes per segment) when they came from the input. */
export interface Events {
  segments: Segment[];
  segmentBytes: number[] | undefined;
}

/**
 * Where a chunk's events are. Every state but `down` and `gone` counts `cost` in the memory
 * estimate (a chunk removed while `loading` stays counted until its read ends).
 *  - writing: events in memory, the file being written; the input's commit waits for the write;
 *  - up: on disk and in memory; `fromDisk` when read back (counted against backlog.mem_limit);
 *  - down: on disk only;
 *  - loading: on disk, being read back (counted against backlog.mem_limit);
 *  - memory: not buffered (limit, full disk, write error): in memory only, `inputCommit` released
 *    once every output settled;
 *  - gone: finished, or quarantined.
 */
export type ChunkState =
  | ({ kind: 'writing' } & Events)
  | ({ kind: 'up'; fromDisk: boolean } & Events)
  | { kind: 'down' }
  | { kind: 'loading' }
  | ({ kind: 'memory'; inputCommit: Commit } & Events)
  | { kind: 'gone' };

export class Chunk {
  readonly pending: Set<string>;
  readonly queued = new Set<string>();
  /** Outputs that failed without a dead letter: kept on disk, re-sent after a restart. */
  readonly parked = new Set<string>();
  state: ChunkState;
  io: Promise<void> = Promise.resolve();
  failure: string | undefined;

  constructor(
    readonly file: string,
    readonly input: string,
    readonly outputs: string[],
    readonly records: number,
    public bytes: number,
    state: ChunkState,
  ) {
    this.pending = new Set(outputs);
    this.state = state;
  }

  get name(): string {
    return basename(this.file);
  }

  /** Estimated memory of the decoded events. */
  get cost(): number {
    return this.bytes * HEAP_FACTOR;
  }

  /** The events, when they are in memory. */
  get events(): Events | undefined {
    const s = this.state;
    return s.kind === 'writing' || s.kind === 'up' || s.kind === 'memory' ? s : undefined;
  }

  /** On disk (written, not gone): an output's progress is recorded in the marker file. */
  get stored(): boolean {
    const k = this.state.kind;
    return k === 'up' || k === 'down' || k === 'loading';
  }

  /** Outputs this chunk still has to be queued to. */
  waiting(): boolean {
    for (const o of this.pending) if (!this.queued.has(o) && !this.parked.has(o)) return true;
    return false;
  }
}

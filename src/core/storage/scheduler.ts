/**
 * The filesystem buffer's scheduler: queues waiting chunks to outputs with room, per output
 * oldest first, at most `storage.max_chunks_up` chunks queued at once and each output within its
 * memory share; a chunk on disk is read back first, within the memory budget. An output that gets
 * nothing more until it delivers is flushed rather than left on a partial batch.
 */
import type { Chunk } from './chunk.js';
import type { MemoryBudget } from './memory.js';
import type { OutputQuotas } from './quota.js';

/** What the scheduler drives in the buffer. */
export interface SchedulerHost {
  /** Chunks with outputs still to be queued, oldest first. */
  readonly backlog: Set<Chunk>;
  readonly quotas: OutputQuotas;
  readonly budget: MemoryBudget;
  /** Chunks queued to at least one output. */
  queuedChunks(): number;
  readonly maxChunksUp: number;
  canLoad(c: Chunk): boolean;
  load(c: Chunk): void;
  enqueue(c: Chunk, o: string): void;
  maybeUnload(c: Chunk): void;
}

export class Scheduler {
  private pumping = false;
  private again = false;
  closing = false;

  constructor(private readonly host: SchedulerHost) {}

  /** Runs a pass; a pump asked for during a pass (an output settling synchronously) runs another. */
  pump(): void {
    if (this.closing) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        this.pass();
      } while (this.again);
    } finally {
      this.pumping = false;
    }
  }

  private pass(): void {
    const h = this.host;
    const outs = h.quotas.outs;
    const stalled = new Set<string>();
    const total = outs.size;
    // An output that gets nothing more until it delivers must not sit on a partial batch for
    // batch_wait: with a small memory share that would pace it at one share per batch_wait.
    const starve = (o: string) => {
      stalled.add(o);
      outs.get(o)!.engine.flush();
    };
    for (const c of h.backlog) {
      if (stalled.size >= total) break;
      const want: string[] = [];
      for (const o of c.pending) {
        if (c.queued.has(o) || c.parked.has(o) || stalled.has(o)) continue;
        const st = outs.get(o)!;
        if (!st.engine.hasRoom) {
          stalled.add(o);
          continue;
        }
        if (!h.budget.outputFits(st.held, c.cost)) {
          starve(o);
          continue;
        }
        want.push(o);
      }
      if (want.length === 0) {
        h.maybeUnload(c);
        continue;
      }
      if (!c.events) {
        if (c.state.kind === 'loading') for (const o of want) stalled.add(o);
        else if (h.canLoad(c)) {
          h.load(c);
          for (const o of want) stalled.add(o);
        } else for (const o of want) starve(o);
        continue;
      }
      if (c.queued.size === 0 && h.queuedChunks() >= h.maxChunksUp) {
        for (const o of want) starve(o);
        h.maybeUnload(c);
        continue;
      }
      for (const o of want) h.enqueue(c, o);
      if (!c.waiting()) h.backlog.delete(c);
    }
  }
}

/**
 * Limits of the filesystem buffer besides memory: an output's `storage.total_limit_size` bounds
 * the bytes of chunks still waiting for it, and a full disk (ENOSPC, EDQUOT). A chunk that would
 * exceed a limit is not buffered (the buffer keeps it in memory and acks it after delivery) and the
 * filesystem inputs concerned pause: those routed to the output until its backlog halves, all of
 * them until free space returns (polled).
 */
import { statfs } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { DeliveryEngine } from '../delivery.js';
import type { FlowControl } from '../flow.js';

export interface StorageOutput {
  id: string;
  engine: Pick<DeliveryEngine, 'enqueue' | 'hasRoom' | 'flush'>;
  /** storage.total_limit_size; undefined for no limit. */
  limit?: number;
  action: 'block' | 'drop_oldest_chunk';
}

export interface OutState extends StorageOutput {
  /** Bytes of buffered chunk files this output has not committed yet. */
  usage: number;
  blocked: boolean;
  /** Estimated memory of the chunks queued to this output. */
  held: number;
}

/** Per-output usage against storage.total_limit_size. */
export class OutputQuotas {
  readonly outs = new Map<string, OutState>();

  constructor(
    outputs: readonly StorageOutput[],
    private readonly flow: FlowControl,
    private readonly log: Logger,
    private readonly gauge: { labels(name: string): { set(v: number): void } },
  ) {
    for (const o of outputs) this.outs.set(o.id, { ...o, usage: 0, blocked: false, held: 0 });
  }

  get(o: string): OutState | undefined {
    return this.outs.get(o);
  }

  /**
   * Whether a chunk of `bytes` for `ids` fits every output's limit; `dropOldest` makes room first on
   * outputs with `drop_oldest_chunk`. An output still over pauses its inputs.
   */
  admit(ids: readonly string[], bytes: number, dropOldest: (st: OutState, need: number) => void): boolean {
    let ok = true;
    for (const o of ids) {
      const st = this.outs.get(o)!;
      if (st.limit === undefined || st.usage + bytes <= st.limit) continue;
      if (st.action === 'drop_oldest_chunk') dropOldest(st, bytes);
      if (st.usage + bytes > st.limit) {
        ok = false;
        this.block(st);
      }
    }
    return ok;
  }

  use(o: string, bytes: number): void {
    const st = this.outs.get(o)!;
    st.usage += bytes;
    this.gauge.labels(o).set(st.usage);
  }

  unuse(o: string, bytes: number): void {
    const st = this.outs.get(o);
    if (!st) return;
    st.usage -= bytes;
    this.gauge.labels(o).set(st.usage);
    if (st.blocked && st.usage <= st.limit! / 2) {
      st.blocked = false;
      this.log.info({ output: o, bytes: st.usage, limit: st.limit }, 'filesystem buffer below half of storage.total_limit_size: resuming inputs');
      this.flow.unblock(`storage:${o}`);
    }
  }

  private block(st: OutState): void {
    if (st.blocked) return;
    st.blocked = true;
    this.log.warn(
      { output: st.id, bytes: st.usage, limit: st.limit },
      'filesystem buffer reached storage.total_limit_size: pausing the filesystem inputs routed to this output; new chunks are acked after delivery',
    );
    this.flow.block(`storage:${st.id}`, `storage.total_limit_size reached (${st.usage} of ${st.limit} bytes)`, { storage: true, output: st.id });
  }
}

/** A full disk: filesystem inputs pause until storage.path has room for the writes that failed (free space polled every 500 ms). */
export class DiskFull {
  blocked = false;
  private need = 0;
  private probe: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly path: string,
    private readonly flow: FlowControl,
    private readonly log: Logger,
  ) {}

  /** A write of `bytes` failed for lack of space. */
  full(bytes: number): void {
    this.need = Math.max(this.need, 4 * bytes, 256 * 1024);
    if (this.blocked) return;
    this.blocked = true;
    this.flow.block('storage:disk', `no space left in ${this.path}`, { storage: true });
    const check = async () => {
      this.probe = undefined;
      if (this.closed) return;
      try {
        const s = await statfs(this.path);
        const free = Number(s.bavail) * Number(s.bsize);
        if (free >= this.need) {
          this.blocked = false;
          this.need = 0;
          this.log.info({ path: this.path, free }, 'filesystem buffer: space available again; resuming inputs');
          this.flow.unblock('storage:disk');
          return;
        }
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'filesystem buffer: cannot read free space');
      }
      this.probe = setTimeout(() => void check(), 500);
      this.probe.unref();
    };
    this.probe = setTimeout(() => void check(), 500);
    this.probe.unref();
  }

  /** Stops polling (shutdown, or freeze: `closing` stops the poll as it did). */
  stop(): void {
    this.closed = true;
    if (this.probe) clearTimeout(this.probe);
  }
}

/**
 * The filesystem buffer (`storage.type: filesystem` on an input, Fluent Bit's option names).
 *
 * A chunk from a filesystem-buffered input is filtered and routed first, then written to
 * `storage.path/<input id>/` (chunk-file.ts, disk.ts) and, with `storage.sync: full`, fsynced with
 * its directory; only then does the input's commit settle and the sender get its ack. From there on
 * the buffer owns the chunk: it is deleted once every output it was routed to has committed its part
 * (delivered it, or written it to the dead letter). Per-output progress is kept in an append-only
 * `<chunk>.done` file naming the outputs that finished, so a replay after a crash sends a chunk
 * only to the outputs that had not.
 *
 * Memory (memory.ts): a chunk is "up" while its events are in memory, counted as an estimate
 * against service `memory_limit`; beyond their shares filesystem inputs pause or chunks stay on
 * disk. On top of that at most `storage.max_chunks_up` chunks are queued at once, and none to an
 * output whose queue is over its bound. The others go "down" (on disk only) once written and come
 * back up, oldest first per output, as room frees (scheduler.ts). A slow output therefore holds its
 * backlog on disk while the other outputs keep being fed.
 *
 * Limits (quota.ts): an output's `storage.total_limit_size` bounds the bytes of chunks still
 * waiting for it. With `storage.overflow_action: block` (the default) a chunk that would exceed it
 * is not buffered: it is delivered from memory and acked only after delivery, and the filesystem
 * inputs routed to that output pause until its backlog halves. With `drop_oldest_chunk` the oldest
 * chunks leave that output's queue instead (Fluent Bit's behaviour). A full disk (ENOSPC, EDQUOT)
 * is handled as `block`, with free space polled until writes can succeed again. Every case logs
 * and counts.
 *
 * On start, chunks left by a previous run are loaded before any input starts: a torn or corrupt
 * file (wrong size, bad checksum, undecodable) moves to `storage.path/quarantine/` with a log line
 * and a metric and never stops the start; the others queue ahead of new data.
 */
import type { Logger } from 'pino';
import type { Commit } from '../commit.js';
import { Commit as CommitClass } from '../commit.js';
import type { LogEvent } from '../event.js';
import type { FlowControl } from '../flow.js';
import type { Metrics } from '../../observe/metrics.js';
import { Chunk } from './chunk.js';
import { CorruptChunk, encodeChunk, PREAMBLE, type Segment } from './chunk-file.js';
import { ChunkFiles, NotAChunk } from './disk.js';
import { MemoryBudget } from './memory.js';
import { DiskFull, OutputQuotas, type OutState, type StorageOutput } from './quota.js';
import { Scheduler } from './scheduler.js';
import { storageMetrics, type StorageMetrics } from './metrics.js';

export { HEAP_FACTOR } from './chunk.js';
export type { StorageOutput } from './quota.js';

export interface StorageOptions {
  path: string;
  sync: 'normal' | 'full';
  checksum: boolean;
  maxChunksUp: number;
  backlogMemLimit: number;
  /** service memory_limit: the budget of buffered events held in memory (estimated, see HEAP_FACTOR). */
  memoryLimit: number;
}

/** A routed part of a chunk: events of one tag and the outputs they go to. */
export interface RoutedSegment {
  tag: string;
  outputs: Array<{ id: string }>;
  events: LogEvent[];
  bytes: number;
}

export class FilesystemStorage {
  private readonly quotas: OutputQuotas;
  private readonly budget: MemoryBudget;
  private readonly disk: DiskFull;
  private readonly files: ChunkFiles;
  private readonly scheduler: Scheduler;
  /** Every live chunk in creation order (oldest first). */
  private readonly chunks = new Map<string, Chunk>();
  /** Chunks with outputs still to be queued, oldest first. */
  private readonly backlog = new Set<Chunk>();
  private queuedChunks = 0;
  private loadingChunks = 0;
  private closing = false;
  private readonly inflight = new Set<Promise<void>>();
  private readonly m: StorageMetrics;

  constructor(
    readonly opts: StorageOptions,
    outputs: StorageOutput[],
    private readonly flow: FlowControl,
    metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.m = storageMetrics(metrics);
    this.quotas = new OutputQuotas(outputs, flow, log, this.m.outputBytes);
    this.budget = new MemoryBudget(opts, this.quotas.outs.size, flow, log);
    this.disk = new DiskFull(opts.path, flow, log);
    this.files = new ChunkFiles(opts, log, this.m.quarantined);
    this.scheduler = new Scheduler({
      backlog: this.backlog,
      quotas: this.quotas,
      budget: this.budget,
      maxChunksUp: opts.maxChunksUp,
      queuedChunks: () => this.queuedChunks,
      canLoad: (c) => this.budget.canLoad(c.bytes, c.cost, this.queuedChunks + this.loadingChunks),
      load: (c) => this.load(c),
      enqueue: (c, o) => this.enqueue(c, o),
      maybeUnload: (c) => this.maybeUnload(c),
    });
    for (const o of this.quotas.outs.values()) {
      this.m.outputBytes.labels(o.id).set(0);
      if (o.limit !== undefined) this.m.outputLimit.labels(o.id).set(o.limit);
    }
    this.m.memoryLimit.labels('up').set(this.budget.upLimit);
    this.m.memoryLimit.labels('writing').set(this.budget.writeLimit);
    flow.on('change', this.onFlow);
  }

  private readonly onFlow = (): void => this.pump();

  /** Creates storage.path and loads what a previous run left, before inputs start. */
  async open(): Promise<{ chunks: number; records: number; quarantined: number }> {
    let found = 0;
    let records = 0;
    let quarantined = 0;
    for (const file of await this.files.list()) {
      try {
        const c = await this.scan(file);
        if (!c) continue;
        found++;
        records += c.records;
      } catch (e) {
        if (e instanceof NotAChunk) {
          // A FIFO, socket, device or directory under a chunk's name: reading it could block the
          // start forever (a FIFO with no writer), and it holds no chunk. Left where it is.
          this.m.skipped.labels(e.reason).inc();
          this.log.warn({ file, reason: e.reason, err: e.message }, 'filesystem buffer: not a chunk file, skipped');
          continue;
        }
        if (!(e instanceof CorruptChunk)) {
          // Unreadable (permissions, I/O error): the start goes on without it.
          this.m.skipped.labels('unreadable').inc();
          this.log.error({ file, err: (e as Error).message }, 'filesystem buffer: chunk file cannot be read, skipped');
          continue;
        }
        quarantined++;
        await this.files.quarantine(file, e);
      }
    }
    if (found || quarantined) {
      this.log.info({ path: this.opts.path, chunks: found, records, quarantined }, 'filesystem buffer: replaying chunks left by the previous run');
    }
    this.gauges();
    this.pump();
    return { chunks: found, records, quarantined };
  }

  private async scan(file: string): Promise<Chunk | undefined> {
    const { header, size, done } = await this.files.scan(file);
    const c = new Chunk(file, header.input, header.outputs, header.records, size, { kind: 'down' });
    for (const o of done) c.pending.delete(o);
    for (const o of [...c.pending]) {
      if (this.quotas.get(o)) continue;
      c.pending.delete(o);
      this.m.dropped.labels(o, 'output_removed').inc(header.records);
      this.log.warn({ chunk: c.name, output: o, records: header.records }, 'buffered chunk was routed to an output that is no longer configured: that part is dropped');
    }
    if (c.pending.size === 0) {
      await this.files.unlink(c.file);
      return undefined;
    }
    this.chunks.set(c.file, c);
    for (const o of c.pending) this.quotas.use(o, c.bytes);
    this.backlog.add(c);
    return c;
  }

  /**
   * Takes a routed chunk from a filesystem input. Holds `inputCommit` until the chunk is written
   * (or, when it cannot be buffered, until every output delivered it).
   */
  store(input: string, routed: RoutedSegment[], inputCommit: Commit): void {
    const ids: string[] = [];
    const index = new Map<string, number>();
    const segments: Segment[] = [];
    const segmentBytes: number[] = [];
    let records = 0;
    for (const r of routed) {
      const outputs: number[] = [];
      for (const o of r.outputs) {
        let i = index.get(o.id);
        if (i === undefined) {
          i = ids.length;
          ids.push(o.id);
          index.set(o.id, i);
        }
        if (!outputs.includes(i)) outputs.push(i);
      }
      segments.push({ tag: r.tag, outputs, events: r.events });
      segmentBytes.push(r.bytes);
      records += r.events.length;
    }
    if (ids.length === 0) return;
    const c = new Chunk(this.files.newChunk(input), input, ids, records, 0, { kind: 'writing', segments, segmentBytes });
    const { head, body } = encodeChunk({ input, outputs: ids, records, created: Date.now() }, segments, this.opts.checksum);
    c.bytes = head.length + body.length;
    this.budget.count(c.cost);
    inputCommit.hold();

    let reason: string | undefined;
    if (this.disk.blocked) reason = 'disk_full';
    else if (!this.quotas.admit(ids, c.bytes, (st, need) => this.dropOldest(st, need))) reason = 'total_limit_size';
    if (reason) {
      this.memoryOnly(c, inputCommit, reason);
      return;
    }

    for (const o of ids) this.quotas.use(o, c.bytes);
    this.chunks.set(c.file, c);
    this.backlog.add(c);
    this.budget.startWrite(c.cost);
    this.gauges();
    c.io = this.track(
      this.files.write(c.file, head, body).then(
        () => {
          this.budget.endWrite(c.cost);
          this.m.written.labels(input).inc();
          const s = c.state;
          if (s.kind !== 'writing') {
            // Every output finished while the chunk was written (gone); the unlink is chained after this.
            inputCommit.release();
            return;
          }
          c.state = { kind: 'up', fromDisk: false, segments: s.segments, segmentBytes: s.segmentBytes };
          inputCommit.release();
          this.pump();
          this.maybeUnload(c);
          this.gauges();
        },
        (e: NodeJS.ErrnoException) => {
          this.budget.endWrite(c.cost);
          for (const o of c.pending) this.quotas.unuse(o, c.bytes);
          this.chunks.delete(c.file);
          this.backlog.delete(c);
          const code = e.code ?? 'error';
          this.m.writeErrors.labels(input, code.toLowerCase()).inc();
          const full = code === 'ENOSPC' || code === 'EDQUOT';
          this.log.error(
            { input, chunk: c.name, bytes: c.bytes, err: e.message, code },
            full
              ? 'filesystem buffer: no space left; chunk kept in memory and acked only after delivery; pausing filesystem inputs until space returns'
              : 'filesystem buffer: cannot write chunk; it is kept in memory and acked only after delivery',
          );
          if (full) this.disk.full(c.bytes);
          this.m.unbuffered.labels(input, full ? 'disk_full' : 'write_error').inc();
          const s = c.state;
          if (s.kind === 'writing') {
            // Outputs that already settled keep their outcome; the rest are fed from memory.
            c.state = { kind: 'memory', inputCommit, segments: s.segments, segmentBytes: s.segmentBytes };
            for (const o of c.pending) if (!c.queued.has(o) && !c.parked.has(o)) this.enqueue(c, o);
            this.finishMemory(c);
          } else inputCommit.release(c.failure === undefined, c.failure); // every output had settled (gone)
          this.gauges();
        },
      ),
    );
    this.pump();
  }

  /** A chunk that is not buffered: queued to every output now, the input acked after delivery. */
  private memoryOnly(c: Chunk, inputCommit: Commit, reason: string): void {
    const ev = c.events!;
    c.state = { kind: 'memory', inputCommit, segments: ev.segments, segmentBytes: ev.segmentBytes };
    this.m.unbuffered.labels(c.input, reason).inc();
    for (const o of c.outputs) this.enqueue(c, o);
    this.gauges();
  }

  private finishMemory(c: Chunk): void {
    const s = c.state;
    if (s.kind !== 'memory' || c.queued.size > 0) return;
    c.state = { kind: 'gone' };
    this.budget.uncount(c.cost);
    s.inputCommit.release(c.failure === undefined, c.failure);
  }

  private enqueue(c: Chunk, o: string): void {
    const st = this.quotas.get(o)!;
    if (c.queued.size === 0) this.queuedChunks++;
    c.queued.add(o);
    st.held += c.cost;
    const i = c.outputs.indexOf(o);
    const commit = new CommitClass((ok, reason, safe) => this.settled(c, o, ok, reason, safe));
    const { segments: segs, segmentBytes } = c.events!;
    for (let k = 0; k < segs.length; k++) {
      const s = segs[k]!;
      if (!s.outputs.includes(i)) continue;
      const bytes = segmentBytes?.[k] ?? Math.round((c.bytes * s.events.length) / Math.max(1, c.records));
      st.engine.enqueue(s.events, commit, bytes);
    }
    commit.release();
  }

  private settled(c: Chunk, o: string, ok: boolean, reason: string | undefined, safe: boolean): void {
    c.queued.delete(o);
    if (c.queued.size === 0) this.queuedChunks--;
    const st = this.quotas.get(o);
    if (st) st.held -= c.cost;
    if (!ok) c.failure ??= reason ?? 'failed';
    if (c.state.kind === 'memory') {
      c.pending.delete(o);
      this.finishMemory(c);
      this.pump();
      this.gauges();
      return;
    }
    if (c.state.kind === 'gone') {
      this.pump();
      return;
    }
    if (safe) this.done(c, o);
    else if (c.pending.has(o)) {
      c.parked.add(o);
      // At shutdown the pipeline reports the undelivered records once, not once per chunk.
      const level = this.closing ? 'debug' : 'warn';
      this.log[level]({ chunk: c.name, output: o, reason }, 'output did not commit its part of a buffered chunk: kept in the buffer, re-sent after a restart');
    }
    if (!c.waiting()) this.backlog.delete(c);
    this.pump();
    this.maybeUnload(c);
    this.gauges();
  }

  /** Output `o` has committed chunk `c` (delivered or dead-lettered). */
  private done(c: Chunk, o: string): void {
    if (!c.pending.delete(o)) return;
    this.quotas.unuse(o, c.bytes);
    if (c.pending.size === 0) {
      this.remove(c);
      return;
    }
    if (!c.waiting()) this.backlog.delete(c);
    const line = `${o}\n`;
    this.chain(c, async () => {
      if (c.stored) await this.files.appendMarker(c.file, line);
    });
  }

  /** Runs a file operation of chunk `c` after the previous ones; close() waits for all of them. */
  private chain(c: Chunk, f: () => Promise<void>): void {
    c.io = this.track(c.io.then(f));
  }

  private track(p: Promise<void>): Promise<void> {
    const t = p.catch((e: Error) => this.log.error({ err: e.message }, 'filesystem buffer: file operation failed'));
    this.inflight.add(t);
    void t.finally(() => this.inflight.delete(t));
    return t;
  }

  private remove(c: Chunk): void {
    this.backlog.delete(c);
    this.chunks.delete(c.file);
    if (c.events) this.unload(c);
    // A chunk being read back stays counted until the read ends (load).
    c.state = { kind: 'gone' };
    this.chain(c, () => this.files.unlink(c.file));
  }

  private maybeUnload(c: Chunk): void {
    if (c.state.kind === 'up' && c.queued.size === 0) this.unload(c);
  }

  /** Drops a chunk's events from memory: it is on disk only now (or about to be gone). */
  private unload(c: Chunk): void {
    const s = c.state;
    this.budget.uncount(c.cost);
    if (s.kind === 'up' && s.fromDisk) this.budget.loadedBytes -= c.bytes;
    c.state = { kind: 'down' };
  }

  /** storage.overflow_action drop_oldest_chunk: oldest chunks leave this output's queue until `need` bytes fit. */
  private dropOldest(st: OutState, need: number): void {
    let chunks = 0;
    let records = 0;
    for (const c of this.chunks.values()) {
      if (st.usage + need <= st.limit!) break;
      if (!c.pending.has(st.id) || c.state.kind === 'writing') continue;
      // A chunk queued to this output is still delivered from memory; only its disk copy goes.
      if (!c.queued.has(st.id)) records += c.records;
      chunks++;
      c.parked.delete(st.id);
      this.done(c, st.id);
      if (!c.waiting()) this.backlog.delete(c);
    }
    if (chunks) {
      this.m.dropped.labels(st.id, 'drop_oldest_chunk').inc(records);
      this.log.warn({ output: st.id, chunks, records, limit: st.limit }, 'storage.total_limit_size reached: dropped the oldest chunks of this output (storage.overflow_action drop_oldest_chunk)');
    }
  }

  /** Reads a chunk on disk back into memory. */
  private load(c: Chunk): void {
    c.state = { kind: 'loading' };
    this.loadingChunks++;
    this.budget.loadedBytes += c.bytes;
    this.budget.count(c.cost);
    this.chain(c, async () => {
      let segments: Segment[];
      try {
        segments = await this.files.read(c.file);
      } catch (e) {
        this.loadingChunks--;
        this.budget.loadedBytes -= c.bytes;
        this.budget.uncount(c.cost);
        const err = e instanceof CorruptChunk ? e : new CorruptChunk(`cannot read: ${(e as Error).message}`, 'torn');
        this.backlog.delete(c);
        this.chunks.delete(c.file);
        for (const o of c.pending) this.quotas.unuse(o, c.bytes);
        c.state = { kind: 'gone' };
        await this.files.quarantine(c.file, err);
        this.pump();
        this.gauges();
        return;
      }
      this.loadingChunks--;
      if (c.state.kind === 'gone') {
        this.budget.loadedBytes -= c.bytes;
        this.budget.uncount(c.cost);
        return;
      }
      c.state = { kind: 'up', fromDisk: true, segments, segmentBytes: undefined };
      this.m.replayed.inc();
      this.pump();
      this.maybeUnload(c);
      this.gauges();
    });
  }

  /**
   * Queues waiting chunks to outputs with room: per output oldest first, at most max_chunks_up
   * chunks queued at once; a chunk on disk is read back first within backlog.mem_limit.
   */
  pump(): void {
    this.scheduler.pump();
  }

  private gauges(): void {
    let up = 0;
    let down = 0;
    let bytes = 0;
    for (const c of this.chunks.values()) {
      if (c.state.kind === 'writing') continue;
      bytes += c.bytes;
      if (c.events) up++;
      else down++;
    }
    this.m.chunks.labels('up').set(up);
    this.m.chunks.labels('down').set(down);
    this.m.chunks.labels('writing').set(this.budget.writing);
    this.m.bytes.set(bytes);
    this.m.memory.labels('up').set(this.budget.up);
    this.m.memory.labels('writing').set(this.budget.writingBytes);
  }

  /** Chunks and bytes still buffered, and the estimated memory of the events held (status, tests). */
  get depth(): { chunks: number; bytes: number; queued: number; writing: number; memory: number } {
    let bytes = 0;
    for (const c of this.chunks.values()) bytes += c.bytes;
    return { chunks: this.chunks.size, bytes, queued: this.queuedChunks, writing: this.budget.writing, memory: this.budget.used };
  }

  /** Stops queuing chunks to outputs (shutdown: what is queued drains, the rest stays on disk). */
  freeze(): void {
    this.stopping();
  }

  /** Stops queuing chunks and waits for pending file operations. What is not done stays on disk. */
  async close(): Promise<void> {
    this.stopping();
    this.flow.off('change', this.onFlow);
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  private stopping(): void {
    this.closing = true;
    this.scheduler.closing = true;
    this.disk.stop();
  }
}

/** Storage header size for tests that craft torn files. */
export const CHUNK_PREAMBLE = PREAMBLE;

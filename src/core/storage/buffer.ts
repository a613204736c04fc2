/**
 * The filesystem buffer (`storage.type: filesystem` on an input, Fluent Bit's option names).
 *
 * A chunk from a filesystem-buffered input is filtered and routed first, then written to
 * `storage.path/<input id>/` (chunk-file.ts) and, with `storage.sync: full`, fsynced with its
 * directory; only then does the input's commit settle and the sender get its ack. From there on the
 * buffer owns the chunk: it is deleted once every output it was routed to has committed its part
 * (delivered it, or written it to the dead letter). Per-output progress is kept in an append-only
 * `<chunk>.done` file naming the outputs that finished, so a replay after a crash sends a chunk
 * only to the outputs that had not.
 *
 * Memory: a chunk is "up" while its events are in memory. Decoded events take a few times the
 * bytes of their chunk file, so memory is counted as an estimate, HEAP_FACTOR x file bytes, against
 * service `memory_limit`: chunks queued to one output take at most its share of half of it (the
 * other half is the garbage collector's headroom and the outputs' encoding buffers), chunks waiting
 * for their write an eighth, beyond which filesystem inputs pause. On top of that at most
 * `storage.max_chunks_up` chunks are queued at once, and none to an output whose queue is over its
 * bound. The others go "down" (on disk only) once written and come back up, oldest first per
 * output, as room frees; chunk files read back take at most `storage.backlog.mem_limit` bytes at
 * once. A slow output therefore holds its backlog on disk while the other outputs keep being fed.
 *
 * Limits: an output's `storage.total_limit_size` bounds the bytes of chunks still waiting for it.
 * With `storage.overflow_action: block` (the default) a chunk that would exceed it is not buffered:
 * it is delivered from memory and acked only after delivery, and the filesystem inputs routed to
 * that output pause until its backlog halves. With `drop_oldest_chunk` the oldest chunks leave
 * that output's queue instead (Fluent Bit's behaviour). A full disk (ENOSPC, EDQUOT) is handled as
 * `block`, with free space polled until writes can succeed again. Every case logs and counts.
 *
 * On start, chunks left by a previous run are loaded before any input starts: a torn or corrupt
 * file (wrong size, bad checksum, undecodable) moves to `storage.path/quarantine/` with a log line
 * and a metric and never stops the start; the others queue ahead of new data.
 */
import { constants as fsc } from 'node:fs';
import { appendFile, mkdir, open, readdir, readFile, rename, statfs, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import type { Commit } from '../commit.js';
import { Commit as CommitClass } from '../commit.js';
import type { DeliveryEngine } from '../delivery.js';
import type { LogEvent } from '../event.js';
import type { FlowControl } from '../flow.js';
import type { Metrics } from '../../observe/metrics.js';
import { CorruptChunk, decodeChunk, encodeChunk, PREAMBLE, readHeader, type Segment } from './chunk-file.js';

export interface StorageOptions {
  path: string;
  sync: 'normal' | 'full';
  checksum: boolean;
  maxChunksUp: number;
  backlogMemLimit: number;
  /** service memory_limit: the budget of buffered events held in memory (estimated, see HEAP_FACTOR). */
  memoryLimit: number;
}

/**
 * Heap bytes of decoded events per byte of their chunk file. Measured on Kubernetes audit events
 * (Node 20, msgpackr): events read back from a chunk file take 2.8x its bytes; events parsed from
 * JSON by the parser filter ~1.5x their file bytes. The larger one is used for every chunk.
 */
export const HEAP_FACTOR = 3;
/** Share of memory_limit for chunks queued to outputs (split evenly between outputs). */
const UP_SHARE = 1 / 2;
/** Share of memory_limit for chunks whose events wait for their write. */
const WRITE_SHARE = 1 / 8;

export interface StorageOutput {
  id: string;
  engine: Pick<DeliveryEngine, 'enqueue' | 'hasRoom' | 'flush'>;
  /** storage.total_limit_size; undefined for no limit. */
  limit?: number;
  action: 'block' | 'drop_oldest_chunk';
}

/** A routed part of a chunk: events of one tag and the outputs they go to. */
export interface RoutedSegment {
  tag: string;
  outputs: Array<{ id: string }>;
  events: LogEvent[];
  bytes: number;
}

interface OutState extends StorageOutput {
  /** Bytes of buffered chunk files this output has not committed yet. */
  usage: number;
  blocked: boolean;
  /** Estimated memory of the chunks queued to this output. */
  held: number;
}

type ChunkState = 'writing' | 'stored' | 'memory' | 'gone';

class Chunk {
  segments: Segment[] | undefined;
  readonly pending: Set<string>;
  readonly queued = new Set<string>();
  /** Outputs that failed without a dead letter: kept on disk, re-sent after a restart. */
  readonly parked = new Set<string>();
  state: ChunkState;
  loading = false;
  fromDisk = false;
  marker = false;
  io: Promise<void> = Promise.resolve();
  /** Memory-only chunks: the input's commit, released when every output settled. */
  inputCommit: Commit | undefined;
  failure: string | undefined;
  /** Wire bytes of each segment, for queue accounting. */
  segmentBytes: number[] | undefined;
  /** Counted in the buffer's memory estimate (events in memory, or being read back). */
  counted = false;

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

  /** Outputs this chunk still has to be queued to. */
  waiting(): boolean {
    for (const o of this.pending) if (!this.queued.has(o) && !this.parked.has(o)) return true;
    return false;
  }
}

const CHUNK_EXT = '.lwc';

/** A file under a chunk's name that is no regular file. */
class NotAChunk extends Error {
  readonly reason = 'not_a_file';
  constructor(file: string, st: { isFIFO(): boolean; isSocket(): boolean; isDirectory(): boolean }) {
    super(`${file} is ${st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isDirectory() ? 'a directory' : 'not a regular file'}`);
  }
}
const DONE_EXT = '.done';
/** Directories under storage.path that hold no input's chunks. */
const RESERVED_DIRS = new Set(['quarantine', 'dead-letter']);

function dirName(id: string): string {
  return id.replace(/[^A-Za-z0-9_.-]/g, '_');
}

export class FilesystemStorage {
  private readonly outs = new Map<string, OutState>();
  /** Every live chunk in creation order (oldest first). */
  private readonly chunks = new Map<string, Chunk>();
  /** Chunks with outputs still to be queued, oldest first. */
  private readonly backlog = new Set<Chunk>();
  private queuedChunks = 0;
  private loadingChunks = 0;
  private loadedBytes = 0;
  /** Estimated memory of every chunk whose events are in memory or being read back. */
  private memBytes = 0;
  /** The part of memBytes held by chunks waiting for their write. */
  private writingBytes = 0;
  private readonly upLimit: number;
  private readonly outLimit: number;
  private readonly writeLimit: number;
  private writing = 0;
  private writesBlocked = false;
  private seq = 0;
  private lastMs = 0;
  private pumping = false;
  private again = false;
  private closing = false;
  private diskBlocked = false;
  private diskNeed = 0;
  private probe: NodeJS.Timeout | undefined;
  private readonly madeDirs = new Set<string>();
  private dirSyncs = new Map<string, Promise<void>>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly m;

  constructor(
    readonly opts: StorageOptions,
    outputs: StorageOutput[],
    private readonly flow: FlowControl,
    metrics: Metrics,
    private readonly log: Logger,
  ) {
    for (const o of outputs) this.outs.set(o.id, { ...o, usage: 0, blocked: false, held: 0 });
    this.upLimit = opts.memoryLimit * UP_SHARE;
    this.outLimit = this.upLimit / Math.max(1, this.outs.size);
    this.writeLimit = opts.memoryLimit * WRITE_SHARE;
    this.m = {
      chunks: metrics.gauge('logwarden_storage_chunks', 'Filesystem-buffered chunks by state: up (in memory), down (on disk only), writing', ['state']),
      memory: metrics.gauge(
        'logwarden_storage_memory_bytes',
        'Estimated memory of buffered events (3x chunk file bytes): up (queued or being read back), writing (waiting for their write)',
        ['state'],
      ),
      bytes: metrics.gauge('logwarden_storage_bytes', 'Bytes of chunk files in the filesystem buffer', []),
      outputBytes: metrics.gauge('logwarden_storage_output_bytes', 'Bytes of buffered chunks an output has not committed (storage.total_limit_size counts this)', ['name']),
      memoryLimit: metrics.gauge(
        'logwarden_storage_memory_limit_bytes',
        'Bound of logwarden_storage_memory_bytes by state: up (half of memory_limit, split evenly between outputs), writing (an eighth)',
        ['state'],
      ),
      outputLimit: metrics.gauge('logwarden_storage_output_limit_bytes', "An output's storage.total_limit_size (only outputs that set it)", ['name']),
      written: metrics.counter('logwarden_storage_chunks_written_total', 'Chunks written to the filesystem buffer, by input', ['name']),
      writeErrors: metrics.counter('logwarden_storage_write_errors_total', 'Chunk writes that failed, by input and errno', ['name', 'reason']),
      unbuffered: metrics.counter(
        'logwarden_storage_unbuffered_chunks_total',
        'Chunks of filesystem inputs kept in memory only (acked after delivery): total_limit_size, disk_full, write_error',
        ['name', 'reason'],
      ),
      replayed: metrics.counter('logwarden_storage_replayed_chunks_total', 'Chunks read back from the filesystem buffer', []),
      quarantined: metrics.counter('logwarden_storage_quarantined_chunks_total', 'Torn or corrupt chunk files moved to quarantine/, by reason', ['reason']),
      skipped: metrics.counter(
        'logwarden_storage_skipped_files_total',
        'Files named like chunks that were left alone at start: not_a_file (FIFO, socket, device, directory) or unreadable',
        ['reason'],
      ),
      dropped: metrics.counter('logwarden_storage_dropped_records_total', 'Buffered records an output will never get, by reason', ['name', 'reason']),
    };
    for (const o of this.outs.values()) {
      this.m.outputBytes.labels(o.id).set(0);
      if (o.limit !== undefined) this.m.outputLimit.labels(o.id).set(o.limit);
    }
    this.m.memoryLimit.labels('up').set(this.upLimit);
    this.m.memoryLimit.labels('writing').set(this.writeLimit);
    flow.on('change', this.onFlow);
  }

  private readonly onFlow = (): void => this.pump();

  /** Creates storage.path and loads what a previous run left, before inputs start. */
  async open(): Promise<{ chunks: number; records: number; quarantined: number }> {
    await mkdir(this.opts.path, { recursive: true });
    let found = 0;
    let records = 0;
    let quarantined = 0;
    const entries = await readdir(this.opts.path, { withFileTypes: true });
    const all: Array<{ dir: string; name: string }> = [];
    for (const d of entries) {
      if (!d.isDirectory() || RESERVED_DIRS.has(d.name)) continue;
      const dir = join(this.opts.path, d.name);
      const names = await readdir(dir);
      const chunkNames = new Set(names.filter((n) => n.endsWith(CHUNK_EXT)));
      for (const n of names) {
        // A marker whose chunk is gone: the chunk was deleted and the crash came before the marker.
        if (n.endsWith(CHUNK_EXT + DONE_EXT) && !chunkNames.has(n.slice(0, -DONE_EXT.length))) await unlink(join(dir, n)).catch(() => undefined);
      }
      for (const n of chunkNames) all.push({ dir, name: n });
    }
    // Names start with the creation time: this is creation order across inputs.
    all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const { dir, name } of all) {
      const file = join(dir, name);
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
        await this.quarantine(file, e);
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
    // Non-blocking: opening a FIFO for reading would wait for a writer.
    const fh = await open(file, fsc.O_RDONLY | fsc.O_NONBLOCK);
    let header;
    let size: number;
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new NotAChunk(file, st);
      size = st.size;
      let len = Math.min(size, 64 * 1024);
      for (;;) {
        const buf = Buffer.alloc(len);
        const { bytesRead } = await fh.read(buf, 0, len, 0);
        const r = readHeader(buf.subarray(0, bytesRead), size);
        if (r.need === 0) {
          header = r.header;
          break;
        }
        if (r.need > size) throw new CorruptChunk(`header runs past the end of the file (${r.need} > ${size})`, 'torn');
        len = r.need;
      }
    } finally {
      await fh.close();
    }
    let done: string[] = [];
    try {
      done = (await readFile(file + DONE_EXT, 'utf8')).split('\n').filter(Boolean);
    } catch {
      // no marker: no output finished this chunk
    }
    const c = new Chunk(file, header.input, header.outputs, header.records, size, 'stored');
    c.marker = done.length > 0;
    for (const o of done) c.pending.delete(o);
    for (const o of [...c.pending]) {
      if (this.outs.has(o)) continue;
      c.pending.delete(o);
      this.m.dropped.labels(o, 'output_removed').inc(header.records);
      this.log.warn({ chunk: c.name, output: o, records: header.records }, 'buffered chunk was routed to an output that is no longer configured: that part is dropped');
    }
    if (c.pending.size === 0) {
      await this.unlinkChunk(c);
      return undefined;
    }
    this.chunks.set(c.file, c);
    for (const o of c.pending) this.use(o, c.bytes);
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
    const file = join(this.opts.path, dirName(input), this.nextName());
    const c = new Chunk(file, input, ids, records, 0, 'writing');
    c.segments = segments;
    c.segmentBytes = segmentBytes;
    const { head, body } = encodeChunk({ input, outputs: ids, records, created: Date.now() }, segments, this.opts.checksum);
    c.bytes = head.length + body.length;
    this.count(c);
    inputCommit.hold();

    let reason: string | undefined;
    if (this.diskBlocked) reason = 'disk_full';
    else {
      for (const o of ids) {
        const st = this.outs.get(o)!;
        if (st.limit === undefined || st.usage + c.bytes <= st.limit) continue;
        if (st.action === 'drop_oldest_chunk') this.dropOldest(st, c.bytes);
        if (st.usage + c.bytes > st.limit) {
          reason = 'total_limit_size';
          this.blockOutput(st);
        }
      }
    }
    if (reason) {
      this.memoryOnly(c, inputCommit, reason);
      return;
    }

    for (const o of ids) this.use(o, c.bytes);
    this.chunks.set(c.file, c);
    this.backlog.add(c);
    this.writing++;
    this.writingBytes += c.cost;
    if (!this.writesBlocked && (this.writing > this.opts.maxChunksUp || this.writingBytes > this.writeLimit)) {
      this.writesBlocked = true;
      this.log.warn({ writing: this.writing, memory: this.writingBytes }, 'filesystem buffer: writes are behind; pausing filesystem inputs');
      this.flow.block('storage:writes', `${this.writing} chunks (~${this.writingBytes} bytes in memory) waiting to be written`, { storage: true });
    }
    this.gauges();
    c.io = this.track(this.write(c, head, body).then(
      () => {
        this.wrote(c);
        this.m.written.labels(input).inc();
        if (c.state === 'gone') {
          // Every output finished while the chunk was written; the unlink is chained after this.
          inputCommit.release();
          return;
        }
        c.state = 'stored';
        inputCommit.release();
        this.pump();
        this.maybeUnload(c);
        this.gauges();
      },
      (e: NodeJS.ErrnoException) => {
        this.wrote(c);
        for (const o of c.pending) this.unuse(o, c.bytes);
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
        if (full) this.diskFull(c.bytes);
        // Outputs that already settled keep their outcome; the rest are fed from memory.
        c.state = 'memory';
        c.inputCommit = inputCommit;
        this.m.unbuffered.labels(input, full ? 'disk_full' : 'write_error').inc();
        for (const o of c.pending) if (!c.queued.has(o) && !c.parked.has(o)) this.enqueue(c, o);
        this.finishMemory(c);
        this.gauges();
      },
    ));
    this.pump();
  }

  private wrote(c: Chunk): void {
    this.writing--;
    this.writingBytes -= c.cost;
    if (this.writesBlocked && this.writing <= this.opts.maxChunksUp / 2 && this.writingBytes <= this.writeLimit / 2) {
      this.writesBlocked = false;
      this.flow.unblock('storage:writes');
    }
  }

  private nextName(): string {
    // Creation time first so names sort in creation order, across restarts too.
    const ms = Math.max(Date.now(), this.lastMs);
    if (ms !== this.lastMs) this.seq = 0;
    this.lastMs = ms;
    return `${String(ms).padStart(14, '0')}-${String(process.pid).padStart(7, '0')}-${String(this.seq++).padStart(8, '0')}${CHUNK_EXT}`;
  }

  private async write(c: Chunk, head: Buffer, body: Buffer): Promise<void> {
    const dir = join(c.file, '..');
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.madeDirs.add(dir);
    }
    const fh = await open(c.file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL);
    try {
      await fh.writeFile(head);
      await fh.writeFile(body);
      if (this.opts.sync === 'full') await fh.sync();
    } catch (e) {
      await fh.close().catch(() => undefined);
      await unlink(c.file).catch(() => undefined);
      throw e;
    }
    await fh.close();
    if (this.opts.sync === 'full') await this.syncDir(dir);
  }

  /** fsync of a directory, shared by the writes that wait for the same one (a new file's name is durable only then). */
  private syncDir(dir: string): Promise<void> {
    const pending = this.dirSyncs.get(dir);
    if (pending) return pending.then(() => this.syncDir(dir));
    const p = (async () => {
      await new Promise((r) => setImmediate(r)); // let concurrent writes join this sync
      const fh = await open(dir, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    })().finally(() => {
      if (this.dirSyncs.get(dir) === p) this.dirSyncs.delete(dir);
    });
    this.dirSyncs.set(dir, p);
    return p;
  }

  /** A chunk that is not buffered: queued to every output now, the input acked after delivery. */
  private memoryOnly(c: Chunk, inputCommit: Commit, reason: string): void {
    c.state = 'memory';
    c.inputCommit = inputCommit;
    this.m.unbuffered.labels(c.input, reason).inc();
    for (const o of c.outputs) this.enqueue(c, o);
    this.gauges();
  }

  private finishMemory(c: Chunk): void {
    if (c.state !== 'memory' || c.queued.size > 0) return;
    c.state = 'gone';
    c.segments = undefined;
    this.uncount(c);
    const commit = c.inputCommit!;
    c.inputCommit = undefined;
    commit.release(c.failure === undefined, c.failure);
  }

  private enqueue(c: Chunk, o: string): void {
    const st = this.outs.get(o)!;
    if (c.queued.size === 0) this.queuedChunks++;
    c.queued.add(o);
    st.held += c.cost;
    const i = c.outputs.indexOf(o);
    const commit = new CommitClass((ok, reason, safe) => this.settled(c, o, ok, reason, safe));
    const segs = c.segments!;
    for (let k = 0; k < segs.length; k++) {
      const s = segs[k]!;
      if (!s.outputs.includes(i)) continue;
      const bytes = c.segmentBytes?.[k] ?? Math.round((c.bytes * s.events.length) / Math.max(1, c.records));
      st.engine.enqueue(s.events, commit, bytes);
    }
    commit.release();
  }

  private settled(c: Chunk, o: string, ok: boolean, reason: string | undefined, safe: boolean): void {
    c.queued.delete(o);
    if (c.queued.size === 0) this.queuedChunks--;
    const st = this.outs.get(o);
    if (st) st.held -= c.cost;
    if (!ok) c.failure ??= reason ?? 'failed';
    if (c.state === 'memory') {
      c.pending.delete(o);
      this.finishMemory(c);
      this.pump();
      this.gauges();
      return;
    }
    if (c.state === 'gone') {
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
    this.unuse(o, c.bytes);
    if (c.pending.size === 0) {
      this.remove(c);
      return;
    }
    if (!c.waiting()) this.backlog.delete(c);
    const line = `${o}\n`;
    this.chain(c, () => this.appendMarker(c, line));
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

  private async appendMarker(c: Chunk, line: string): Promise<void> {
    if (c.state !== 'stored') return;
    try {
      if (this.opts.sync === 'full') {
        const fh = await open(c.file + DONE_EXT, 'a');
        try {
          await fh.write(line);
          await fh.sync();
        } finally {
          await fh.close();
        }
      } else await appendFile(c.file + DONE_EXT, line);
      c.marker = true;
    } catch (e) {
      // Without the marker a replay re-sends this part: a duplicate, never a loss.
      this.log.warn({ chunk: c.name, err: (e as Error).message }, 'filesystem buffer: cannot record an output as done');
    }
  }

  private remove(c: Chunk): void {
    this.backlog.delete(c);
    this.chunks.delete(c.file);
    if (c.segments) this.unload(c);
    c.state = 'gone';
    this.chain(c, () => this.unlinkChunk(c));
  }

  private async unlinkChunk(c: Chunk): Promise<void> {
    await unlink(c.file).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') this.log.warn({ chunk: c.name, err: e.message }, 'filesystem buffer: cannot delete a finished chunk');
    });
    await unlink(c.file + DONE_EXT).catch(() => undefined);
  }

  private maybeUnload(c: Chunk): void {
    if (c.segments && c.queued.size === 0 && c.state === 'stored' && !c.loading) this.unload(c);
  }

  private unload(c: Chunk): void {
    c.segments = undefined;
    c.segmentBytes = undefined;
    this.uncount(c);
    if (c.fromDisk) {
      c.fromDisk = false;
      this.loadedBytes -= c.bytes;
    }
  }

  private count(c: Chunk): void {
    if (c.counted) return;
    c.counted = true;
    this.memBytes += c.cost;
  }

  private uncount(c: Chunk): void {
    if (!c.counted) return;
    c.counted = false;
    this.memBytes -= c.cost;
  }

  private use(o: string, bytes: number): void {
    const st = this.outs.get(o)!;
    st.usage += bytes;
    this.m.outputBytes.labels(o).set(st.usage);
  }

  private unuse(o: string, bytes: number): void {
    const st = this.outs.get(o);
    if (!st) return;
    st.usage -= bytes;
    this.m.outputBytes.labels(o).set(st.usage);
    if (st.blocked && st.usage <= st.limit! / 2) {
      st.blocked = false;
      this.log.info({ output: o, bytes: st.usage, limit: st.limit }, 'filesystem buffer below half of storage.total_limit_size: resuming inputs');
      this.flow.unblock(`storage:${o}`);
    }
  }

  private blockOutput(st: OutState): void {
    if (st.blocked) return;
    st.blocked = true;
    this.log.warn(
      { output: st.id, bytes: st.usage, limit: st.limit },
      'filesystem buffer reached storage.total_limit_size: pausing the filesystem inputs routed to this output; new chunks are acked after delivery',
    );
    this.flow.block(`storage:${st.id}`, `storage.total_limit_size reached (${st.usage} of ${st.limit} bytes)`, { storage: true, output: st.id });
  }

  /** storage.overflow_action drop_oldest_chunk: oldest chunks leave this output's queue until `need` bytes fit. */
  private dropOldest(st: OutState, need: number): void {
    let chunks = 0;
    let records = 0;
    for (const c of this.chunks.values()) {
      if (st.usage + need <= st.limit!) break;
      if (!c.pending.has(st.id) || c.state === 'writing') continue;
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

  private diskFull(bytes: number): void {
    this.diskNeed = Math.max(this.diskNeed, 4 * bytes, 256 * 1024);
    if (this.diskBlocked) return;
    this.diskBlocked = true;
    this.flow.block('storage:disk', `no space left in ${this.opts.path}`, { storage: true });
    const check = async () => {
      this.probe = undefined;
      if (this.closing) return;
      try {
        const s = await statfs(this.opts.path);
        const free = Number(s.bavail) * Number(s.bsize);
        if (free >= this.diskNeed) {
          this.diskBlocked = false;
          this.diskNeed = 0;
          this.log.info({ path: this.opts.path, free }, 'filesystem buffer: space available again; resuming inputs');
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

  private canLoad(c: Chunk): boolean {
    if (this.queuedChunks + this.loadingChunks >= this.opts.maxChunksUp) return false;
    // Chunks waiting for their write have their own share; the rest of memory holds what is queued.
    const up = this.memBytes - this.writingBytes;
    if (up > 0 && up + c.cost > this.upLimit) return false;
    // One chunk larger than the limit still loads when nothing else is loaded, or it never would.
    return this.loadedBytes === 0 || this.loadedBytes + c.bytes <= this.opts.backlogMemLimit;
  }

  private load(c: Chunk): void {
    c.loading = true;
    this.loadingChunks++;
    this.loadedBytes += c.bytes;
    c.fromDisk = true;
    this.count(c);
    this.chain(c, async () => {
      let decoded;
      try {
        decoded = decodeChunk(await readFile(c.file));
      } catch (e) {
        c.loading = false;
        this.loadingChunks--;
        this.loadedBytes -= c.bytes;
        c.fromDisk = false;
        this.uncount(c);
        const err = e instanceof CorruptChunk ? e : new CorruptChunk(`cannot read: ${(e as Error).message}`, 'torn');
        this.backlog.delete(c);
        this.chunks.delete(c.file);
        for (const o of c.pending) this.unuse(o, c.bytes);
        c.state = 'gone';
        await this.quarantine(c.file, err);
        this.pump();
        this.gauges();
        return;
      }
      c.loading = false;
      this.loadingChunks--;
      if (c.state === 'gone') {
        this.loadedBytes -= c.bytes;
        c.fromDisk = false;
        this.uncount(c);
        return;
      }
      c.segments = decoded.segments;
      this.m.replayed.inc();
      this.pump();
      this.maybeUnload(c);
      this.gauges();
    });
  }

  private async quarantine(file: string, err: CorruptChunk): Promise<void> {
    const qdir = join(this.opts.path, 'quarantine');
    const target = join(qdir, `${basename(join(file, '..'))}-${basename(file)}`);
    this.m.quarantined.labels(err.reason).inc();
    try {
      await mkdir(qdir, { recursive: true });
      await rename(file, target);
      await rename(file + DONE_EXT, target + DONE_EXT).catch(() => undefined);
      this.log.error({ chunk: file, quarantine: target, reason: err.reason, err: err.message }, 'filesystem buffer: torn or corrupt chunk moved to quarantine');
    } catch (e) {
      this.log.error({ chunk: file, reason: err.reason, err: err.message, move_error: (e as Error).message }, 'filesystem buffer: torn or corrupt chunk could not be moved to quarantine; skipped');
    }
  }

  /**
   * Queues waiting chunks to outputs with room: per output oldest first, at most max_chunks_up
   * chunks queued at once; a chunk on disk is read back first within backlog.mem_limit.
   */
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
    const stalled = new Set<string>();
    const total = this.outs.size;
    // An output that gets nothing more until it delivers must not sit on a partial batch for
    // batch_wait: with a small memory share that would pace it at one share per batch_wait.
    const starve = (o: string) => {
      stalled.add(o);
      this.outs.get(o)!.engine.flush();
    };
    for (const c of this.backlog) {
      if (stalled.size >= total) break;
      const want: string[] = [];
      for (const o of c.pending) {
        if (c.queued.has(o) || c.parked.has(o) || stalled.has(o)) continue;
        const st = this.outs.get(o)!;
        if (!st.engine.hasRoom) {
          stalled.add(o);
          continue;
        }
        if (st.held > 0 && st.held + c.cost > this.outLimit) {
          starve(o);
          continue;
        }
        want.push(o);
      }
      if (want.length === 0) {
        this.maybeUnload(c);
        continue;
      }
      const stall = () => {
        for (const o of want) stalled.add(o);
        this.maybeUnload(c);
      };
      if (!c.segments) {
        if (c.loading) for (const o of want) stalled.add(o);
        else if (this.canLoad(c)) {
          this.load(c);
          for (const o of want) stalled.add(o);
        } else for (const o of want) starve(o);
        continue;
      }
      if (c.loading) {
        stall();
        continue;
      }
      if (c.queued.size === 0 && this.queuedChunks >= this.opts.maxChunksUp) {
        for (const o of want) starve(o);
        this.maybeUnload(c);
        continue;
      }
      for (const o of want) this.enqueue(c, o);
      if (!c.waiting()) this.backlog.delete(c);
    }
  }

  private gauges(): void {
    let up = 0;
    let down = 0;
    let bytes = 0;
    for (const c of this.chunks.values()) {
      if (c.state === 'writing') continue;
      bytes += c.bytes;
      if (c.segments) up++;
      else down++;
    }
    this.m.chunks.labels('up').set(up);
    this.m.chunks.labels('down').set(down);
    this.m.chunks.labels('writing').set(this.writing);
    this.m.bytes.set(bytes);
    this.m.memory.labels('up').set(this.memBytes - this.writingBytes);
    this.m.memory.labels('writing').set(this.writingBytes);
  }

  /** Chunks and bytes still buffered, and the estimated memory of the events held (status, tests). */
  get depth(): { chunks: number; bytes: number; queued: number; writing: number; memory: number } {
    let bytes = 0;
    for (const c of this.chunks.values()) bytes += c.bytes;
    return { chunks: this.chunks.size, bytes, queued: this.queuedChunks, writing: this.writing, memory: this.memBytes };
  }

  /** Stops queuing chunks to outputs (shutdown: what is queued drains, the rest stays on disk). */
  freeze(): void {
    this.closing = true;
  }

  /** Stops queuing chunks and waits for pending file operations. What is not done stays on disk. */
  async close(): Promise<void> {
    this.closing = true;
    this.flow.off('change', this.onFlow);
    if (this.probe) clearTimeout(this.probe);
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }
}

/** Storage header size for tests that craft torn files. */
export const CHUNK_PREAMBLE = PREAMBLE;

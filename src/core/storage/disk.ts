/**
 * The filesystem buffer's disk I/O: chunk file names and directories, writing a chunk (with
 * `storage.sync: full`, fsynced with its directory), the append-only `<chunk>.done` marker,
 * reading chunks back, listing what a previous run left, and moving torn or corrupt files to
 * `storage.path/quarantine/`.
 */
import { constants as fsc } from 'node:fs';
import { appendFile, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import { CorruptChunk, decodeChunk, readHeader, type ChunkHeader, type Segment } from './chunk-file.js';

export const CHUNK_EXT = '.lwc';
export const DONE_EXT = '.done';
/** Directories under storage.path that hold no input's chunks. */
const RESERVED_DIRS = new Set(['quarantine', 'dead-letter']);

/** A file under a chunk's name that is no regular file. */
export class NotAChunk extends Error {
  readonly reason = 'not_a_file';
  constructor(file: string, st: { isFIFO(): boolean; isSocket(): boolean; isDirectory(): boolean }) {
    super(`${file} is ${st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isDirectory() ? 'a directory' : 'not a regular file'}`);
  }
}

function dirName(id: string): string {
  return id.replace(/[^A-Za-z0-9_.-]/g, '_');
}

export class ChunkFiles {
  private seq = 0;
  private lastMs = 0;
  private readonly madeDirs = new Set<string>();
  private readonly dirSyncs = new Map<string, Promise<void>>();

  constructor(
    private readonly opts: { path: string; sync: 'normal' | 'full' },
    private readonly log: Logger,
    private readonly quarantined: { labels(reason: string): { inc(): void } },
  ) {}

  /** The path of a new chunk of `input`. */
  newChunk(input: string): string {
    return join(this.opts.path, dirName(input), this.nextName());
  }

  private nextName(): string {
    // Creation time first so names sort in creation order, across restarts too.
    const ms = Math.max(Date.now(), this.lastMs);
    if (ms !== this.lastMs) this.seq = 0;
    this.lastMs = ms;
    return `${String(ms).padStart(14, '0')}-${String(process.pid).padStart(7, '0')}-${String(this.seq++).padStart(8, '0')}${CHUNK_EXT}`;
  }

  /** Creates storage.path; lists the chunk files a previous run left, in creation order (deletes markers whose chunk is gone). */
  async list(): Promise<string[]> {
    await mkdir(this.opts.path, { recursive: true });
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
    return all.map(({ dir, name }) => join(dir, name));
  }

  /** A chunk file's header, size and the outputs its marker names; throws NotAChunk, CorruptChunk or an I/O error. */
  async scan(file: string): Promise<{ header: ChunkHeader; size: number; done: string[] }> {
    // Non-blocking: opening a FIFO for reading would wait for a writer.
    const fh = await open(file, fsc.O_RDONLY | fsc.O_NONBLOCK);
    let header: ChunkHeader | undefined;
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
    return { header, size, done };
  }

  async write(file: string, head: Buffer, body: Buffer): Promise<void> {
    const dir = join(file, '..');
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.madeDirs.add(dir);
    }
    const fh = await open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL);
    try {
      await fh.writeFile(head);
      await fh.writeFile(body);
      if (this.opts.sync === 'full') await fh.sync();
    } catch (e) {
      await fh.close().catch(() => undefined);
      await unlink(file).catch(() => undefined);
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

  /** Appends an output's name to the chunk's marker. A failure is logged: a replay then re-sends that part, a duplicate, never a loss. */
  async appendMarker(file: string, line: string): Promise<void> {
    try {
      if (this.opts.sync === 'full') {
        const fh = await open(file + DONE_EXT, 'a');
        try {
          await fh.write(line);
          await fh.sync();
        } finally {
          await fh.close();
        }
      } else await appendFile(file + DONE_EXT, line);
    } catch (e) {
      this.log.warn({ chunk: basename(file), err: (e as Error).message }, 'filesystem buffer: cannot record an output as done');
    }
  }

  /** Reads a chunk back; throws CorruptChunk or an I/O error. */
  async read(file: string): Promise<Segment[]> {
    return decodeChunk(await readFile(file)).segments;
  }

  async unlink(file: string): Promise<void> {
    await unlink(file).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') this.log.warn({ chunk: basename(file), err: e.message }, 'filesystem buffer: cannot delete a finished chunk');
    });
    await unlink(file + DONE_EXT).catch(() => undefined);
  }

  async quarantine(file: string, err: CorruptChunk): Promise<void> {
    const qdir = join(this.opts.path, 'quarantine');
    const target = join(qdir, `${basename(join(file, '..'))}-${basename(file)}`);
    this.quarantined.labels(err.reason).inc();
    try {
      await mkdir(qdir, { recursive: true });
      await rename(file, target);
      await rename(file + DONE_EXT, target + DONE_EXT).catch(() => undefined);
      this.log.error({ chunk: file, quarantine: target, reason: err.reason, err: err.message }, 'filesystem buffer: torn or corrupt chunk moved to quarantine');
    } catch (e) {
      this.log.error({ chunk: file, reason: err.reason, err: err.message, move_error: (e as Error).message }, 'filesystem buffer: torn or corrupt chunk could not be moved to quarantine; skipped');
    }
  }
}

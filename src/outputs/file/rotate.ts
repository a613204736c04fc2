/**
 * Rotation of the `file` output's files, with Fluent Bit 5.1's out_file semantics: once the
 * current file reached `rotate_max_size`, it is renamed to `NAME.YYYYMMDD_HHMMSS_xxxxxxxx`
 * (local time, 8 random hex digits), compressed to `NAME.….gz` when `rotate_gzip` is on, and
 * only the `rotate_max_files` newest rotated files of NAME are kept (by modification time).
 * `rotate_interval`, the age of the current file, is a logwarden addition.
 *
 * Every file output of the process that writes one path shares one `SharedFile`: one handle, one
 * size, one queue. Batches for the path are written one after the other, and the decision to
 * rotate is taken inside that queue, so two outputs (or two workers of one output) neither
 * interleave nor rotate the file twice. Another process that rotates the path (a second
 * `service.workers` process, logrotate without copytruncate) is noticed by the inode: the handle
 * is reopened on the new file and the file is not rotated again.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readdir, rename, stat, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

export interface RotateRules {
  /** Bytes; 0: no size rule. */
  maxSize: number;
  /** Milliseconds; 0: no age rule. */
  interval: number;
  maxFiles: number;
  gzip: boolean;
}

/** Fluent Bit's suffix: local `YYYYMMDD_HHMMSS`, `_`, 8 random hex digits. */
export function rotationSuffix(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const date = `${p(d.getFullYear(), 4)}${p(d.getMonth() + 1)}${p(d.getDate())}_${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
  return `${date}_${randomBytes(4).toString('hex')}`;
}

const SUFFIX = /^\d{8}_\d{6}(?:_[0-9a-fA-F]{8})?(?:\.gz)?$/;

/** Whether `name` is a rotated file of `base` (Fluent Bit's current and legacy suffixes, plain or .gz). */
export function isRotatedName(name: string, base: string): boolean {
  return name.length > base.length + 1 && name.startsWith(`${base}.`) && SUFFIX.test(name.slice(base.length + 1));
}

/** A compression left behind by a process that stopped during it is removed after this long. */
const STALE_PARTIAL_MS = 10 * 60_000;

/**
 * Keeps the `maxFiles` newest rotated files of `path` (oldest modification time first out, as
 * Fluent Bit does); returns the files removed.
 */
export async function trimRotated(path: string, maxFiles: number, nowMs = Date.now()): Promise<string[]> {
  const dir = dirname(path);
  const base = basename(path);
  const found: Array<{ file: string; mtime: number }> = [];
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    const file = join(dir, name);
    if (name.startsWith(`${base}.`) && name.endsWith('.gz.partial') && isRotatedName(name.slice(0, -'.partial'.length), base)) {
      const st = await stat(file).catch(() => undefined);
      if (st?.isFile() && nowMs - st.mtimeMs > STALE_PARTIAL_MS) {
        await unlink(file).catch(() => undefined);
        removed.push(file);
      }
      continue;
    }
    if (!isRotatedName(name, base)) continue;
    const st = await stat(file).catch(() => undefined);
    if (st?.isFile()) found.push({ file, mtime: st.mtimeMs });
  }
  if (found.length <= maxFiles) return removed;
  found.sort((a, b) => a.mtime - b.mtime || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  for (const { file } of found.slice(0, found.length - maxFiles)) {
    try {
      await unlink(file);
      removed.push(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return removed;
}

/**
 * `file` -> `file.gz`: written as `file.gz.partial`, renamed when complete (a crash leaves the
 * uncompressed file, never a truncated .gz under the final name), with the source's times.
 */
export async function gzipRotated(file: string): Promise<string> {
  const gz = `${file}.gz`;
  const partial = `${gz}.partial`;
  const st = await stat(file);
  try {
    await pipeline(createReadStream(file), createGzip(), createWriteStream(partial, { flags: 'wx' }));
    await utimes(partial, st.atime, st.mtime);
    await rename(partial, gz);
  } catch (e) {
    await unlink(partial).catch(() => undefined);
    throw e;
  }
  await unlink(file);
  return gz;
}

/** Background work per path (compression, then trimming), one task after the other. */
const maintenance = new Map<string, Promise<void>>();

function schedule(path: string, task: () => Promise<void>): void {
  const prev = maintenance.get(path) ?? Promise.resolve();
  const next = prev.then(task);
  maintenance.set(path, next);
  void next.finally(() => {
    if (maintenance.get(path) === next) maintenance.delete(path);
  });
}

/** Resolves once the compressions and trims started so far are done (all paths, or one). */
export async function rotationsSettled(path?: string): Promise<void> {
  for (;;) {
    const pending = path === undefined ? [...maintenance.values()] : [maintenance.get(path)].filter((p) => p !== undefined);
    if (pending.length === 0) return;
    await Promise.allSettled(pending);
  }
}

export type Warn = (fields: Record<string, unknown>, msg: string) => void;

/** One path as every file output of the process sees it. */
export class SharedFile {
  handle?: FileHandle;
  /** Inode of `handle`. */
  ino = 0;
  /** Bytes in the file (what the file system says after each write). */
  size = 0;
  /** When the current file began (ms): the base of the age rule. */
  createdAt = 0;
  /** Outputs holding this path (their open-file list, or a batch being written). */
  refs = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private lastWarn = 0;

  constructor(readonly path: string) {}

  /** Runs `fn` after every earlier task for this path. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn);
    this.tail = p.catch(() => undefined);
    return p;
  }

  /**
   * The handle, opened for appending when there is none. A file created now is 0 bytes old; a
   * file that was there keeps its size and its age: from its birth time where the file system
   * records one (ext4, xfs, btrfs, tmpfs via statx), else from its last modification.
   */
  async open(nowMs: number): Promise<FileHandle> {
    if (this.handle) return this.handle;
    const h = await open(this.path, 'a');
    try {
      const st = await h.stat();
      if (st.ino !== this.ino || this.createdAt === 0) {
        this.createdAt = st.size === 0 ? nowMs : st.birthtimeMs > 0 ? Math.min(st.birthtimeMs, st.mtimeMs) : st.mtimeMs;
      }
      this.ino = st.ino;
      this.size = st.size;
    } catch (e) {
      await h.close().catch(() => undefined);
      throw e;
    }
    this.handle = h;
    return h;
  }

  async closeHandle(sync = false): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    if (!h) return;
    if (sync) await h.sync().catch(() => undefined);
    await h.close().catch(() => undefined);
  }

  /** Writes all of `data` (a short write continues where it stopped). */
  async write(data: Buffer, rules: RotateRules | undefined, nowMs: number): Promise<void> {
    const h = await this.open(nowMs);
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await h.write(data, off, data.length - off);
      off += bytesWritten;
    }
    // With rotation, the real size (another process may append too); without, ours is enough.
    this.size = rules ? (await h.stat()).size : this.size + data.length;
  }

  /**
   * Before a write: follow a rotation done elsewhere (the path is another file now, or gone),
   * then rotate when a rule says so (a file that is over the size or the age at start rotates
   * before the first write).
   */
  async beforeWrite(rules: RotateRules, nowMs: number, warn: Warn): Promise<void> {
    if (this.handle) {
      const st = await stat(this.path).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      });
      if (st?.ino !== this.ino) await this.closeHandle();
    }
    if (!this.handle) {
      try {
        await this.open(nowMs);
      } catch {
        return; // the write that follows reports it
      }
    }
    if (this.due(rules, nowMs)) await this.rotate(rules, nowMs, warn);
  }

  /** After a write: rotate at once when this batch took the file to the size. */
  async afterWrite(rules: RotateRules, nowMs: number, warn: Warn): Promise<void> {
    if (rules.maxSize > 0 && this.size >= rules.maxSize) await this.rotate(rules, nowMs, warn);
  }

  private due(rules: RotateRules, nowMs: number): boolean {
    if (this.size === 0) return false;
    if (rules.maxSize > 0 && this.size >= rules.maxSize) return true;
    return rules.interval > 0 && nowMs - this.createdAt >= rules.interval;
  }

  /**
   * Renames the current file to its rotated name; the next write creates a new one. A failure
   * is not the batch's: it is logged and tried again at the next batch, and records go on into
   * the current file (as Fluent Bit does).
   */
  private async rotate(rules: RotateRules, nowMs: number, warn: Warn): Promise<void> {
    const target = `${this.path}.${rotationSuffix(nowMs)}`;
    try {
      const st = await stat(this.path).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      });
      if (!st || st.ino !== this.ino) {
        // Rotated by someone else in between: write to the new file, do not rotate it again.
        await this.closeHandle();
        return;
      }
      await rename(this.path, target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.closeHandle(); // moved away between the check and the rename
        return;
      }
      if (nowMs - this.lastWarn >= 60_000) {
        this.lastWarn = nowMs;
        const err = e as NodeJS.ErrnoException;
        warn({ file: this.path, err: err.message, code: err.code }, 'cannot rotate the file; records go on into it, rotation is tried again at the next batch');
      }
      return;
    }
    await this.closeHandle(false);
    this.size = 0;
    this.createdAt = 0;
    this.ino = 0;
    const path = this.path;
    schedule(path, async () => {
      if (rules.gzip) {
        try {
          await gzipRotated(target);
        } catch (e) {
          warn({ file: target, err: (e as Error).message }, 'cannot compress the rotated file; it is kept uncompressed');
        }
      }
      try {
        await trimRotated(path, rules.maxFiles);
      } catch (e) {
        warn({ file: path, err: (e as Error).message }, 'cannot remove old rotated files; tried again at the next rotation');
      }
    });
  }
}

/** The process's shared files, by absolute path. */
const files = new Map<string, SharedFile>();

export function acquireFile(path: string): SharedFile {
  let f = files.get(path);
  if (!f) {
    f = new SharedFile(path);
    files.set(path, f);
  }
  f.refs++;
  return f;
}

/** Drops one hold; the last one closes the handle (after the writes queued before it). */
export function releaseFile(f: SharedFile, sync = false): Promise<void> {
  f.refs--;
  if (f.refs > 0) return Promise.resolve();
  if (files.get(f.path) === f) files.delete(f.path);
  return f.run(() => (f.refs > 0 ? Promise.resolve() : f.closeHandle(sync)));
}

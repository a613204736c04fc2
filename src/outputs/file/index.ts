/**
 * The `file` output with Fluent Bit out_file semantics: `path` (directory), `file` (default: the
 * tag), `mkdir`, `format` (out_file, plain, json_lines, csv, ltsv, template, msgpack), and the
 * size-based rotation of Fluent Bit 5.1 (`rotate`, `rotate_max_size`, `rotate_max_files`,
 * `rotate_gzip`) plus an age rule (`rotate_interval`), see rotate.ts and docs/outputs-file.md.
 * Files are append-only; each batch is one write per file, the handles stay open, and they are
 * fsynced and closed on shutdown. A tag used as a file name can never leave `path`.
 */
import { mkdir, realpath } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../../config/errors.js';
import type { OptionTable, RawSection } from '../../config/schema.js';
import type { LogEvent } from '../../core/event.js';
import { definePlugin, DeliveryError, EncodeError, RecordsFailed, type OutgoingBatch, type OutputInstance, type PluginConfig } from '../../core/plugin.js';
import { compileFormat, jsonDateOptions } from '../format.js';
import { acquireFile, releaseFile, rotationsSettled, type RotateRules, type SharedFile } from './rotate.js';
import { deliveryOptions } from '../../core/common-options.js';

const options = {
  ...deliveryOptions({ batch_size: 5000, batch_wait: 0, workers: 1 }),
  path: { type: 'string', description: 'Directory of the files (default: the working directory)' },
  file: { type: 'string', description: 'File name (default: the tag of each event)' },
  mkdir: { type: 'bool', default: false, description: 'Create path when it does not exist' },
  format: {
    type: 'enum',
    values: ['out_file', 'plain', 'json_lines', 'csv', 'ltsv', 'template', 'msgpack'],
    default: 'out_file',
    description: 'Line format (Fluent Bit out_file formats, plus json_lines)',
  },
  delimiter: { type: 'string', description: "Field delimiter for csv (default ',') and ltsv (default tab); also 'space', 'comma', 'tab'" },
  label_delimiter: { type: 'string', description: "Label delimiter for ltsv (default ':')" },
  template: { type: 'string', default: '{time} {message}', description: 'Template for format template: {time}, {tag} and {record_key}' },
  ...jsonDateOptions,
  max_open_files: { type: 'int', default: 64, min: 1, description: 'File handles kept open; the least recently used is closed beyond this' },
  rotate: { type: 'bool', default: false, description: 'Rotate each file by size (rotate_max_size) and, a logwarden addition, by age (rotate_interval)' },
  rotate_max_size: {
    type: 'size',
    default: '100M',
    description: 'With rotate: the current file is rotated once it holds this many bytes (after the batch that reached it); 0: no size rule (then rotate_interval is needed)',
  },
  rotate_max_files: { type: 'int', default: 7, min: 1, max: 100000, description: 'With rotate: rotated files kept per file; the oldest are removed' },
  rotate_gzip: { type: 'bool', default: true, description: 'With rotate: compress rotated files (NAME.YYYYMMDD_HHMMSS_xxxxxxxx.gz)' },
  rotate_interval: {
    type: 'duration',
    default: 0,
    description: 'With rotate (logwarden addition): rotate before a write once the current file is this old (e.g. 1h, 1d; since it was created); 0: no age rule',
  },
} as const satisfies OptionTable;

type FileConfig = PluginConfig<'output', typeof options>;

/** The rotation rules of a configuration; undefined when `rotate` is off. */
export function rotateRules(c: FileConfig): RotateRules | undefined {
  if (!c.rotate) return undefined;
  return { maxSize: c.rotate_max_size, interval: Math.round(c.rotate_interval * 1000), maxFiles: c.rotate_max_files, gzip: c.rotate_gzip };
}

/** Options that only mean something with `rotate on`. */
const ROTATE_ONLY = ['rotate_max_size', 'rotate_max_files', 'rotate_gzip', 'rotate_interval'] as const;

function positionOf(section: RawSection, name: string) {
  const key = Object.keys(section.values).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : (section.valuePos[key] ?? section.keyPos[key] ?? section.pos);
}

export interface FileOutputDeps {
  logger?: Pick<Logger, 'warn'>;
  /** Milliseconds since the epoch (the age rule's clock). */
  now?: () => number;
}

/** A tag as a file name: no directory separators, no NUL, never `.` or `..`. */
export function safeFileName(tag: string): string {
  const s = tag.replace(/[/\\\0]/g, '_');
  return s === '' || s === '.' || s === '..' ? `_${s}` : s;
}

/** Write errors that say the file name (the tag) is unusable, not the output. */
const BAD_NAME = new Set(['ENAMETOOLONG', 'EINVAL', 'EILSEQ', 'EISDIR']);

export class FileOutput implements OutputInstance {
  /** This output's open files, least recently used first; each holds its SharedFile. */
  private readonly open = new Map<string, SharedFile>();
  private readonly format;
  private readonly rules: RotateRules | undefined;
  private readonly now: () => number;
  private readonly warn: (fields: Record<string, unknown>, msg: string) => void;
  /** The directory as the file system names it (symbolic links resolved), once known. */
  private real: string;

  constructor(
    private readonly dir: string,
    private readonly c: FileConfig,
    deps: FileOutputDeps = {},
  ) {
    this.format = compileFormat(c);
    this.rules = rotateRules(c);
    this.now = deps.now ?? Date.now;
    const logger = deps.logger;
    this.warn = (fields, msg) => logger?.warn(fields, msg);
    this.real = dir;
  }

  async start(): Promise<void> {
    if (this.c.mkdir) await mkdir(this.dir, { recursive: true });
    // Outputs that name one directory differently still share each file (lock and size).
    this.real = await realpath(this.dir).catch(() => this.dir);
  }

  /** The shared file for `name`, held by this output's open-file list and once more by the caller. */
  private async file(name: string): Promise<SharedFile> {
    let f = this.open.get(name);
    if (f) {
      this.open.delete(name); // re-insert: most recently used last
    } else {
      if (this.open.size >= this.c.max_open_files) {
        const [oldName, old] = this.open.entries().next().value as [string, SharedFile];
        this.open.delete(oldName);
        await releaseFile(old);
      }
      f = acquireFile(join(this.real, name));
    }
    this.open.set(name, f);
    f.refs++; // the caller's hold, for the time of its write
    return f;
  }

  /** Forgets `name` (after a write error: the handle is reopened next time). */
  private async drop(name: string, f: SharedFile): Promise<void> {
    if (this.open.get(name) === f) {
      this.open.delete(name);
      await releaseFile(f);
    }
    await f.run(() => f.closeHandle());
  }

  /**
   * One write per file. A record that cannot be formatted, or whose tag cannot be a file name
   * (ENAMETOOLONG, EINVAL, EILSEQ, EISDIR), fails alone; the other files are still written. A
   * write error that may heal (a full disk) stops the batch there: the files written so far are
   * not written again, the rest is retried. With rotation, the file is rotated before the write
   * when it is due, and after the write when the batch reached the size: a batch is never split
   * between two files.
   */
  async send(batch: OutgoingBatch): Promise<void> {
    const events = batch.events;
    const byFile = new Map<string, readonly LogEvent[]>();
    const fromTag = this.c.file === undefined;
    if (!fromTag) byFile.set(this.c.file!, events);
    else {
      // Batches usually hold one tag: split only from the first record of another tag.
      const first = events[0]?.tag;
      let i = 0;
      while (i < events.length && events[i]!.tag === first) i++;
      if (i === events.length) {
        if (first !== undefined) byFile.set(safeFileName(first), events);
      } else {
        const lists = new Map<string, LogEvent[]>();
        let tag: string | undefined;
        let list: LogEvent[] | undefined;
        for (const ev of events) {
          if (ev.tag !== tag) {
            tag = ev.tag;
            const name = safeFileName(tag);
            list = lists.get(name);
            if (list === undefined) {
              lists.set(name, (list = []));
              byFile.set(name, list);
            }
          }
          list!.push(ev);
        }
      }
    }
    const failed: Array<{ event: LogEvent; error: DeliveryError }> = [];
    const files = [...byFile];
    const rules = this.rules;
    for (let i = 0; i < files.length; i++) {
      const [name, all] = files[i]!;
      const { data, list } = this.formatEach(all, failed);
      if (list.length === 0) continue;
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      let f: SharedFile | undefined;
      try {
        f = await this.file(name);
        const sf = f;
        await sf.run(async () => {
          if (rules) await sf.beforeWrite(rules, this.now(), this.warn);
          await sf.write(bytes, rules, this.now());
          if (rules) await sf.afterWrite(rules, this.now(), this.warn);
        });
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (f) await this.drop(name, f);
        // A full disk or a vanished directory may heal; a path that is not a directory will not.
        const retryable = err.code !== 'EISDIR' && err.code !== 'ENOTDIR' && err.code !== 'EACCES' && err.code !== 'EROFS' && !BAD_NAME.has(err.code ?? '');
        const error = new DeliveryError(`cannot write ${join(this.dir, name)}: ${err.message}`, retryable, `fs_${(err.code ?? 'error').toLowerCase()}`);
        if (fromTag && BAD_NAME.has(err.code ?? '')) {
          // The tag is at fault, not the output: only its records fail.
          for (const event of list) failed.push({ event, error });
          continue;
        }
        const pending = list.concat(...files.slice(i + 1).map(([, l]) => l));
        if (failed.length === 0 && pending.length === events.length) throw error; // nothing written
        throw new RecordsFailed(failed, pending, error);
      } finally {
        this.format.release(data); // written or failed: the buffer may serve the next batch
        if (f) await releaseFile(f);
      }
    }
    if (failed.length) throw new RecordsFailed(failed);
  }

  /** The file's text; when formatting fails, each record is formatted alone and those at fault are left out. */
  private formatEach(list: readonly LogEvent[], failed: Array<{ event: LogEvent; error: DeliveryError }>): { data: string | Buffer; list: readonly LogEvent[] } {
    try {
      return { data: this.format(list), list };
    } catch {
      const ok: LogEvent[] = [];
      const parts: Buffer[] = [];
      for (const ev of list) {
        try {
          const d = this.format([ev]);
          parts.push(typeof d === 'string' ? Buffer.from(d) : Buffer.from(d));
          ok.push(ev);
        } catch (e) {
          failed.push({ event: ev, error: new EncodeError(`cannot format the record: ${(e as Error)?.message ?? String(e)}`) });
        }
      }
      return { data: Buffer.concat(parts), list: ok };
    }
  }

  /** Fsyncs and closes the files (the last output holding a file closes it), and waits for compressions. */
  async close(): Promise<void> {
    const held = [...this.open.values()];
    this.open.clear();
    for (const f of held) await releaseFile(f, true);
    for (const f of held) await rotationsSettled(f.path);
  }
}

export const fileOutput = definePlugin({
  kind: 'output',
  name: 'file',
  description: 'Appends records to files, one per tag by default (Fluent Bit out_file)',
  options,
  prepare(c, section) {
    if (c.file !== undefined && /[/\\\0]/.test(c.file)) {
      throw new ConfigError('file is a name inside path, without directory separators', section.valuePos.file ?? section.pos, 'file');
    }
    if (!c.rotate) {
      for (const name of ROTATE_ONLY) {
        const pos = positionOf(section, name);
        if (pos !== undefined) throw new ConfigError(`${name} takes effect with rotate on, and rotate is off`, pos, name);
      }
    } else if (c.rotate_max_size === 0 && c.rotate_interval === 0) {
      throw new ConfigError(
        'rotate_max_size 0 leaves no rotation rule: give a size, or rotate_interval for age-based rotation',
        positionOf(section, 'rotate_max_size') ?? section.pos,
        'rotate_max_size',
      );
    }
    return c;
  },
  create(c, ctx) {
    return new FileOutput(resolve(c.path === undefined ? process.cwd() : resolve(ctx.baseDir, c.path)), c, { logger: ctx.logger });
  },
});

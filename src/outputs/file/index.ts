/**
 * The `file` output with Fluent Bit out_file semantics: `path` (directory), `file` (default: the
 * tag), `mkdir`, `format` (out_file, plain, json_lines, csv, ltsv, template, msgpack). Files are
 * append-only; each batch is one write per file, the handles stay open, and they are fsynced
 * and closed on shutdown. A tag used as a file name can never leave `path`.
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ConfigError } from '../../config/errors.js';
import type { OptionTable } from '../../config/schema.js';
import type { LogEvent } from '../../core/event.js';
import { DeliveryError, EncodeError, RecordsFailed, type OutputInstance, type OutputPlugin } from '../../core/plugin.js';
import { compileFormat, jsonDateOptions } from '../format.js';

const options = {
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
} satisfies OptionTable;

interface FileConfig {
  path?: string;
  file?: string;
  mkdir: boolean;
  format: string;
  delimiter?: string;
  label_delimiter?: string;
  template: string;
  json_date_key: string;
  json_date_format: string;
  max_open_files: number;
}

/** A tag as a file name: no directory separators, no NUL, never `.` or `..`. */
export function safeFileName(tag: string): string {
  const s = tag.replace(/[/\\\0]/g, '_');
  return s === '' || s === '.' || s === '..' ? `_${s}` : s;
}

/** Write errors that say the file name (the tag) is unusable, not the output. */
const BAD_NAME = new Set(['ENAMETOOLONG', 'EINVAL', 'EILSEQ', 'EISDIR']);

class FileOutput implements OutputInstance {
  private readonly handles = new Map<string, FileHandle>();
  private readonly format;

  constructor(
    private readonly dir: string,
    private readonly c: FileConfig,
  ) {
    this.format = compileFormat(c);
  }

  async start(): Promise<void> {
    if (this.c.mkdir) await mkdir(this.dir, { recursive: true });
  }

  private async handle(name: string): Promise<FileHandle> {
    let h = this.handles.get(name);
    if (h) {
      this.handles.delete(name); // re-insert: most recently used last
      this.handles.set(name, h);
      return h;
    }
    if (this.handles.size >= this.c.max_open_files) {
      const [oldName, old] = this.handles.entries().next().value as [string, FileHandle];
      this.handles.delete(oldName);
      await old.close();
    }
    h = await open(join(this.dir, name), 'a');
    this.handles.set(name, h);
    return h;
  }

  /**
   * One write per file. A record that cannot be formatted, or whose tag cannot be a file name
   * (ENAMETOOLONG, EINVAL, EILSEQ, EISDIR), fails alone; the other files are still written. A
   * write error that may heal (a full disk) stops the batch there: the files written so far are
   * not written again, the rest is retried.
   */
  async send(events: LogEvent[]): Promise<void> {
    const byFile = new Map<string, LogEvent[]>();
    const fromTag = this.c.file === undefined;
    if (!fromTag) byFile.set(this.c.file!, events);
    else {
      for (const ev of events) {
        const name = safeFileName(ev.tag);
        const list = byFile.get(name);
        if (list) list.push(ev);
        else byFile.set(name, [ev]);
      }
    }
    const failed: Array<{ event: LogEvent; error: DeliveryError }> = [];
    const files = [...byFile];
    for (let i = 0; i < files.length; i++) {
      const [name, all] = files[i]!;
      const { data, list } = this.formatEach(all, failed);
      if (list.length === 0) continue;
      try {
        const h = await this.handle(name);
        await (typeof data === 'string' ? h.write(data) : h.write(data));
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        const h = this.handles.get(name);
        this.handles.delete(name);
        await h?.close().catch(() => undefined);
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
      }
    }
    if (failed.length) throw new RecordsFailed(failed);
  }

  /** The file's text; when formatting fails, each record is formatted alone and those at fault are left out. */
  private formatEach(list: LogEvent[], failed: Array<{ event: LogEvent; error: DeliveryError }>): { data: string | Buffer; list: LogEvent[] } {
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

  async close(): Promise<void> {
    for (const h of this.handles.values()) {
      await h.sync().catch(() => undefined);
      await h.close().catch(() => undefined);
    }
    this.handles.clear();
  }
}

export const fileOutput: OutputPlugin<FileConfig> = {
  kind: 'output',
  name: 'file',
  description: 'Appends records to files, one per tag by default (Fluent Bit out_file)',
  options,
  defaults: { batch_size: 5000, batch_wait: 0, workers: 1 },
  validate(c, section) {
    if (c.file !== undefined && /[/\\\0]/.test(c.file)) {
      throw new ConfigError('file is a name inside path, without directory separators', section.valuePos.file ?? section.pos, 'file');
    }
  },
  create(c, ctx) {
    return new FileOutput(resolve(c.path === undefined ? process.cwd() : resolve(ctx.baseDir, c.path)), c);
  },
};

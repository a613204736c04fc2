/**
 * Reads an events file for `detect`, `replay` and `send` as a stream, with memory bounded by the
 * largest single event rather than the file:
 * - JSON lines: one value per line (empty lines skipped), read line by line;
 * - a JSON array document (`[ {...}, {...} ]`, on one line or pretty-printed): its elements one
 *   by one;
 * - a Kubernetes list document (`{"kind":"EventList", ..., "items":[...]}`), one line or
 *   pretty-printed: its items one by one, when `kind` comes before `items` (as the API server
 *   and kubectl write it); any other single object spread over several lines is read whole.
 * A file whose first line is not a complete JSON value is read as one document.
 */
import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { EventTime } from '../core/event.js';

export type JsonItem = { line: number; value: unknown } | { line: number; error: string };

const CHUNK = 1 << 16;

function open(file: string): Readable {
  return file === '-' ? process.stdin : createReadStream(file, { highWaterMark: CHUNK });
}

/** Every JSON value of `file` ('-': stdin), with the 1-based line it starts on; unparsable lines as errors. */
export function jsonItems(file: string): AsyncGenerator<JsonItem> {
  return jsonItemsOf(open(file));
}

/** The same from any byte source (a stream, or chunks of any size). */
export async function* jsonItemsOf(source: AsyncIterable<Buffer>): AsyncGenerator<JsonItem> {
  const decoder = new StringDecoder('utf8');
  const it = source[Symbol.asyncIterator]();
  // Look at the start to pick the reader; what was read is handed to it.
  let head = '';
  for (;;) {
    const n = await it.next();
    if (n.done) {
      head += decoder.end();
      break;
    }
    head += decoder.write(n.value);
    const t = head.trimStart();
    if (t.length && (t[0] !== '{' || head.includes('\n'))) break;
    if (head.length > 1 << 24) break;
  }
  const rest = async function* (): AsyncGenerator<string> {
    if (head) yield head;
    for (;;) {
      const n = await it.next();
      if (n.done) break;
      const s = decoder.write(n.value);
      if (s) yield s;
    }
    const tail = decoder.end();
    if (tail) yield tail;
  };
  const start = head.trimStart();
  if (start.startsWith('[')) {
    yield* documentItems(rest());
    return;
  }
  if (start.startsWith('{')) {
    const first = head.slice(0, head.includes('\n') ? head.indexOf('\n') : head.length);
    let oneLine = true;
    try {
      JSON.parse(first);
    } catch {
      oneLine = false;
    }
    if (!oneLine) {
      yield* documentItems(rest());
      return;
    }
  }
  yield* lineItems(rest());
}

async function* lineItems(chunks: AsyncIterable<string>): AsyncGenerator<JsonItem> {
  const rl = createInterface({ input: Readable.from(chunks), crlfDelay: Infinity });
  let n = 0;
  for await (const raw of rl) {
    n++;
    const line = raw.trim();
    if (line === '') continue;
    try {
      yield { line: n, value: JSON.parse(line) };
    } catch (e) {
      yield { line: n, error: `invalid JSON: ${(e as Error).message}` };
    }
  }
}

const QUOTE = 34; // "
const BACKSLASH = 92;
const NL = 10;

/**
 * One JSON document (an array, or an object that may be a list) scanned character by character:
 * the elements of the top-level array, or the `items` of a top-level list object, are parsed one
 * at a time; anything else is parsed whole at the end.
 */
async function* documentItems(chunks: AsyncIterable<string>): AsyncGenerator<JsonItem> {
  let line = 1;
  let depth = 0;
  let inStr = false;
  let esc = false;
  /** Depth whose direct children are emitted (1: top-level array, 2: items of a list), 0: none. */
  let emitDepth = 0;
  let top: 'array' | 'object' | undefined;
  // The element being collected: its text so far and the line it started on.
  let elem: string[] | undefined;
  let elemLine = 0;
  let elemStart = -1;
  // Depth-1 keys of a top-level object, to find "kind" and "items".
  let key: string | undefined;
  let expectKey = false;
  let strStart = -1;
  let strText = '';
  let kind: string | undefined;
  /** The whole document, while it may still be needed (an object that is not a streamable list). */
  let whole: string[] | undefined = [];
  let doneItems = false;

  const parse = (text: string, at: number): JsonItem => {
    try {
      return { line: at, value: JSON.parse(text) };
    } catch (e) {
      return { line: at, error: `invalid JSON: ${(e as Error).message}` };
    }
  };

  for await (const chunk of chunks) {
    whole?.push(chunk);
    const out: JsonItem[] = [];
    const n = chunk.length;
    for (let i = 0; i < n; i++) {
      const c = chunk.charCodeAt(i);
      if (c === NL) line++;
      if (inStr) {
        if (esc) esc = false;
        else if (c === BACKSLASH) esc = true;
        else if (c === QUOTE) {
          inStr = false;
          if (strStart >= 0) {
            const s = strText + chunk.slice(strStart, i);
            strStart = -1;
            strText = '';
            let v: string | undefined;
            try {
              v = JSON.parse(`"${s}"`) as string;
            } catch {
              v = undefined;
            }
            if (expectKey) {
              key = v;
              expectKey = false;
            } else if (key === 'kind') kind = v;
          }
        }
        continue;
      }
      const inElem = emitDepth > 0 && depth >= emitDepth && !doneItems;
      if (inElem && elemStart < 0 && elem === undefined && c > 32 && c !== 44 /* , */ && !(depth === emitDepth && c === 93) /* ] */) {
        elem = [];
        elemStart = i;
        elemLine = line;
      }
      switch (c) {
        case QUOTE:
          inStr = true;
          if (top === 'object' && depth === 1) {
            strStart = i + 1;
            strText = '';
          }
          break;
        case 123: // {
        case 91: // [
          depth++;
          if (depth === 1) {
            top = c === 91 ? 'array' : 'object';
            if (top === 'array') {
              emitDepth = 1;
              whole = undefined;
            } else expectKey = true;
          } else if (depth === 2 && top === 'object' && c === 91 && key === 'items' && kind?.endsWith('List') && !doneItems) {
            emitDepth = 2;
            whole = undefined;
          }
          break;
        case 125: // }
        case 93: // ]
          if (emitDepth > 0 && depth === emitDepth && elem !== undefined) {
            elem.push(chunk.slice(elemStart, i));
            out.push(parse(elem.join(''), elemLine));
            elem = undefined;
            elemStart = -1;
          }
          if (emitDepth === 2 && depth === 2) {
            doneItems = true;
            emitDepth = 0;
          }
          depth--;
          break;
        case 44: // ,
          if (emitDepth > 0 && depth === emitDepth && elem !== undefined) {
            elem.push(chunk.slice(elemStart, i));
            out.push(parse(elem.join(''), elemLine));
            elem = undefined;
            elemStart = -1;
          }
          if (top === 'object' && depth === 1) {
            expectKey = true;
            key = undefined;
          }
          break;
        default:
          break;
      }
    }
    if (inStr && strStart >= 0) {
      strText += chunk.slice(strStart);
      strStart = 0;
    }
    if (elem !== undefined) {
      elem.push(chunk.slice(Math.max(0, elemStart)));
      elemStart = 0;
    }
    // The next chunk continues the pending key string and element from its start.
    for (const o of out) yield o;
  }
  if (whole !== undefined) {
    const text = whole.join('');
    if (text.trim()) yield parse(text, 1);
  } else if (depth !== 0 || inStr) {
    yield { line, error: 'invalid JSON: the document ends before it is complete' };
  }
}

/** A record of an events file, with the tag and time of a line in replay's own output shape. */
export interface FileRecord {
  record: Record<string, unknown>;
  tag?: string;
  time?: EventTime;
}

/**
 * The records of `file` for replay and send: objects, the elements of arrays and the items of
 * `*List` objects, in order; a line in replay's output shape {"tag","time","record"} keeps its tag
 * and time. Invalid JSON or a value that is no object throws `file:line: ...`.
 */
export async function* fileRecords(file: string): AsyncGenerator<FileRecord> {
  for await (const it of jsonItems(file)) {
    if ('error' in it) throw new Error(`${file}:${it.line}: ${it.error}`);
    yield* recordsOf(it.value, `${file}:${it.line}`);
  }
}

function* recordsOf(v: unknown, where: string): Generator<FileRecord> {
  if (Array.isArray(v)) {
    for (const x of v) yield* recordsOf(x, where);
    return;
  }
  if (v === null || typeof v !== 'object') throw new Error(`${where}: expected a JSON object, found ${JSON.stringify(v)}`);
  const o = v as Record<string, unknown>;
  if (Array.isArray(o.items) && typeof o.kind === 'string' && o.kind.endsWith('List')) {
    for (const x of o.items) yield* recordsOf(x, where);
    return;
  }
  if (typeof o.tag === 'string' && typeof o.time === 'string' && o.record && typeof o.record === 'object' && Object.keys(o).length === 3) {
    const t = EventTime.fromISO(o.time);
    yield { record: o.record as Record<string, unknown>, tag: o.tag, ...(t ? { time: t } : {}) };
    return;
  }
  yield { record: o };
}

/**
 * A progress line on stderr when it is a terminal, for runs longer than a second: records so
 * far, rate and elapsed time, rewritten in place a few times a second and cleared at the end.
 */
export class Progress {
  private readonly started = Date.now();
  private last = 0;
  private shown = false;
  private readonly tty: boolean;

  constructor(
    private readonly what: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = out.isTTY === true;
  }

  /** Call with the running count; cheap when nothing is due. */
  update(records: number, extra = ''): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.started < 1000 || now - this.last < 250) return;
    this.last = now;
    this.shown = true;
    const secs = (now - this.started) / 1000;
    this.out.write(`\r\x1b[K${this.what} ${records} records, ${Math.round(records / secs)}/s, ${secs.toFixed(1)}s${extra}`);
  }

  done(): void {
    if (this.shown) this.out.write('\r\x1b[K');
  }
}

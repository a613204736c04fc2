/**
 * Differential runs with the real Fluent Bit as the oracle: the same lines go through Fluent
 * Bit (`tail` -> filters -> `file` output) and through logwarden with the same filter sections
 * after a parser filter that stands for tail's `parser`: `logwarden replay` on the lines, and
 * (the wire path) a Fluent Bit that only tails and forwards them to `logwarden run` (forward
 * input -> filters -> file output). All outputs are read back as ordered records: tag, time
 * (seconds and nanoseconds) and the record with its keys in the order written, duplicates
 * included.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, runCli, startDaemon } from './cli.js';
import { peerBinary } from './peers.js';

/** A JSON value with objects as ordered [key, value] lists (duplicate keys kept). */
export type Ordered = null | boolean | number | string | Ordered[] | { pairs: Array<[string, Ordered]> } | { float: number };

/**
 * Parses JSON text keeping key order and duplicate keys (JSON.parse keeps neither: the last
 * duplicate wins and integer-like keys move first). Numbers become JS numbers.
 */
export function parseOrdered(text: string): Ordered {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const fail = (what: string): never => {
    throw new Error(`invalid JSON at ${i} (${what}): ${text.slice(Math.max(0, i - 20), i + 20)}`);
  };
  const str = (): string => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail('unterminated string');
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): Ordered => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const pairs: Array<[string, Ordered]> = [];
      ws();
      if (text[i] === '}') {
        i++;
        return { pairs };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('key');
        const k = str();
        ws();
        if (text[i] !== ':') fail(':');
        i++;
        pairs.push([k, value()]);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return { pairs };
        }
        fail(', or }');
      }
    }
    if (c === '[') {
      i++;
      const items: Ordered[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return items;
      }
      for (;;) {
        items.push(value());
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return items;
        }
        fail(', or ]');
      }
    }
    if (c === '"') return str();
    const m = /^(?:true|false|null|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
    if (!m) return fail('value');
    i += m[0].length;
    if (m[0] === 'true') return true;
    if (m[0] === 'false') return false;
    if (m[0] === 'null') return null;
    const n = Number(m[0]);
    // Fluent Bit writes a float with an integral value as `1.0`: keep it apart from the integer 1.
    return /[.eE]/.test(m[0]) && Number.isInteger(n) ? { float: n } : n;
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing text');
  return v;
}

/**
 * A canonical text of an ordered value: key order and duplicates kept; numbers as the shortest
 * text of their double, rounded to 16 significant digits (Fluent Bit prints floats with %.16g);
 * a float with an integral value, which Fluent Bit prints as `3.0`, as `3.0`.
 */
export function canonical(v: Ordered): string {
  if (v === null || typeof v === 'boolean') return String(v);
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(16)));
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if ('float' in v) return `${v.float}.0`;
  return `{${v.pairs.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
}

export interface OutRecord {
  tag: string;
  /** Nanoseconds since the epoch. */
  time: bigint;
  record: Ordered;
  /** canonical(record) */
  text: string;
}

export interface RunResult {
  records: OutRecord[];
  /** Wall-clock window of the run in ns, to tell "time of reading" from a parsed time. */
  started: bigint;
  ended: bigint;
  log: string;
}

const nowNs = () => BigInt(Date.now()) * 1_000_000n;

export interface DiffCase {
  /** Lines of the shared input file (without line ends). */
  lines: string[];
  /** Tag of the tailed file. */
  tag: string;
  /** A `parsers:` list in Fluent Bit's YAML schema (used by both). */
  parsers?: Array<Record<string, unknown>>;
  /** tail's `parser` option for Fluent Bit; logwarden runs a parser filter on `log` instead. */
  tailParser?: string;
  /** Filter sections in Fluent Bit's YAML schema, the same text for both programs. */
  filters: Array<Record<string, unknown>>;
}

/** Runs Fluent Bit 5.1.1: tail (read_from_head, exit_on_eof) -> filters -> file output. */
export async function runFluentBit(dir: string, c: DiffCase): Promise<RunResult> {
  mkdirSync(dir, { recursive: true });
  const input = join(dir, 'input.log');
  writeFileSync(input, c.lines.map((l) => `${l}\n`).join(''));
  const outDir = join(dir, 'fb-out');
  mkdirSync(outDir, { recursive: true });
  const config = {
    // grace: Fluent Bit stops as soon as nothing is pending; a loaded machine may need seconds.
    service: { flush: 0.2, grace: 10, log_level: 'info' },
    ...(c.parsers ? { parsers: c.parsers } : {}),
    pipeline: {
      inputs: [
        {
          name: 'tail',
          path: input,
          tag: c.tag,
          read_from_head: true,
          exit_on_eof: true,
          ...(c.tailParser ? { parser: c.tailParser } : {}),
        },
      ],
      ...(c.filters.length ? { filters: c.filters } : {}),
      outputs: [{ name: 'file', match: '*', path: outDir, file: 'out.txt' }],
    },
  };
  const started = nowNs();
  const log = await fluentBit(join(dir, 'fluent-bit.yaml'), config);
  const ended = nowNs();
  const text = readIfAny(join(outDir, 'out.txt'));
  return { records: readOutFile(text), started, ended, log };
}

/** Records of out_file's default format, `TAG: [SEC.NSEC, {record}]` a line (both programs write it). */
function readOutFile(text: string): OutRecord[] {
  const records: OutRecord[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^(.*?): \[(\d+)\.(\d{9}), (.*)\]$/.exec(line);
    if (!m) throw new Error(`unexpected out_file line: ${line}`);
    const record = parseOrdered(m[4]!);
    records.push({ tag: m[1]!, time: BigInt(m[2]!) * 1_000_000_000n + BigInt(m[3]!), record, text: canonical(record) });
  }
  return records;
}

function readIfAny(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Runs Fluent Bit with `config` until it exits; its log, or an error when it failed or left chunks. */
function fluentBit(file: string, config: object): Promise<string> {
  writeFileSync(file, stringify(config));
  return new Promise<string>((resolve, reject) => {
    const child = spawn(peerBinary('fluent-bit'), ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`fluent-bit did not exit within 30 s:\n${out}`));
    }, 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`fluent-bit exited ${code}:\n${out}`));
      else if (!/service has stopped \(0 pending tasks\)/.test(out)) reject(new Error(`fluent-bit did not flush everything:\n${out}`));
      else resolve(out);
    });
  });
}

function logwardenFilters(c: DiffCase): Array<Record<string, unknown>> {
  return [...(c.tailParser ? [{ name: 'parser', match: c.tag, key_name: 'log', parser: c.tailParser }] : []), ...c.filters];
}

/**
 * The wire path: a Fluent Bit that only tails the lines (no parser) sends them with
 * `require_ack_response` to `logwarden run` (forward input -> the filters -> file output in
 * out_file format). Fluent Bit's exit means logwarden acknowledged, so committed, every chunk.
 */
export async function runLogwardenForward(dir: string, c: DiffCase): Promise<RunResult> {
  mkdirSync(dir, { recursive: true });
  const input = join(dir, 'input.log');
  writeFileSync(input, c.lines.map((l) => `${l}\n`).join(''));
  const outDir = join(dir, 'lw-out');
  const port = await freePort();
  const file = join(dir, 'logwarden.yaml');
  writeFileSync(
    file,
    stringify({
      service: { log_level: 'info', log_format: 'json' },
      ...(c.parsers ? { parsers: c.parsers } : {}),
      pipeline: {
        inputs: [{ name: 'forward', listen: '127.0.0.1', port }],
        filters: logwardenFilters(c),
        outputs: [{ name: 'file', match: '*', path: outDir, mkdir: true, file: 'out.txt', format: 'out_file' }],
      },
    }),
  );
  const started = nowNs();
  const daemon = await startDaemon(file);
  let log = '';
  try {
    log = await fluentBit(join(dir, 'sender.yaml'), {
      service: { flush: 0.2, grace: 10, log_level: 'info' },
      pipeline: {
        inputs: [{ name: 'tail', path: input, tag: c.tag, read_from_head: true, exit_on_eof: true }],
        outputs: [{ name: 'forward', match: '*', host: '127.0.0.1', port, require_ack_response: true, retry_limit: false }],
      },
    });
  } finally {
    const code = await daemon.stop('SIGTERM');
    log += `\n--- logwarden run (exit ${code})\n${daemon.logs.join('\n')}`;
  }
  const ended = nowNs();
  return { records: readOutFile(readIfAny(join(outDir, 'out.txt'))), started, ended, log };
}

function isoToNs(iso: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)\.(\d{9})Z$/.exec(iso);
  if (!m) throw new Error(`unexpected time ${iso}`);
  const ms = Date.parse(`${m[1]}Z`);
  return BigInt(Math.floor(ms / 1000)) * 1_000_000_000n + BigInt(m[2]!);
}

/**
 * Runs `logwarden replay` on the same lines, each as a record {"log": line} (what tail reads),
 * with the same parsers and filters; tail's parser becomes a parser filter on `log` that
 * matches the input tag only.
 */
export async function runLogwarden(dir: string, c: DiffCase): Promise<RunResult> {
  mkdirSync(dir, { recursive: true });
  const input = join(dir, 'input.jsonl');
  writeFileSync(input, c.lines.map((l) => `${JSON.stringify({ log: l })}\n`).join(''));
  const config = {
    service: { log_level: 'warn' },
    ...(c.parsers ? { parsers: c.parsers } : {}),
    pipeline: { filters: logwardenFilters(c) },
  };
  const file = join(dir, 'logwarden.yaml');
  writeFileSync(file, stringify(config));
  const started = nowNs();
  const r = await runCli(['replay', '-c', file, '-i', input, '--tag', c.tag], { timeoutMs: 60_000 });
  const ended = nowNs();
  if (r.code !== 0) throw new Error(`logwarden replay exited ${r.code}:\n${r.stderr}${r.stdout}`);
  const records: OutRecord[] = [];
  for (const line of r.stdout.split('\n')) {
    if (line === '') continue;
    // {"tag":"...","time":"...","record":{...}}: the record is the text after "record":
    const m = /^\{"tag":("(?:[^"\\]|\\.)*"),"time":"([^"]+)","record":(.*)\}$/.exec(line);
    if (!m) throw new Error(`unexpected replay line: ${line}`);
    const record = parseOrdered(m[3]!);
    records.push({ tag: JSON.parse(m[1]!) as string, time: isoToNs(m[2]!), record, text: canonical(record) });
  }
  return { records, started, ended, log: r.stderr };
}

/**
 * The time of a record as compared: 'read time' when it lies within the run (tail stamps a
 * line with the time it read it; replay with the time it ran), else the nanoseconds.
 */
export function timeClass(t: bigint, run: RunResult): string {
  const slack = 2_000_000_000n;
  if (t >= run.started - slack && t <= run.ended + slack) return 'read time';
  return t.toString();
}

/** One line per record: `tag time record`, for a diff that shows where outputs part. */
export function describe(run: RunResult): string[] {
  return run.records.map((r) => `${r.tag} ${timeClass(r.time, run)} ${r.text}`);
}

import { readFileSync } from 'node:fs';
import { parseArgs, UsageError, type Command } from './command.js';
import { loadPlan } from './common.js';
import { Pipeline } from '../core/pipeline.js';
import { EventTime, type LogEvent, type LogRecord } from '../core/event.js';
import { toJSONLine } from '../core/json.js';
import { createLogger } from '../observe/log.js';

/**
 * Reads JSON lines, a JSON array, or a Kubernetes list (`items`) into records. A line in replay's
 * own output shape {"tag","time","record"} keeps its tag and time, so outputs can be replayed.
 */
export function readRecords(text: string, file: string): Array<{ record: LogRecord; tag?: string; time?: EventTime }> {
  const out: Array<{ record: LogRecord; tag?: string; time?: EventTime }> = [];
  const add = (v: unknown, where: string) => {
    if (Array.isArray(v)) {
      for (const x of v) add(x, where);
      return;
    }
    if (v === null || typeof v !== 'object') throw new Error(`${where}: expected a JSON object, found ${JSON.stringify(v)}`);
    const o = v as LogRecord;
    if (Array.isArray(o.items) && typeof o.kind === 'string' && o.kind.endsWith('List')) {
      for (const x of o.items) add(x, where);
      return;
    }
    if (typeof o.tag === 'string' && typeof o.time === 'string' && o.record && typeof o.record === 'object' && Object.keys(o).length === 3) {
      const t = EventTime.fromISO(o.time);
      out.push({ record: o.record as LogRecord, tag: o.tag, ...(t ? { time: t } : {}) });
      return;
    }
    out.push({ record: o });
  };
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    add(JSON.parse(trimmed), file);
    return out;
  }
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: invalid JSON: ${(e as Error).message}`);
    }
    add(v, `${file}:${i + 1}`);
  }
  return out;
}

/** Time of a replayed record: an audit event's stageTimestamp / requestReceivedTimestamp, else now. */
function timeOf(r: LogRecord): EventTime {
  for (const k of ['stageTimestamp', 'requestReceivedTimestamp', 'time', 'timestamp']) {
    const v = r[k];
    if (typeof v === 'string') {
      const t = EventTime.fromISO(v);
      if (t) return t;
    }
  }
  return EventTime.now();
}

function line(ev: LogEvent): string {
  return `{"tag":${JSON.stringify(ev.tag)},"time":"${ev.time.toISO()}","record":${toJSONLine(ev.record)}}\n`;
}

function diff(before: LogRecord, after: LogRecord): string[] {
  const out: string[] = [];
  for (const k of Object.keys(after)) {
    if (!(k in before)) out.push(`+${k}`);
    else if (toJSONLine(before[k]) !== toJSONLine(after[k])) out.push(`~${k}`);
  }
  for (const k of Object.keys(before)) if (!(k in after)) out.push(`-${k}`);
  return out;
}

export const replayCommand: Command = {
  name: 'replay',
  summary: "Push a file of events through a pipeline's filters and print what comes out",
  usage: `Usage: logwarden replay -c PIPELINE.yaml -i FILE [--tag TAG] [--trace]

Reads JSON lines, a JSON array or a Kubernetes EventList from FILE ('-' for stdin), runs the
events through the pipeline's filters (no inputs, no outputs) and prints every event that
leaves them — including events emitted under new tags, such as alerts — as JSON lines:
  {"tag":"...","time":"RFC 3339 with ns","record":{...}}

Options:
  -c, --config FILE   pipeline file
  -i, --input FILE    events to replay
  --tag TAG           tag of the events (default: the first input's tag, else 'replay')
  --trace             print, per event and on stderr, which filter changed it (and how),
                      dropped it, or emitted from it

Example:
  logwarden replay -c pipelines/default.yaml -i examples/events/audit.jsonl --tag kube.audit`,
  async run(args) {
    const a = parseArgs(args, {
      values: { '-c': 'config', '--config': 'config', '-i': 'input', '--input': 'input', '--tag': 'tag', '-t': 'tag' },
      booleans: { '--trace': 'trace' },
    });
    const file = a.flags.get('config')?.[0];
    const input = a.flags.get('input')?.[0] ?? a.positionals[0];
    if (!file) throw new UsageError('missing -c PIPELINE.yaml');
    if (!input) throw new UsageError('missing -i FILE');
    const trace = a.flags.has('trace');
    const p = loadPlan(file);
    const tag = a.flags.get('tag')?.[0] ?? (p.inputs[0]?.config.tag as string | undefined) ?? 'replay';
    let text: string;
    try {
      text = readFileSync(input === '-' ? 0 : input, 'utf8');
    } catch (e) {
      process.stderr.write(`logwarden replay: cannot read ${input}: ${(e as Error).message}\n`);
      return 1;
    }
    let records;
    try {
      records = readRecords(text, input);
    } catch (e) {
      process.stderr.write(`logwarden replay: ${(e as Error).message}\n`);
      return 1;
    }
    const pipeline = new Pipeline(p, { logger: createLogger(p.service.log_level === 'info' ? 'warn' : p.service.log_level, 'json'), filtersOnly: true });
    await pipeline.build();
    let out = '';
    pipeline.onFiltered = (events) => {
      for (const ev of events) out += line(ev);
      if (out.length > 1 << 16) {
        process.stdout.write(out);
        out = '';
      }
    };
    if (trace) {
      pipeline.tracer = (filter, before, after, emitted) => {
        const b = before[0];
        if (!b) return;
        const notes: string[] = [];
        if (after.length === 0) notes.push('dropped');
        else {
          const changes = diff(b.record, after[0]!.record);
          if (after[0]!.tag !== b.tag) notes.push(`retagged ${b.tag} -> ${after[0]!.tag}`);
          if (changes.length) notes.push(`changed ${changes.join(' ')}`);
          if (after.length > 1) notes.push(`split into ${after.length} events`);
        }
        if (emitted.length) notes.push(`emitted ${emitted.length} event(s): ${[...new Set(emitted.map((e) => e.tag))].join(', ')}`);
        if (notes.length === 0) notes.push('passed unchanged');
        process.stderr.write(`trace ${b.tag} ${filter}: ${notes.join('; ')}\n`);
      };
    }
    const events: LogEvent[] = records.map((r) => ({ tag: r.tag ?? tag, time: r.time ?? timeOf(r.record), record: r.record }));
    if (trace) {
      for (let i = 0; i < events.length; i++) {
        process.stderr.write(`trace event ${i + 1}\n`);
        pipeline.inject([events[i]!]);
      }
    } else {
      for (let i = 0; i < events.length; i += 2000) pipeline.inject(events.slice(i, i + 2000));
    }
    process.stdout.write(out);
    await pipeline.close();
    return 0;
  },
};

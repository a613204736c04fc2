import { once } from 'node:events';
import { parseArgs, UsageError, type Command } from './command.js';
import { loadPlan } from './common.js';
import { Pipeline } from '../core/pipeline.js';
import { EventTime, type LogEvent, type LogRecord } from '../core/event.js';
import { toJSONLine } from '../core/json.js';
import { createLogger } from '../observe/log.js';
import { fileRecords, Progress } from './stream-json.js';

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
  logwarden replay -c pipelines/default.yaml -i examples/events/exec_pod.json --tag kube.audit`,
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
    // Streamed: the file is read as it is replayed, a batch at a time.
    const progress = new Progress('replay');
    let n = 0;
    let batch: LogEvent[] = [];
    try {
      for await (const r of fileRecords(input)) {
        const ev: LogEvent = { tag: r.tag ?? tag, time: r.time ?? timeOf(r.record), record: r.record };
        n++;
        if (trace) {
          process.stderr.write(`trace event ${n}\n`);
          pipeline.inject([ev]);
          continue;
        }
        batch.push(ev);
        if (batch.length >= 2000) {
          pipeline.inject(batch);
          batch = [];
          progress.update(n);
          // Bounded memory: wait while stdout (a pipe, a slow terminal) has not taken the output.
          if (process.stdout.writableNeedDrain) await once(process.stdout, 'drain');
        }
      }
    } catch (e) {
      if (batch.length) pipeline.inject(batch);
      process.stdout.write(out);
      progress.done();
      await pipeline.close();
      const err = e as NodeJS.ErrnoException;
      process.stderr.write(`logwarden replay: ${err.code === 'ENOENT' || err.code === 'EACCES' || err.code === 'EISDIR' ? `cannot read ${input}: ${err.message}` : err.message}\n`);
      return 1;
    }
    if (batch.length) pipeline.inject(batch);
    progress.done();
    process.stdout.write(out);
    await pipeline.close();
    return 0;
  },
};

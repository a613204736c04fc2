/**
 * Runs outputs the way `logwarden run` does: a pipeline YAML file on disk, loaded with positions
 * (loadConfigFile), planned against a registry (plan) and started (new Pipeline(...).start()).
 * Tests feed events with `ingest` and watch commits, metrics and the pipeline's own logs.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadConfigFile } from '../../src/config/load.js';
import { Commit } from '../../src/core/commit.js';
import { EventTime, type LogEvent, type LogRecord } from '../../src/core/event.js';
import type { AnyPlugin } from '../../src/core/plugin.js';
import { Pipeline, plan, type Registry } from '../../src/core/pipeline.js';
import { Metrics } from '../../src/observe/metrics.js';

export function registryOf(...plugins: AnyPlugin[]): Registry {
  return {
    find: (kind, name) => plugins.find((p) => p.kind === kind && p.name === name.toLowerCase()),
    names: (kind) => plugins.filter((p) => p.kind === kind).map((p) => p.name),
  };
}

export function tempDir(prefix = 'logwarden-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface RunningPipeline {
  pipeline: Pipeline;
  metrics: Metrics;
  dir: string;
  file: string;
  logs: Array<Record<string, unknown>>;
  /** Routes events as one chunk; resolves with the commit outcome when every output settled it. */
  ingest(events: LogEvent[]): Promise<{ ok: boolean; reason?: string }>;
  counter(name: string, labels?: Record<string, string>): Promise<number>;
  stop(graceSeconds?: number): Promise<boolean>;
}

/** Writes `yaml` as pipeline.yaml in a fresh temp dir (or `dir`), then loads, plans and starts it. */
export async function startPipeline(yaml: string, plugins: AnyPlugin[], dir = tempDir()): Promise<RunningPipeline> {
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(file, yaml);
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const metrics = new Metrics();
  const pipeline = new Pipeline(plan(loadConfigFile(file, {}), registryOf(...plugins)), { logger: pino({ level: 'debug' }, sink), metrics });
  await pipeline.start();
  return {
    pipeline,
    metrics,
    dir,
    file,
    logs,
    ingest(events) {
      return new Promise((resolve) => {
        const c = new Commit((ok, reason) => resolve(reason === undefined ? { ok } : { ok, reason }));
        pipeline.ingest(events, c, events.length * 100);
        c.release();
      });
    },
    async counter(name, labels = {}) {
      const metric = metrics.registry.getSingleMetric(name);
      if (!metric) return 0;
      const { values } = await metric.get();
      let sum = 0;
      for (const v of values) {
        if (Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x)) sum += v.value;
      }
      return sum;
    },
    stop: (grace) => pipeline.stop(grace),
  };
}

/** Events with the given records at consecutive nanosecond-precise times from `start`. */
export function events(tag: string, records: LogRecord[], start = EventTime.now()): LogEvent[] {
  return records.map((record, i) => ({ tag, time: new EventTime(start.sec + Math.floor((start.nsec + i) / 1e9), (start.nsec + i) % 1e9), record }));
}

/**
 * Runs outputs the way `logwarden run` does: a pipeline YAML file on disk, loaded with positions
 * (loadConfigFile), planned against a registry (plan) and started (new Pipeline(...).start()).
 * Tests feed events with `ingest` and watch commits, metrics and the pipeline's own logs.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigFile } from '../../src/config/load.js';
import { Commit } from '../../src/core/commit.js';
import { EventTime, type LogEvent, type LogRecord } from '../../src/core/event.js';
import type { AnyPlugin } from '../../src/core/plugin.js';
import { Pipeline } from '../../src/core/pipeline.js';
import { plan } from '../../src/core/plan.js';
import { Metrics } from '../../src/observe/metrics.js';
import { counterValue, jsonLogger, registryOf, tempDir } from './harness.js';

export { registryOf, tempDir };

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
  const { logger, logs } = jsonLogger();
  const metrics = new Metrics();
  const pipeline = new Pipeline(plan(loadConfigFile(file, {}), registryOf(...plugins)), { logger, metrics });
  await pipeline.start();
  return {
    pipeline,
    metrics,
    dir,
    file,
    logs,
    ingest(events) {
      // The engine's timers do not keep the process alive (inputs' sockets do): without inputs,
      // a ref'd timer stands in for them until the commit settles.
      const alive = setInterval(() => undefined, 1000);
      return new Promise<{ ok: boolean; reason?: string }>((resolve) => {
        const c = new Commit((ok, reason) => resolve(reason === undefined ? { ok } : { ok, reason }));
        pipeline.ingest(events, c, events.length * 100);
        c.release();
      }).finally(() => clearInterval(alive));
    },
    counter: (name, labels) => counterValue(metrics, name, labels),
    stop: (grace) => pipeline.stop(grace),
  };
}

/** Events with the given records at consecutive nanosecond-precise times from `start`. */
export function events(tag: string, records: LogRecord[], start = EventTime.now()): LogEvent[] {
  return records.map((record, i) => ({ tag, time: new EventTime(start.sec + Math.floor((start.nsec + i) / 1e9), (start.nsec + i) % 1e9), record }));
}

/**
 * Builds filters the way `logwarden run` does: a pipeline YAML file on disk, loaded with
 * positions, planned against a registry, and started with `filtersOnly`. Tests then call the
 * filter instances directly (so a thrown error fails the test instead of being logged).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { stringify } from 'yaml';
import { loadConfigFile } from '../../src/config/load.js';
import type { AnyPlugin, FilterInstance } from '../../src/core/plugin.js';
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

/** Writes `config` (YAML text, or an object serialised as YAML) as pipeline.yaml in `dir`. */
export function writePipeline(dir: string, config: string | object, name = 'pipeline.yaml'): string {
  const file = join(dir, name);
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  return file;
}

export interface BuiltFilters {
  pipeline: Pipeline;
  filters: FilterInstance[];
  metrics: Metrics;
  /** Own log lines written while building and running (JSON objects). */
  logs: Array<Record<string, unknown>>;
}

/** Loads, plans and starts the filters of a pipeline file; throws ConfigError(s) as `run` would. */
export async function buildFilters(file: string, ...plugins: AnyPlugin[]): Promise<BuiltFilters> {
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const metrics = new Metrics();
  const p = plan(loadConfigFile(file, {}), registryOf(...plugins));
  const pipeline = new Pipeline(p, { logger: pino({ level: 'debug' }, sink), metrics, filtersOnly: true });
  await pipeline.start();
  return { pipeline, filters: pipeline.filters.map((f) => f.instance), metrics, logs };
}

/** The current value of a counter (summed over series whose labels include `labels`). */
export async function counterValue(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  let sum = 0;
  for (const v of values) {
    if (Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x)) sum += v.value;
  }
  return sum;
}

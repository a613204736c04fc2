/**
 * Builds filters the way `logwarden run` does: a pipeline YAML file on disk, loaded with
 * positions, planned against a registry, and started with `filtersOnly`. Tests then call the
 * filter instances directly (so a thrown error fails the test instead of being logged).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfigFile } from '../../src/config/load.js';
import type { AnyPlugin, FilterInstance } from '../../src/core/plugin.js';
import { Pipeline } from '../../src/core/pipeline.js';
import { plan, type Plan } from '../../src/core/plan.js';
import { Metrics } from '../../src/observe/metrics.js';
import { counterValue, jsonLogger, registryOf, tempDir } from './harness.js';

export { counterValue, registryOf, tempDir };

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
  return startFilters(plan(loadConfigFile(file, {}), registryOf(...plugins)));
}

/** Starts the filters of a plan (`filtersOnly`), logging to BuiltFilters.logs. */
export async function startFilters(p: Plan): Promise<BuiltFilters> {
  const { logger, logs } = jsonLogger();
  const metrics = new Metrics();
  const pipeline = new Pipeline(p, { logger, metrics, filtersOnly: true });
  await pipeline.start();
  return { pipeline, filters: pipeline.filters.map((f) => f.instance), metrics, logs };
}

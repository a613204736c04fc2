/**
 * Builds filters from a pipeline file with the parser support wired in, as `logwarden run`
 * does (src/plugins.ts registry + buildParsers), and reads load-time errors the way a user sees
 * them.
 */
import { ConfigErrors } from '../../src/config/errors.js';
import { EventTime } from '../../src/core/event.js';
import { loadConfigFile } from '../../src/config/load.js';
import type { AnyPlugin } from '../../src/core/plugin.js';
import { plan, type Plan, type Registry } from '../../src/core/plan.js';
import { buildParsers } from '../../src/parsers/index.js';
import { startFilters, type BuiltFilters } from './filter-pipeline.js';
import { registryOf } from './harness.js';

export function registryWithParsers(...plugins: AnyPlugin[]): Registry {
  return { ...registryOf(...plugins), buildParsers };
}

export function planFile(file: string, ...plugins: AnyPlugin[]): Plan {
  return plan(loadConfigFile(file, {}), registryWithParsers(...plugins));
}

/** The load-time error text of a pipeline file (loading, planning and creating filters), or '' when it loads. */
export async function loadErrors(file: string, ...plugins: AnyPlugin[]): Promise<string> {
  try {
    await buildWithParsers(file, ...plugins);
    return '';
  } catch (e) {
    if (e instanceof ConfigErrors) return e.message;
    throw e;
  }
}

export async function buildWithParsers(file: string, ...plugins: AnyPlugin[]): Promise<BuiltFilters> {
  return startFilters(planFile(file, ...plugins));
}

/** An event at a fixed time, for filter tests. */
export function ev(record: Record<string, unknown>, tag = 'app.log'): import('../../src/core/event.js').LogEvent {
  return { tag, time: new EventTime(1700000000, 0), record };
}

/** Calls a filter, collecting what it emits. */
export function run(
  filter: import('../../src/core/plugin.js').FilterInstance,
  events: Array<import('../../src/core/event.js').LogEvent>,
): { out: Array<import('../../src/core/event.js').LogEvent>; emitted: Array<import('../../src/core/event.js').LogEvent> } {
  const emitted: Array<import('../../src/core/event.js').LogEvent> = [];
  const out = filter.filter(events, { emit: (e) => emitted.push(...e) });
  return { out, emitted };
}

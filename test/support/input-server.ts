/**
 * One network input under test: a pipeline whose only input is `input` on 127.0.0.1 with an
 * ephemeral port, its events written by a `file` output (or by the `outputs` given), started the
 * way `logwarden run` starts it. Tests send over real sockets and look at what arrived.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LogEvent } from '../../src/core/event.js';
import type { AnyPlugin } from '../../src/core/plugin.js';
import { startPipeline, type RunningPipeline } from './output-pipeline.js';

export interface StartedInput {
  run: RunningPipeline;
  port: number;
  /** Every event as it left the filters, in order. */
  seen: LogEvent[];
  /** `logwarden_input_errors_total{reason}`. */
  errors(reason: string): Promise<number>;
  /** The lines the default `file` output wrote for `tag` (none when it wrote nothing). */
  lines(tag: string): string[];
}

export interface InputOptions {
  /** Option lines for the input (`key: value`, one a line, not indented). */
  options?: string;
  /** The `outputs:` list as YAML indented by four spaces; a `file` output of JSON lines by default. */
  outputs?: string;
  /** The pipeline's directory (where relative paths such as PEM files resolve); a fresh one by default. */
  dir?: string;
  /** The `filters:` list as YAML indented by four spaces; none by default. */
  filters?: string;
  /** `service.grace` in seconds. */
  grace?: number;
  /** More `service` lines (`key: value`, one a line, not indented). */
  service?: string;
}

const fileOutput = `    - name: file
      match: '*'
      path: out
      mkdir: on
      format: json_lines
      json_date_key: false`;

/** Starts a pipeline with the `input` plugin listening on an ephemeral port (`plugins` must include it). */
export async function startInput(input: string, plugins: AnyPlugin[], o: InputOptions = {}): Promise<StartedInput> {
  const yaml = `
service:
  grace: ${o.grace ?? 1}
${(o.service ?? '').replace(/^/gm, '  ')}
pipeline:
  inputs:
    - name: ${input}
      listen: 127.0.0.1
      port: 0
${(o.options ?? '').replace(/^/gm, '      ')}
${o.filters !== undefined ? `  filters:\n${o.filters}` : ''}
  outputs:
${o.outputs ?? fileOutput}
`;
  const run = await startPipeline(yaml, plugins, o.dir);
  const seen: LogEvent[] = [];
  run.pipeline.onFiltered = (evs) => seen.push(...evs);
  const address = run.pipeline.inputs[0]?.instance.addresses?.()[0];
  if (address === undefined) {
    await run.stop(0);
    throw new Error(`the ${input} input reports no listening address`);
  }
  return {
    run,
    port: Number(address.split(':').pop()),
    seen,
    errors: (reason) => run.counter('logwarden_input_errors_total', { reason }),
    lines(tag) {
      const f = join(run.dir, 'out', tag);
      return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : [];
    },
  };
}

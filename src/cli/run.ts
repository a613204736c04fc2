import { parseArgs, UsageError, type Command } from './command.js';
import { loadPlan, loggerFor } from './common.js';
import { Pipeline } from '../core/pipeline.js';
import { Metrics } from '../observe/metrics.js';
import { ServiceHttp } from '../observe/http.js';

export const runCommand: Command = {
  name: 'run',
  summary: 'Run a pipeline (the main job)',
  usage: `Usage: logwarden run -c PIPELINE.yaml [--log-level LEVEL]

Runs the pipeline until SIGTERM or SIGINT, then stops accepting input, drains queued
events within service.grace seconds, acks what was committed and exits 0.

Options:
  -c, --config FILE     pipeline file (Fluent Bit YAML schema)
  --log-level LEVEL     override service.log_level (error, warn, info, debug, trace)

Example:
  logwarden run -c pipelines/default.yaml`,
  async run(args) {
    const a = parseArgs(args, { values: { '-c': 'config', '--config': 'config', '--log-level': 'log-level' }, booleans: {} });
    const file = a.flags.get('config')?.[0];
    if (!file) throw new UsageError('missing -c PIPELINE.yaml');
    if (a.positionals.length) throw new UsageError(`unexpected argument ${a.positionals[0]}`);
    const p = loadPlan(file);
    const log = loggerFor(p, a.flags.get('log-level')?.[0]);
    const metrics = new Metrics(true);
    const pipeline = new Pipeline(p, { logger: log, metrics });
    let http: ServiceHttp | undefined;
    if (p.service.http_server) {
      http = new ServiceHttp(metrics, () => pipeline.status(), log);
      await http.listen(p.service.http_listen, p.service.http_port);
    }
    try {
      await pipeline.start();
    } catch (e) {
      await http?.close();
      throw e;
    }
    for (const i of pipeline.inputs) log.info({ input: i.id, listen: i.instance.addresses?.() }, 'input started');
    log.info({ config: p.file, inputs: p.inputs.length, filters: p.filters.length, outputs: p.outputs.length }, 'logwarden running');

    return await new Promise<number>((resolve) => {
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) {
          log.warn({ signal }, 'second signal: exiting now');
          resolve(1);
          return;
        }
        stopping = true;
        log.info({ signal, grace_s: p.service.grace }, 'stopping: draining queued events');
        pipeline
          .stop()
          .then(async (drained) => {
            await http?.close();
            log.info({ drained }, 'stopped');
            log.flush?.();
            resolve(0);
          })
          .catch((e) => {
            log.error({ err: (e as Error).message }, 'error while stopping');
            resolve(1);
          });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  },
};

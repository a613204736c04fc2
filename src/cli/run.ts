import { parseArgs, UsageError, type Command } from './command.js';
import { loadPlan, loggerFor } from './common.js';
import { Pipeline } from '../core/pipeline.js';
import { Metrics } from '../observe/metrics.js';
import { ServiceHttp } from '../observe/http.js';
import { UiServer, uiOptions } from '../ui/server.js';
import { isPrimaryOf, runPrimary, serveWorker, workerIndex } from './workers.js';
import { join } from 'node:path';

export const runCommand: Command = {
  name: 'run',
  summary: 'Run a pipeline (the main job)',
  usage: `Usage: logwarden run -c PIPELINE.yaml [--log-level LEVEL]

Runs the pipeline until SIGTERM or SIGINT, then stops accepting input, drains queued
events within service.grace seconds, acks what was committed and exits 0. Requests still
in flight when the grace period ends are aborted; their events are not committed (they
stay in the filesystem buffer for the next start, or are not acked to their senders).

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
    const base = loggerFor(p, a.flags.get('log-level')?.[0]);
    if (isPrimaryOf(p)) return runPrimary(p, base);
    const worker = workerIndex();
    const log = worker === undefined ? base : base.child({ worker });
    const metrics = new Metrics(true);
    const svc = p.service;
    if (worker !== undefined) {
      // The primary serves HTTP for all workers; each worker buffers in its own directory.
      svc.http_server = false;
      if (svc['storage.path']) svc['storage.path'] = join(svc['storage.path'], `worker-${worker}`);
    }
    // The server exists before the pipeline is built so that plugins can mount routes on it.
    const http = svc.http_server ? new ServiceHttp(metrics, () => pipeline.status(), log) : undefined;
    const pipeline: Pipeline = new Pipeline(p, { logger: log, metrics, ...(http ? { http } : {}) });
    let ui: UiServer | undefined;
    try {
      if (http && svc.ui) {
        ui = await UiServer.attach(http, uiOptions(svc, metrics, pipeline, log.child({ component: 'ui' })));
      }
      if (http) await http.listen(svc.http_listen, svc.http_port, p.serviceSection);
      await pipeline.start();
    } catch (e) {
      await ui?.close();
      await http?.close();
      throw e;
    }
    if (worker !== undefined) serveWorker(metrics, () => pipeline.status());
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
            await ui?.close();
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
      if (worker === undefined) {
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      } else {
        // A worker stops when the primary says so (a terminal's Ctrl-C reaches the whole
        // process group; the primary decides), then lets go of the IPC channel to exit.
        const ignore = () => undefined;
        process.on('SIGTERM', ignore);
        process.on('SIGINT', ignore);
        process.on('message', (m: { type?: string; signal?: string }) => {
          if (m?.type === 'logwarden:stop') stop(m.signal ?? 'SIGTERM');
        });
      }
    }).then((code) => {
      if (worker !== undefined) process.disconnect?.();
      return code;
    });
  },
};

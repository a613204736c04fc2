/**
 * The alerts page wired as `logwarden run` wires it: a pipeline file with `service.ui: on`, the
 * service HTTP server on an ephemeral port with the page attached, and the `ui` output. Tests
 * feed alerts with `ingest` and talk to `base` over real sockets.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigFile } from '../../src/config/load.js';
import { Commit } from '../../src/core/commit.js';
import type { LogEvent } from '../../src/core/event.js';
import { Pipeline } from '../../src/core/pipeline.js';
import { plan } from '../../src/core/plan.js';
import { ServiceHttp } from '../../src/observe/http.js';
import { Metrics } from '../../src/observe/metrics.js';
import { registry } from '../../src/plugins.js';
import { UiServer, uiOptions } from '../../src/ui/server.js';
import { jsonLogger, tempDir } from './harness.js';

export interface RunningUi {
  /** http://host:port of the service HTTP server. */
  base: string;
  pipeline: Pipeline;
  ui: UiServer;
  /** The pipeline's own log lines (debug and up), parsed. */
  logs: Array<Record<string, unknown>>;
  /** Routes events as one chunk; resolves with the commit's outcome. */
  ingest(events: LogEvent[]): Promise<boolean>;
  stop(): Promise<void>;
}

export interface UiPipelineOptions {
  /** The page's files; by default a temp folder with a stand-in index.html and app.js. */
  assets?: string;
  /** The `inputs:` list indented by four spaces; none by default. */
  inputs?: string;
  /** The `outputs:` list indented by four spaces; the `ui` output on tag falco by default. */
  outputs?: string;
}

/** Starts the pipeline with `service` lines (indented by two spaces) added to the UI's. */
export async function startUi(service: string, o: UiPipelineOptions = {}): Promise<RunningUi> {
  const dir = tempDir('logwarden-ui-');
  const assets = o.assets ?? join(dir, 'assets');
  if (!o.assets) {
    mkdirSync(assets);
    writeFileSync(join(assets, 'index.html'), '<!doctype html><title>t</title>');
    writeFileSync(join(assets, 'app.js'), 'console.log(1)');
  }
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(
    file,
    `service:
  http_server: on
  http_listen: 127.0.0.1
  http_port: 0
  ui: on
${service}
pipeline:
${o.inputs !== undefined ? `  inputs:\n${o.inputs}\n` : ''}  outputs:
${o.outputs ?? '    - name: ui\n      match: falco'}
`,
  );
  const { logger, logs } = jsonLogger('debug');
  const p = plan(loadConfigFile(file, {}), registry);
  const metrics = new Metrics();
  const http = new ServiceHttp(metrics, () => pipeline.status(), logger);
  const pipeline: Pipeline = new Pipeline(p, { logger, metrics, http });
  const ui = await UiServer.attach(http, { ...uiOptions(p.service, metrics, pipeline, logger), assetsDir: assets });
  const where = await http.listen('127.0.0.1', 0);
  await pipeline.start();
  return {
    base: `http://${where}`,
    pipeline,
    ui,
    logs,
    ingest: (events) =>
      new Promise((resolve) => {
        const c = new Commit((ok) => resolve(ok));
        pipeline.ingest(events, c, events.length * 200);
        c.release();
      }),
    async stop() {
      await pipeline.stop(1);
      await ui.close();
      await http.close();
    },
  };
}

/**
 * `service.workers: N` — N processes run the whole pipeline side by side (node:cluster). The
 * primary process only supervises: it forks the workers, restarts one that dies, serves the
 * service HTTP server with every worker's metrics merged (prom-client's AggregatorRegistry) and
 * forwards SIGTERM/SIGINT. Listening sockets are shared: the primary accepts connections and
 * hands them to the workers in turn, so each sender connection lives in one worker, which acks
 * it — ordering and acks stay per connection.
 *
 * Trade-offs (docs/architecture.md): per-worker state (throttle windows, Loki stream limits,
 * Alertmanager re-sends, output queues and memory_limit) is per worker; events of one tag from
 * different connections may reach an output in a different order; the filesystem buffer of
 * worker i lives under storage.path/worker-i.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import type { Plan } from '../core/plan.js';
import { ServiceHttp } from '../observe/http.js';
import { Metrics } from '../observe/metrics.js';
import { UiServer, uiOptions } from '../ui/server.js';
import type { MetricsReader } from '../ui/health.js';

interface StatusReply {
  type: 'logwarden:status';
  id: number;
  status: { ready: boolean; state: 'starting' | 'running' | 'stopping'; paused: Record<string, string>; outputs: Record<string, { records: number; bytes: number; last_error?: string }> };
}

type Status = StatusReply['status'] & { workers: Record<string, boolean> };

/** The primary process. Resolves with the exit code once every worker has stopped. */
export async function runPrimary(p: Plan, log: Logger): Promise<number> {
  const n = p.service.workers;
  const workers = new Map<number, Worker>();
  const online = new Map<number, boolean>();
  let stopping = false;
  const fork = (index: number) => {
    const w = cluster.fork({ LOGWARDEN_WORKER: String(index) });
    workers.set(index, w);
    online.set(index, false);
    w.on('listening', () => online.set(index, true));
    w.on('exit', (code, signal) => {
      online.set(index, false);
      if (stopping) return;
      log.error({ worker: index, code, signal }, 'worker exited; starting it again');
      setTimeout(() => fork(index), 1000).unref();
    });
  };
  for (let i = 0; i < n; i++) fork(i);

  let seq = 0;
  // Each worker's latest answer. A worker busy past the 2 s reply timeout (replaying its buffer,
  // a large frame) is still up: its last answer stands, so readiness does not flap back to
  // `starting`. A worker that exited is a new Worker object when forked again: no answer yet.
  const lastReply = new WeakMap<Worker, StatusReply['status']>();
  const status = async (): Promise<Status> => {
    const id = ++seq;
    const replies = await Promise.all(
      [...workers.values()].map(
        (w) =>
          new Promise<StatusReply['status'] | undefined>((resolve) => {
            if (!w.isConnected()) return resolve(undefined);
            const timer = setTimeout(() => done(undefined), 2000);
            const onMessage = (m: StatusReply) => {
              if (m?.type === 'logwarden:status' && m.id === id) done(m.status);
            };
            const done = (s: StatusReply['status'] | undefined) => {
              clearTimeout(timer);
              w.off('message', onMessage);
              if (s) lastReply.set(w, s);
              resolve(s ?? (w.isConnected() ? lastReply.get(w) : undefined));
            };
            w.on('message', onMessage);
            w.send({ type: 'logwarden:status?', id });
          }),
      ),
    );
    // Not ready while any worker is not; `starting` until every worker runs, `stopping` once one is.
    const merged: Status = { ready: !stopping, state: stopping ? 'stopping' : 'running', paused: {}, outputs: {}, workers: {} };
    replies.forEach((r, i) => {
      merged.workers[`worker-${i}`] = r !== undefined;
      if (!r) {
        merged.ready = false;
        if (merged.state === 'running') merged.state = 'starting';
        return;
      }
      merged.ready &&= r.ready;
      if (r.state === 'stopping') merged.state = 'stopping';
      else if (r.state === 'starting' && merged.state === 'running') merged.state = 'starting';
      for (const [k, v] of Object.entries(r.paused)) merged.paused[`worker-${i}/${k}`] = v;
      for (const [k, v] of Object.entries(r.outputs)) {
        const o = (merged.outputs[k] ??= { records: 0, bytes: 0 });
        o.records += v.records;
        o.bytes += v.bytes;
        if (v.last_error) o.last_error = v.last_error;
      }
    });
    return merged;
  };

  let http: ServiceHttp | undefined;
  let ui: UiServer | undefined;
  if (p.service.http_server) {
    const aggregator = new AggregatorRegistry();
    const metricsView = {
      registry: {
        metrics: () => aggregator.clusterMetrics(),
        contentType: aggregator.contentType,
      },
    } as unknown as Metrics;
    let last: Status = { ready: false, state: 'starting', paused: {}, outputs: {}, workers: {} };
    let refreshing = false;
    // One refresh at a time: a slow one must not be overwritten by, or overwrite, a newer one.
    const refresh = () => {
      if (refreshing) return;
      refreshing = true;
      void status()
        .then((s) => (last = s))
        .finally(() => (refreshing = false));
    };
    const timer = setInterval(refresh, 200);
    timer.unref();
    const current = () => (stopping ? { ...last, ready: false, state: 'stopping' as const } : last);
    http = new ServiceHttp(metricsView, current, log);
    if (p.service.ui) {
      // The page (only with a shared ui.store: checkService refuses workers > 1 otherwise): the
      // workers' ui outputs write to the database, the primary serves what it holds, its health
      // read from the merged metrics.
      const merged: MetricsReader = {
        registry: { getMetricsAsJSON: async () => parseExposition(await aggregator.clusterMetrics()) },
      };
      const pipeline = { inputs: p.inputs, filters: p.filters, outputs: p.outputs, status: current };
      // The primary's store reports into a registry of its own (the page's status says up/down;
      // /metrics carries the workers' store metrics).
      ui = await UiServer.attach(http, { ...uiOptions(p.service, new Metrics(false), pipeline, log.child({ component: 'ui' })), healthMetrics: merged });
    }
    await http.listen(p.service.http_listen, p.service.http_port, p.serviceSection);
  }
  log.info({ config: p.file, workers: n }, 'logwarden running');

  return new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: killing workers');
        for (const w of workers.values()) w.process.kill('SIGKILL');
        resolve(1);
        return;
      }
      stopping = true;
      log.info({ signal }, 'stopping workers');
      let left = [...workers.values()].filter((w) => !w.isDead()).length;
      if (left === 0) finish();
      for (const w of workers.values()) {
        if (w.isDead()) continue;
        w.once('exit', () => {
          if (--left === 0) finish();
        });
        w.send({ type: 'logwarden:stop', signal });
      }
    };
    const finish = () => {
      void (ui?.close() ?? Promise.resolve())
        .then(() => http?.close())
        .then(() => {
          log.info('stopped');
          resolve(0);
        });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/** In a worker: report metrics and status to the primary. */
export function serveWorker(metrics: Metrics, status: () => StatusReply['status']): void {
  // Constructing one installs prom-client's worker-side listener for the primary's requests.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([metrics.registry]);
  process.on('message', (m: { type?: string; id?: number }) => {
    if (m?.type === 'logwarden:status?') process.send?.({ type: 'logwarden:status', id: m.id, status: status() });
  });
}

export function workerIndex(): number | undefined {
  return cluster.isWorker ? Number(process.env.LOGWARDEN_WORKER ?? cluster.worker?.id ?? 0) : undefined;
}

export const isPrimaryOf = (p: Plan): boolean => p.service.workers > 1 && cluster.isPrimary;

/**
 * Reads the Prometheus text exposition (what the merged /metrics serves) into prom-client's
 * getMetricsAsJSON() shape, for the page's health panel in the primary: samples with their
 * labels; histograms and summaries give their _bucket/_sum/_count samples under the family name.
 */
export function parseExposition(text: string): Array<{ name: string; values: Array<{ labels: Record<string, string>; value: number }> }> {
  const families = new Map<string, Array<{ labels: Record<string, string>; value: number }>>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
    if (!m) continue;
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (Number.isNaN(value) && m[3] !== 'NaN') continue;
    const labels: Record<string, string> = {};
    const re = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    let l: RegExpExecArray | null;
    while ((l = re.exec(m[2] ?? '')) !== null) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    let list = families.get(m[1]!);
    if (!list) families.set(m[1]!, (list = []));
    list.push({ labels, value });
  }
  return [...families].map(([name, values]) => ({ name, values }));
}

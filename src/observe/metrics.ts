/**
 * Prometheus metrics (prom-client), named after Fluent Bit's own (`fluentbit_input_records_total`
 * becomes `logwarden_input_records_total`), labelled by plugin instance id.
 *
 * As in Fluent Bit, a series exists from the moment its plugin (or rule) is set up, at 0: a
 * component's `labels(...)` call creates it, so `rate()` and absence-based alerts work on a
 * process that has not received anything yet. Process metrics keep prom-client's standard
 * `process_*` / `nodejs_*` names; `logwarden_build_info` and `logwarden_uptime_seconds` say
 * which version runs and since when.
 */
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The version in package.json (dist/src/observe/ -> the package root). */
export const LOGWARDEN_VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

export class Metrics {
  readonly registry = new Registry();

  readonly inputRecords = this.counter('logwarden_input_records_total', 'Records received by an input', ['name']);
  readonly inputBytes = this.counter('logwarden_input_bytes_total', 'Bytes received by an input (wire size)', ['name']);
  readonly inputErrors = this.counter('logwarden_input_errors_total', 'Malformed or rejected wire data by reason; each closes at most the offending connection', ['name', 'reason']);
  readonly inputConnections = this.gauge('logwarden_input_connections', 'Open connections of an input', ['name']);
  readonly inputAuthFailures = this.counter('logwarden_input_auth_failures_total', 'Failed forward handshakes', ['name', 'reason']);
  readonly inputPaused = this.gauge('logwarden_input_paused', '1 while an input is paused by backpressure', ['name']);
  readonly inputAcks = this.counter('logwarden_input_acks_total', 'Chunks acked to senders after commit', ['name']);
  readonly inputUnacked = this.counter('logwarden_input_unacked_chunks_total', 'Chunks not acked because a commit failed', ['name']);

  readonly filterRecords = this.counter('logwarden_filter_records_total', 'Records through a filter by result: in, out, dropped, emitted', ['name', 'result']);
  readonly filterErrors = this.counter('logwarden_filter_errors_total', 'Chunks on which a filter threw (the chunk was refused, not acked)', ['name']);

  readonly outputRecords = this.counter('logwarden_output_proc_records_total', 'Records delivered by an output', ['name']);
  readonly outputBatches = this.counter('logwarden_output_proc_batches_total', 'Batches delivered by an output', ['name']);
  readonly outputRetries = this.counter('logwarden_output_retries_total', 'Batch retries by an output', ['name']);
  readonly outputRetriesFailed = this.counter('logwarden_output_retries_failed_total', 'Batches that exhausted their retries', ['name']);
  readonly outputDropped = this.counter('logwarden_output_dropped_records_total', 'Records finally dropped by an output, by reason', ['name', 'reason']);
  readonly outputErrors = this.counter('logwarden_output_errors_total', 'Failed send attempts by reason', ['name', 'reason']);
  readonly outputQueueRecords = this.gauge('logwarden_output_queue_records', 'Records queued or in flight in an output', ['name']);
  readonly outputQueueBytes = this.gauge('logwarden_output_queue_bytes', 'Bytes queued or in flight in an output', ['name']);
  readonly outputQueueLimitRecords = this.gauge('logwarden_output_queue_limit_records', 'Records an output holds (queued or in flight) before the inputs routed to it pause (queue_max_records)', [
    'name',
  ]);
  readonly outputQueueLimitBytes = this.gauge('logwarden_output_queue_limit_bytes', 'Bytes an output holds (queued or in flight) before the inputs routed to it pause (queue_max_bytes)', ['name']);
  readonly outputLatency = this.histogram(
    'logwarden_output_request_duration_seconds',
    'Duration of one send attempt of an output',
    ['name'],
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );

  /** The series every input keeps, labelled with its id. */
  inputSeries(id: string) {
    return {
      records: this.inputRecords.labels(id),
      bytes: this.inputBytes.labels(id),
      connections: this.inputConnections.labels(id),
      paused: this.inputPaused.labels(id),
      acks: this.inputAcks.labels(id),
      unacked: this.inputUnacked.labels(id),
      error: (reason: string) => this.inputErrors.labels(id, reason),
    };
  }

  /** `defaults`: the process metrics, build info and uptime of a running process. */
  constructor(defaults = false) {
    if (!defaults) return;
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'logwarden_build_info',
      help: 'Always 1; the labels say which logwarden and Node.js versions run',
      labelNames: ['version', 'nodejs_version'],
      registers: [this.registry],
      aggregator: 'first',
    }).set({ version: LOGWARDEN_VERSION, nodejs_version: process.version }, 1);
    new Gauge({
      name: 'logwarden_uptime_seconds',
      help: 'Seconds since the process started',
      registers: [this.registry],
      aggregator: 'max',
      collect() {
        this.set(Math.floor(process.uptime()));
      },
    });
  }

  counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Counter<L>;
    const c = new Counter({ name, help, labelNames, registers: [this.registry] });
    const labels = c.labels.bind(c);
    // A series exists at 0 as soon as someone asks for it, before its first increment.
    c.labels = ((...values: never[]) => {
      const child = (labels as (...v: never[]) => ReturnType<typeof c.labels>)(...values);
      child.inc(0);
      return child;
    }) as typeof c.labels;
    return c;
  }

  /** `aggregator`: how service.workers' values merge in the primary's /metrics (default: sum). */
  gauge<L extends string>(name: string, help: string, labelNames: readonly L[], aggregator?: 'sum' | 'min' | 'max'): Gauge<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Gauge<L>;
    const g = new Gauge({ name, help, labelNames, registers: [this.registry], ...(aggregator ? { aggregator } : {}) });
    const labels = g.labels.bind(g);
    g.labels = ((...values: never[]) => {
      const child = (labels as (...v: never[]) => ReturnType<typeof g.labels>)(...values);
      child.inc(0);
      return child;
    }) as typeof g.labels;
    return g;
  }

  histogram<L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]): Histogram<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Histogram<L>;
    const h = new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
    const labels = h.labels.bind(h);
    const seen = new Set<string>();
    h.labels = ((...values: never[]) => {
      const obj: Record<string, string> = typeof values[0] === 'object' ? (values[0] as Record<string, string>) : Object.fromEntries(labelNames.map((n, i) => [n, String(values[i])]));
      const key = labelNames.map((n) => obj[n]).join('\u0000');
      if (!seen.has(key)) {
        seen.add(key);
        h.zero(obj as Partial<Record<L, string>>);
      }
      return (labels as (...v: never[]) => ReturnType<typeof h.labels>)(...values);
    }) as typeof h.labels;
    return h;
  }
}

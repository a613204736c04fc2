/**
 * Prometheus metrics (prom-client), named after Fluent Bit's own (`fluentbit_input_records_total`
 * becomes `logwarden_input_records_total`), labelled by plugin instance id.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();

  readonly inputRecords = this.counter('logwarden_input_records_total', 'Records received by an input', ['name']);
  readonly inputBytes = this.counter('logwarden_input_bytes_total', 'Bytes received by an input (wire size)', ['name']);
  readonly inputErrors = this.counter(
    'logwarden_input_errors_total',
    'Malformed or rejected wire data by reason; each closes at most the offending connection',
    ['name', 'reason'],
  );
  readonly inputConnections = this.gauge('logwarden_input_connections', 'Open connections of an input', ['name']);
  readonly inputAuthFailures = this.counter('logwarden_input_auth_failures_total', 'Failed forward handshakes', ['name', 'reason']);
  readonly inputPaused = this.gauge('logwarden_input_paused', '1 while an input is paused by backpressure', ['name']);
  readonly inputAcks = this.counter('logwarden_input_acks_total', 'Chunks acked to senders after commit', ['name']);
  readonly inputUnacked = this.counter('logwarden_input_unacked_chunks_total', 'Chunks not acked because a commit failed', ['name']);

  readonly filterRecords = this.counter(
    'logwarden_filter_records_total',
    'Records through a filter by result: in, out, dropped, emitted',
    ['name', 'result'],
  );
  readonly filterErrors = this.counter('logwarden_filter_errors_total', 'Chunks on which a filter threw (the chunk was refused, not acked)', [
    'name',
  ]);

  readonly outputRecords = this.counter('logwarden_output_proc_records_total', 'Records delivered by an output', ['name']);
  readonly outputBatches = this.counter('logwarden_output_proc_batches_total', 'Batches delivered by an output', ['name']);
  readonly outputRetries = this.counter('logwarden_output_retries_total', 'Batch retries by an output', ['name']);
  readonly outputRetriesFailed = this.counter('logwarden_output_retries_failed_total', 'Batches that exhausted their retries', ['name']);
  readonly outputDropped = this.counter('logwarden_output_dropped_records_total', 'Records finally dropped by an output, by reason', [
    'name',
    'reason',
  ]);
  readonly outputErrors = this.counter('logwarden_output_errors_total', 'Failed send attempts by reason', ['name', 'reason']);
  readonly outputQueueRecords = this.gauge('logwarden_output_queue_records', 'Records queued or in flight in an output', ['name']);
  readonly outputQueueBytes = this.gauge('logwarden_output_queue_bytes', 'Bytes queued or in flight in an output', ['name']);
  readonly outputQueueLimitRecords = this.gauge(
    'logwarden_output_queue_limit_records',
    'Records an output holds (queued or in flight) before the inputs routed to it pause (queue_max_records)',
    ['name'],
  );
  readonly outputQueueLimitBytes = this.gauge(
    'logwarden_output_queue_limit_bytes',
    'Bytes an output holds (queued or in flight) before the inputs routed to it pause (queue_max_bytes)',
    ['name'],
  );
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

  constructor(defaults = false) {
    if (defaults) collectDefaultMetrics({ register: this.registry, prefix: 'logwarden_process_' });
  }

  counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Counter<L>;
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Gauge<L>;
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  histogram<L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]): Histogram<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Histogram<L>;
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }
}

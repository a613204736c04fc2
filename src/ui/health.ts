/**
 * Pipeline health for the web page, read from the same prom-client registry /metrics serves, so
 * the page and Prometheus never disagree. Rates come from earlier samples kept here.
 */
import type { FilterHealth, Health, InputHealth, LifeState, OutputHealth } from './health-shape.js';

/** What the health sampler needs of the running pipeline (a Pipeline satisfies it). */
export interface PipelineView {
  inputs: ReadonlyArray<{ id: string }>;
  filters: ReadonlyArray<{ id: string }>;
  outputs: ReadonlyArray<{ id: string }>;
  status(): {
    ready: boolean;
    state: LifeState;
    paused: Record<string, string>;
    outputs: Record<string, { records: number; bytes: number; last_error?: string }>;
  };
}

type Values = Map<string, Array<{ labels: Record<string, string | number>; value: number }>>;

/** Rates are measured over this much history. */
const RATE_WINDOW_MS = 10_000;
/** Concurrent viewers share one sample this young. */
const CACHE_MS = 500;

interface Sample {
  time: number;
  totals: Map<string, number>;
}

/** What the health view reads: a registry's metrics as JSON (the process's own, or the workers' merged). */
export interface MetricsReader {
  registry: { getMetricsAsJSON(): Promise<Array<{ name: string; values: ReadonlyArray<{ labels: object; value: number }> }>> };
}

export class HealthSampler {
  private samples: Sample[] = [];
  private cached: Promise<Health> | undefined;
  private cachedAt = 0;

  constructor(
    private readonly metrics: MetricsReader,
    private readonly pipeline: PipelineView,
    private readonly memoryLimit: number,
    private readonly now: () => number = Date.now,
  ) {}

  snapshot(): Promise<Health> {
    const t = this.now();
    if (this.cached && t - this.cachedAt < CACHE_MS) return this.cached;
    this.cachedAt = t;
    this.cached = this.take(t);
    return this.cached;
  }

  private async take(time: number): Promise<Health> {
    const json = await this.metrics.registry.getMetricsAsJSON();
    const values: Values = new Map(json.map((m) => [m.name, m.values as Array<{ labels: Record<string, string | number>; value: number }>]));
    /** Sum of a metric's values whose labels match. */
    const sum = (metric: string, labels: Record<string, string>): number => {
      let n = 0;
      for (const v of values.get(metric) ?? []) {
        let ok = true;
        for (const k in labels) if (v.labels[k] !== labels[k]) ok = false;
        if (ok) n += v.value;
      }
      return n;
    };
    const base = this.base(time);
    const totals = new Map<string, number>();
    const rate = (key: string, total: number): number | null => {
      totals.set(key, total);
      const before = base?.totals.get(key);
      if (!base || before === undefined || time <= base.time) return null;
      return Math.max(0, ((total - before) * 1000) / (time - base.time));
    };
    const status = this.pipeline.status();

    const inputs: InputHealth[] = this.pipeline.inputs.map(({ id }) => {
      const records = sum('logwarden_input_records_total', { name: id });
      return {
        name: id,
        connections: sum('logwarden_input_connections', { name: id }),
        records,
        bytes: sum('logwarden_input_bytes_total', { name: id }),
        errors: sum('logwarden_input_errors_total', { name: id }),
        records_per_s: rate(`i:${id}`, records),
        paused: sum('logwarden_input_paused', { name: id }) > 0,
      };
    });
    const filters: FilterHealth[] = this.pipeline.filters.map(({ id }) => {
      const n = (result: string) => sum('logwarden_filter_records_total', { name: id, result });
      const inCount = n('in');
      return {
        name: id,
        in: inCount,
        out: n('out'),
        dropped: n('dropped'),
        emitted: n('emitted'),
        errors: sum('logwarden_filter_errors_total', { name: id }),
        in_per_s: rate(`f:${id}`, inCount),
      };
    });
    let queued = 0;
    let queuedBytes = 0;
    const outputs: OutputHealth[] = this.pipeline.outputs.map(({ id }) => {
      const delivered = sum('logwarden_output_proc_records_total', { name: id });
      const byReason: Record<string, number> = Object.create(null) as Record<string, number>;
      let dropped = 0;
      for (const v of values.get('logwarden_output_dropped_records_total') ?? []) {
        if (v.labels.name !== id) continue;
        const reason = String(v.labels.reason);
        byReason[reason] = (byReason[reason] ?? 0) + v.value;
        dropped += v.value;
      }
      const qr = sum('logwarden_output_queue_records', { name: id });
      const qb = sum('logwarden_output_queue_bytes', { name: id });
      queued += qr;
      queuedBytes += qb;
      const o: OutputHealth = {
        name: id,
        delivered,
        records_per_s: rate(`o:${id}`, delivered),
        queue_records: qr,
        queue_bytes: qb,
        retries: sum('logwarden_output_retries_total', { name: id }),
        retries_failed: sum('logwarden_output_retries_failed_total', { name: id }),
        dropped,
        dropped_by_reason: byReason,
        errors: sum('logwarden_output_errors_total', { name: id }),
      };
      const err = status.outputs[id]?.last_error;
      if (err !== undefined) o.last_error = err;
      return o;
    });
    this.remember({ time, totals });
    const started = sum('process_start_time_seconds', {});
    return {
      time,
      ready: status.ready,
      state: status.state,
      paused: status.paused,
      inputs,
      filters,
      outputs,
      unrouted: sum('logwarden_router_unrouted_records_total', {}),
      buffer: {
        records: queued,
        bytes: queuedBytes,
        limit_bytes: this.memoryLimit,
        usage: this.memoryLimit > 0 ? queuedBytes / this.memoryLimit : 0,
      },
      process: {
        uptime_s: started > 0 ? Math.max(0, Math.round(time / 1000 - started)) : Math.round(process.uptime()),
        rss_bytes: sum('process_resident_memory_bytes', {}) || process.memoryUsage.rss(),
        heap_used_bytes: sum('nodejs_heap_size_used_bytes', {}) || process.memoryUsage().heapUsed,
      },
    };
  }

  /**
   * The oldest sample within the rate window. None when the last one is older (nobody looked for
   * a while): a rate over that idle stretch would be an average, not the current rate, so the
   * rate is null until the next sample.
   */
  private base(time: number): Sample | undefined {
    return this.samples.find((s) => s.time < time && time - s.time <= RATE_WINDOW_MS);
  }

  private remember(s: Sample): void {
    this.samples = this.samples.filter((x) => s.time - x.time <= RATE_WINDOW_MS);
    this.samples.push(s);
  }
}

/**
 * The pipeline's lifecycle: builds the planned instances (plan.ts), wires each output to its
 * delivery engine and each input to routing (router.ts) and flow control, starts outputs, the
 * filesystem buffer and inputs in that order, and stops them with a grace period.
 */
import type { Logger } from 'pino';
import { ConfigError, ConfigErrors } from '../config/errors.js';
import type { DeliveryConfig } from './common-options.js';
import { Commit } from './commit.js';
import { DeliveryEngine, resolveDelivery } from './delivery.js';
import type { LogEvent } from './event.js';
import { FlowControl, InputFlow, type BlockScope } from './flow.js';
import { FilesystemStorage, type RoutedSegment } from './storage/buffer.js';
import type { FilterInstance, InputContext, InputInstance, OutputInstance, PluginContext } from './plugin.js';
import { Metrics } from '../observe/metrics.js';
import type { ServiceHttp } from '../observe/http.js';
import type { Plan, PlannedPlugin } from './plan.js';
import { Router, type FilterNode, type OutputNode, type RouteHooks } from './router.js';

interface InputNode extends InputRoute {
  instance: InputInstance;
}

/** What routing needs of an input (its instance is created with a function that routes to it). */
interface InputRoute {
  id: string;
  /** storage.type filesystem: chunks are buffered and acked once stored. */
  filesystem: boolean;
  /** Outputs this input's chunks have been routed to so far (which scoped blockers apply). */
  reached: Set<string>;
  flow: InputFlow;
}

export interface PipelineOptions {
  logger: Logger;
  metrics?: Metrics;
  /** Build only filters (replay): no inputs, no outputs. */
  filtersOnly?: boolean;
  /** The service HTTP server, handed to plugins (PluginContext.http). */
  http?: ServiceHttp;
}

export class Pipeline implements RouteHooks {
  readonly flow = new FlowControl();
  readonly metrics: Metrics;
  readonly log: Logger;
  inputs: InputNode[] = [];
  storage: FilesystemStorage | undefined;
  readonly filters: FilterNode[] = [];
  readonly outputs: OutputNode[] = [];
  private readonly router: Router;
  /**
   * Readiness follows this: `starting` until the filesystem buffer is loaded and every input
   * listens, `stopping` from the moment stop() is called (draining), `running` in between.
   */
  private phase: 'starting' | 'running' | 'stopping' = 'starting';
  /** Called with the events that leave the filters of each routed chunk (replay prints from here). */
  onFiltered?: (events: LogEvent[]) => void;
  /** Trace hook (replay --trace): each filter call with copies of its input, its output and what it emitted. */
  tracer?: (filter: string, before: LogEvent[], after: LogEvent[], emitted: LogEvent[]) => void;

  constructor(
    readonly plan: Plan,
    private readonly opts: PipelineOptions,
  ) {
    this.log = opts.logger;
    this.metrics = opts.metrics ?? new Metrics();
    const unrouted = this.metrics.counter('logwarden_router_unrouted_records_total', 'Records that matched no output', []);
    this.router = new Router(this.filters, this.outputs, unrouted, this.log, this);
  }

  private ctx(p: PlannedPlugin): PluginContext {
    const level = p.config.log_level as string | undefined;
    const logger = this.log.child({ plugin: p.id }, level ? { level: level === 'warning' ? 'warn' : level === 'off' ? 'silent' : level } : undefined);
    return {
      id: p.id,
      logger,
      metrics: this.metrics,
      service: this.plan.service,
      baseDir: p.raw.baseDir,
      section: p.raw,
      parsers: this.plan.parsers,
      ...(this.opts.http ? { http: this.opts.http } : {}),
    };
  }

  private built = false;

  /**
   * Creates every instance without opening sockets or files: load-time errors (rules, policies,
   * lookup tables) surface here. `validate` stops after this.
   */
  async build(): Promise<void> {
    if (this.built) return;
    this.built = true;
    const errors: ConfigError[] = [];
    const wrap = async <T>(p: PlannedPlugin, f: () => T | Promise<T>): Promise<T | null> => {
      try {
        return await f();
      } catch (e) {
        if (e instanceof ConfigError) errors.push(e);
        else if (e instanceof ConfigErrors) errors.push(...e.errors);
        else errors.push(new ConfigError(`${p.kind} '${p.id}': ${(e as Error).message}`, p.raw.pos));
        return null;
      }
    };
    for (const p of this.plan.filters) {
      const ctx = this.ctx(p);
      const instance = await wrap(p, () => (p.plugin.create as (c: unknown, x: PluginContext) => FilterInstance | Promise<FilterInstance>)(p.prepared, ctx));
      if (!instance) continue;
      const c = this.metrics.filterRecords;
      this.filters.push({
        id: p.id,
        matcher: p.matcher!,
        instance,
        m: {
          in: c.labels(p.id, 'in'),
          out: c.labels(p.id, 'out'),
          dropped: c.labels(p.id, 'dropped'),
          emitted: c.labels(p.id, 'emitted'),
          errors: this.metrics.filterErrors.labels(p.id),
        },
      });
    }
    if (!this.opts.filtersOnly) {
      const share = Math.max(1, this.plan.outputs.length);
      for (const p of this.plan.outputs) {
        const ctx = this.ctx(p);
        const instance = await wrap(p, () => (p.plugin.create as (c: unknown, x: PluginContext) => OutputInstance | Promise<OutputInstance>)(p.prepared, ctx));
        if (!instance) continue;
        const engine = new DeliveryEngine(
          p.id,
          instance,
          resolveDelivery(p.id, p.config as PlannedPlugin['config'] & DeliveryConfig, this.plan.service, share, p.raw.baseDir),
          this.flow,
          this.metrics,
          ctx.logger,
        );
        this.outputs.push({ id: p.id, matcher: p.matcher!, instance, engine });
      }
    }
    if (errors.length) {
      await this.closeInstances();
      throw new ConfigErrors(errors);
    }
    if (this.opts.filtersOnly) return;
    const svc = this.plan.service;
    if (this.plan.inputs.some((p) => p.config['storage.type'] === 'filesystem') && svc['storage.path']) {
      this.storage = new FilesystemStorage(
        {
          path: svc['storage.path'],
          sync: svc['storage.sync'] === 'full' ? 'full' : 'normal',
          checksum: svc['storage.checksum'],
          maxChunksUp: svc['storage.max_chunks_up'],
          backlogMemLimit: svc['storage.backlog.mem_limit'],
          memoryLimit: svc.memory_limit,
        },
        this.outputs.map((o) => {
          const c = this.plan.outputs.find((p) => p.id === o.id)!.config;
          return {
            id: o.id,
            engine: o.engine,
            limit: c['storage.total_limit_size'] as number | undefined,
            action: c['storage.overflow_action'] === 'drop_oldest_chunk' ? 'drop_oldest_chunk' : 'block',
          };
        }),
        this.flow,
        this.metrics,
        this.log.child({ component: 'storage' }),
      );
    }
    for (const p of this.plan.inputs) {
      const base = this.ctx(p);
      const filesystem = p.config['storage.type'] === 'filesystem' && this.storage !== undefined;
      const reached = new Set<string>();
      const flow = new InputFlow(this.flow, (_who: string, scope: BlockScope | undefined) => {
        if (!scope) return true;
        // A filesystem input keeps buffering while an output's queue is full; only storage bounds stop it.
        if (scope.storage) return filesystem && (scope.output === undefined || reached.has(scope.output));
        return !filesystem && scope.output !== undefined && reached.has(scope.output);
      });
      const route: InputRoute = { id: p.id, filesystem, reached, flow };
      const ingest = (events: LogEvent[], commit: Commit, bytes: number) => this.ingestFrom(route, events, commit, bytes);
      const ctx: InputContext = { ...base, ingest, flow };
      const instance = await wrap(p, () => (p.plugin.create as (c: unknown, x: InputContext) => InputInstance | Promise<InputInstance>)(p.prepared, ctx));
      if (!instance) {
        flow.detach();
        continue;
      }
      this.inputs.push({ ...route, instance });
    }
    if (errors.length) {
      await this.closeInstances();
      throw new ConfigErrors(errors);
    }
  }

  /**
   * Builds (if needed), starts outputs, loads the filesystem buffer left by a previous run (its
   * chunks queue ahead of new data), then starts inputs.
   */
  async start(): Promise<void> {
    await this.build();
    try {
      for (const o of this.outputs) await o.instance.start?.();
      await this.storage?.open();
      for (const i of this.inputs) await i.instance.start();
    } catch (e) {
      await this.closeInstances();
      throw e;
    }
    if (this.phase === 'starting') this.phase = 'running';
  }

  /**
   * Routes one chunk: filters, then outputs. Synchronous. The caller keeps its own reference on
   * the commit and releases it after this returns (as failed when this throws ChunkRefused).
   */
  ingest(events: LogEvent[], commit: Commit, bytes: number): void {
    this.router.dispatch(events, bytes, (_tag, outputs, evs, share) => {
      for (const o of outputs) o.engine.enqueue(evs, commit, share);
    });
  }

  /**
   * A chunk from an input. Memory storage: routed to the outputs' queues, the commit held until
   * they deliver. Filesystem storage: filtered and routed, then handed to the buffer, which holds
   * the commit until the chunk is written.
   */
  private ingestFrom(input: InputRoute, events: LogEvent[], commit: Commit, bytes: number): void {
    const reach = (outputs: OutputNode[]) => {
      let grew = false;
      for (const o of outputs) {
        if (input.reached.has(o.id)) continue;
        input.reached.add(o.id);
        grew = true;
      }
      if (grew) input.flow.update();
    };
    if (!input.filesystem) {
      this.router.dispatch(events, bytes, (_tag, outputs, evs, share) => {
        for (const o of outputs) o.engine.enqueue(evs, commit, share);
        reach(outputs);
      });
      return;
    }
    const routed: RoutedSegment[] = [];
    this.router.dispatch(events, bytes, (tag, outputs, evs, share) => {
      routed.push({ tag, outputs, events: evs, bytes: share });
    });
    if (routed.length === 0) return;
    this.storage!.store(input.id, routed, commit);
    for (const r of routed) reach(r.outputs as OutputNode[]);
  }

  /** Routes events that come from no sender (replay, internal sources). */
  inject(events: LogEvent[]): Commit {
    const c = new Commit();
    try {
      this.ingest(events, c, 0);
    } catch (e) {
      c.release(false, (e as Error)?.message ?? String(e), false);
      return c;
    }
    c.release();
    return c;
  }

  /**
   * Stop inputs, drain outputs within grace seconds, close everything (Fluent Bit's grace). What
   * is not delivered by then is not committed: its requests are aborted, buffered chunks stay on
   * disk for the next start, and senders of memory-buffered chunks are not acked. Resolves with
   * whether everything was delivered.
   */
  async stop(graceSeconds = this.plan.service.grace): Promise<boolean> {
    this.phase = 'stopping';
    await Promise.allSettled(this.inputs.map((i) => i.instance.stop()));
    this.storage?.freeze();
    const left = await Promise.all(this.outputs.map((o) => o.engine.drain(graceSeconds * 1000)));
    await this.storage?.close();
    await this.closeInstances();
    const undelivered: Record<string, number> = {};
    let records = 0;
    this.outputs.forEach((o, i) => {
      if (left[i]! > 0) undelivered[o.id] = left[i]!;
      records += left[i]!;
    });
    if (records > 0) this.reportUndelivered(undelivered, records, graceSeconds);
    return records === 0;
  }

  private reportUndelivered(undelivered: Record<string, number>, records: number, graceSeconds: number): void {
    const filesystem = this.inputs.filter((i) => i.filesystem).length;
    const fate =
      filesystem === this.inputs.length && filesystem > 0
        ? 'they stay in the filesystem buffer and are sent after the next start'
        : filesystem > 0
          ? 'those of storage.type filesystem inputs stay in the buffer and are sent after the next start; the others were not acked to their senders'
          : 'they were not acked to their senders: lost unless the sender resends them';
    const per = Object.entries(undelivered)
      .map(([id, n]) => `${id}: ${n}`)
      .join(', ');
    this.log.warn(
      { undelivered, records, grace_s: graceSeconds, ...(this.storage ? { buffered_chunks: this.storage.depth.chunks } : {}) },
      `grace period over: ${records} records left undelivered (${per}); ${fate}`,
    );
  }

  /** Releases instances without draining (validate, failed starts). */
  async close(): Promise<void> {
    await this.closeInstances();
  }

  private async closeInstances(): Promise<void> {
    await Promise.allSettled(this.inputs.map((i) => i.instance.stop()));
    for (const i of this.inputs) i.flow.detach();
    await Promise.allSettled(this.filters.map((f) => f.instance.close?.()));
    await Promise.allSettled(this.outputs.map((o) => o.instance.close?.()));
  }

  /**
   * Readiness: every input listens (after the filesystem buffer was loaded), the pipeline is not
   * stopping, and no backpressure is in effect; queue depths; the filesystem buffer when there is one.
   */
  status(): {
    ready: boolean;
    state: 'starting' | 'running' | 'stopping';
    paused: Record<string, string>;
    outputs: Record<string, { records: number; bytes: number; last_error?: string }>;
    storage?: { chunks: number; bytes: number; queued: number; writing: number; memory: number };
  } {
    const outputs: Record<string, { records: number; bytes: number; last_error?: string }> = {};
    for (const o of this.outputs) outputs[o.id] = { ...o.engine.depth, ...(o.engine.lastError ? { last_error: o.engine.lastError } : {}) };
    return { ready: this.phase === 'running' && !this.flow.paused, state: this.phase, paused: this.flow.reasons(), outputs, ...(this.storage ? { storage: this.storage.depth } : {}) };
  }
}

/**
 * The pipeline: validates a loaded config against the plugin registry, builds instances, and
 * routes chunks (Fluent Bit semantics): filters run in declaration order on events whose tag
 * they match, each output receives the events whose tag it matches, and events a filter emits
 * under a new tag re-enter routing from the first filter.
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, ConfigErrors } from '../config/errors.js';
import type { LoadedConfig, PluginSection } from '../config/load.js';
import { applySchema, canonicalSection, type RawSection } from '../config/schema.js';
import { checkService, serviceOptions, type ServiceConfig } from '../config/service.js';
import { optionTableFor, type DeliveryConfig } from './common-options.js';
import { Commit } from './commit.js';
import { DeliveryEngine, resolveDelivery } from './delivery.js';
import type { LogEvent } from './event.js';
import { FlowControl, InputFlow, type BlockScope } from './flow.js';
import { FilesystemStorage, type RoutedSegment } from './storage/buffer.js';
import { compileMatch, type TagMatcher } from './match.js';
import type { AnyPlugin, FilterInstance, InputContext, InputInstance, OutputInstance, ParserRegistry, PluginContext } from './plugin.js';
import { Metrics } from '../observe/metrics.js';
import type { ServiceHttp } from '../observe/http.js';
import { cloneRecord } from './msgpack.js';

export interface Registry {
  find(kind: 'input' | 'filter' | 'output', name: string): AnyPlugin | undefined;
  names(kind: 'input' | 'filter' | 'output'): string[];
  /**
   * Builds named parsers from `parsers:` sections and parsers_file (provided by the parser support).
   * `serviceSection` gives parsers_file's position and the directory relative paths resolve against.
   */
  buildParsers?(sections: RawSection[], service: ServiceConfig, errors: ConfigError[], serviceSection?: RawSection): ParserRegistry;
}

export interface PlannedPlugin {
  kind: 'input' | 'filter' | 'output';
  plugin: AnyPlugin;
  id: string;
  config: Record<string, unknown>;
  /** What the plugin's prepare() made of the config when the plan was made (the config itself without one); create() gets it. */
  prepared: unknown;
  raw: RawSection;
  matcher: TagMatcher | null;
}

export interface Plan {
  file: string;
  service: ServiceConfig;
  inputs: PlannedPlugin[];
  filters: PlannedPlugin[];
  outputs: PlannedPlugin[];
  parsers: ParserRegistry;
  /** The raw service section, for positions in errors found when the service starts. */
  serviceSection?: RawSection;
}

const emptyParsers: ParserRegistry = { get: () => undefined, has: () => false, names: () => [] };

/** Validates everything that can be checked without starting anything; throws ConfigErrors. */
export function plan(loaded: LoadedConfig, registry: Registry): Plan {
  const errors: ConfigError[] = [];
  const service = applySchema(serviceOptions, loaded.service, 'service', errors) as ServiceConfig;
  if (service['storage.path']) service['storage.path'] = resolve(loaded.service.baseDir, service['storage.path']);
  if (errors.length === 0) errors.push(...checkService(service, loaded.service));
  const parsers = registry.buildParsers ? registry.buildParsers(loaded.parsers, service, errors, loaded.service) : emptyParsers;
  if (!registry.buildParsers && loaded.parsers.length) {
    errors.push(new ConfigError('parsers are not supported by this build', loaded.parsers[0]!.pos, 'parsers'));
  }
  const counters = new Map<string, number>();
  const ids = new Set<string>();
  const build = (s: PluginSection): PlannedPlugin | null => {
    const plugin = registry.find(s.kind, s.name);
    if (!plugin) {
      const known = registry.names(s.kind);
      errors.push(new ConfigError(`unknown ${s.kind} plugin '${s.name}'; available: ${known.join(', ')}`, s.raw.valuePos.name ?? s.raw.pos, 'name'));
      return null;
    }
    const table = optionTableFor(plugin);
    const before = errors.length;
    const config = applySchema(table, s.raw, `${s.kind} '${s.name}'`, errors);
    // Plugins and the checks below read the section by the table's option names.
    const raw = canonicalSection(table, s.raw);
    const n = counters.get(`${s.kind}:${s.name}`) ?? 0;
    counters.set(`${s.kind}:${s.name}`, n + 1);
    const id = (config.alias as string | undefined) ?? `${s.name}.${n}`;
    if (ids.has(`${s.kind}:${id}`)) errors.push(new ConfigError(`duplicate ${s.kind} alias '${id}'`, raw.valuePos.alias ?? raw.pos, 'alias'));
    ids.add(`${s.kind}:${id}`);
    let matcher: TagMatcher | null = null;
    if (s.kind !== 'input') {
      if (config.match !== undefined && config.match_regex !== undefined) {
        errors.push(new ConfigError('set match or match_regex, not both', raw.keyPos.match_regex ?? raw.pos, 'match_regex'));
      }
      try {
        matcher = compileMatch(config.match as string | undefined, config.match_regex as string | undefined);
      } catch (e) {
        errors.push(new ConfigError(`invalid regular expression: ${(e as Error).message}`, raw.valuePos.match_regex ?? raw.pos, 'match_regex'));
      }
      if (!matcher && errors.length === before) {
        errors.push(new ConfigError(`${s.kind} '${id}' has no match or match_regex, so no event would reach it`, raw.pos, 'match'));
      }
    }
    let prepared: unknown = config;
    if (errors.length === before && plugin.prepare) {
      try {
        prepared = plugin.prepare(config, raw);
      } catch (e) {
        if (e instanceof ConfigError) errors.push(e);
        else if (e instanceof ConfigErrors) errors.push(...e.errors);
        else errors.push(new ConfigError((e as Error).message, raw.pos));
      }
    }
    return { kind: s.kind, plugin, id, config, prepared, raw, matcher };
  };
  const inputs = loaded.inputs.map(build).filter((x): x is PlannedPlugin => x !== null);
  const filters = loaded.filters.map(build).filter((x): x is PlannedPlugin => x !== null);
  const outputs = loaded.outputs.map(build).filter((x): x is PlannedPlugin => x !== null);
  if (errors.length === 0) checkStorage(loaded, service, inputs, outputs, errors);
  if (errors.length) throw new ConfigErrors(errors);
  return { file: loaded.file, service, inputs, filters, outputs, parsers, serviceSection: loaded.service };
}

/** Storage options only mean something with a filesystem-buffered input; set without one, they are errors. */
function checkStorage(loaded: LoadedConfig, service: ServiceConfig, inputs: PlannedPlugin[], outputs: PlannedPlugin[], errors: ConfigError[]): void {
  const fs = inputs.filter((i) => i.config['storage.type'] === 'filesystem');
  for (const i of fs) {
    if (!service['storage.path']) {
      errors.push(new ConfigError(`storage.type filesystem needs service storage.path (the directory of the buffer)`, i.raw.valuePos['storage.type'] ?? i.raw.pos, 'storage.type'));
    }
  }
  const svc = loaded.service;
  if (fs.length === 0) {
    for (const k of ['storage.sync', 'storage.checksum', 'storage.max_chunks_up', 'storage.backlog.mem_limit']) {
      if (svc.values[k] !== undefined) {
        errors.push(new ConfigError(`${k} has no effect: no input has storage.type filesystem`, svc.keyPos[k] ?? svc.pos, k));
      }
    }
  }
  for (const o of outputs) {
    for (const k of ['storage.total_limit_size', 'storage.overflow_action']) {
      if (o.config[k] !== undefined && fs.length === 0) {
        errors.push(new ConfigError(`${k} has no effect: no input has storage.type filesystem`, o.raw.keyPos[k] ?? o.raw.pos, k));
      }
    }
    if (fs.length && o.config['storage.overflow_action'] !== undefined && o.config['storage.total_limit_size'] === undefined) {
      errors.push(
        new ConfigError('storage.overflow_action needs a storage.total_limit_size above 0 (off, 0 or none: no limit)', o.raw.keyPos['storage.overflow_action'] ?? o.raw.pos, 'storage.overflow_action'),
      );
    }
  }
}

interface FilterNode {
  id: string;
  matcher: TagMatcher;
  instance: FilterInstance;
  m: { in: { inc(n: number): void }; out: { inc(n: number): void }; dropped: { inc(n: number): void }; emitted: { inc(n: number): void }; errors: { inc(): void } };
}

interface OutputNode {
  id: string;
  matcher: TagMatcher;
  instance: OutputInstance;
  engine: DeliveryEngine;
}

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

/** Where routed events go: the outputs of one tag and the events that reach them. */
type Deliver = (tag: string, outputs: OutputNode[], events: LogEvent[], bytes: number) => void;

interface Route {
  filters: FilterNode[];
  outputs: OutputNode[];
}

/**
 * Thrown out of ingest when a chunk cannot be routed (a filter threw on it): the input fails the
 * chunk's commit, so nothing of it is acked, and goes on with the next one.
 */
export class ChunkRefused extends Error {}

/** Emitted events re-enter routing; deeper than this is a loop in the configuration. */
const MAX_EMIT_DEPTH = 8;

export interface PipelineOptions {
  logger: Logger;
  metrics?: Metrics;
  /** Build only filters (replay): no inputs, no outputs. */
  filtersOnly?: boolean;
  /** The service HTTP server, handed to plugins (PluginContext.http). */
  http?: ServiceHttp;
}

export class Pipeline {
  readonly flow = new FlowControl();
  readonly metrics: Metrics;
  readonly log: Logger;
  inputs: InputNode[] = [];
  storage: FilesystemStorage | undefined;
  filters: FilterNode[] = [];
  outputs: OutputNode[] = [];
  private routes = new Map<string, Route>();
  private readonly unrouted;
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
    this.unrouted = this.metrics.counter('logwarden_router_unrouted_records_total', 'Records that matched no output', []);
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

  private route(tag: string): Route {
    let r = this.routes.get(tag);
    if (r) return r;
    r = { filters: this.filters.filter((f) => f.matcher(tag)), outputs: this.outputs.filter((o) => o.matcher(tag)) };
    if (this.routes.size >= 10_000) this.routes.clear(); // tags are usually few; bound the cache anyway
    this.routes.set(tag, r);
    return r;
  }

  /**
   * Routes one chunk: filters, then outputs. Synchronous. The caller keeps its own reference on
   * the commit and releases it after this returns (as failed when this throws ChunkRefused).
   */
  ingest(events: LogEvent[], commit: Commit, bytes: number): void {
    this.dispatch(events, bytes, (_tag, outputs, evs, share) => {
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
      this.dispatch(events, bytes, (_tag, outputs, evs, share) => {
        for (const o of outputs) o.engine.enqueue(evs, commit, share);
        reach(outputs);
      });
      return;
    }
    const routed: RoutedSegment[] = [];
    this.dispatch(events, bytes, (tag, outputs, evs, share) => {
      routed.push({ tag, outputs, events: evs, bytes: share });
    });
    if (routed.length === 0) return;
    this.storage!.store(input.id, routed, commit);
    for (const r of routed) reach(r.outputs as OutputNode[]);
  }

  private dispatch(events: LogEvent[], bytes: number, deliver: Deliver): void {
    if (events.length === 0) return;
    const tag = events[0]!.tag;
    let single = true;
    for (let i = 1; i < events.length; i++) {
      if (events[i]!.tag !== tag) {
        single = false;
        break;
      }
    }
    if (single) {
      this.run(tag, events, deliver, bytes, 0);
      return;
    }
    const byTag = new Map<string, LogEvent[]>();
    for (const ev of events) {
      const list = byTag.get(ev.tag);
      if (list) list.push(ev);
      else byTag.set(ev.tag, [ev]);
    }
    for (const [t, list] of byTag) this.run(t, list, deliver, Math.round((bytes * list.length) / events.length), 0);
  }

  private run(tag: string, events: LogEvent[], deliver: Deliver, bytes: number, depth: number): void {
    const route = this.route(tag);
    let emitted: LogEvent[] | undefined;
    const call = {
      emit: (evs: LogEvent[]) => {
        if (evs.length) (emitted ??= []).push(...evs);
      },
    };
    const inCount = events.length;
    for (const f of route.filters) {
      if (events.length === 0) break;
      const n = events.length;
      const before = emitted?.length ?? 0;
      f.m.in.inc(n);
      const snapshot = this.tracer ? events.map((e) => ({ ...e, record: cloneRecord(e.record) })) : undefined;
      try {
        events = f.instance.filter(events, call);
      } catch (e) {
        // Fail closed: events that skipped a filter (a redaction, a policy) must not reach an
        // output. The chunk is refused as a whole; its sender is not acked and may resend.
        f.m.errors.inc();
        const msg = (e as Error)?.message ?? String(e);
        this.log.error({ filter: f.id, tag, records: n, err: msg }, 'filter failed on a chunk; the chunk is refused');
        throw new ChunkRefused(`filter ${f.id} failed: ${msg}`);
      }
      f.m.out.inc(events.length);
      if (events.length < n) f.m.dropped.inc(n - events.length);
      const added = (emitted?.length ?? 0) - before;
      if (added) f.m.emitted.inc(added);
      if (snapshot) this.tracer!(f.id, snapshot, events, emitted ? emitted.slice(before) : []);
    }
    this.onFiltered?.(events);
    if (events.length) {
      const share = inCount === events.length ? bytes : Math.round((bytes * events.length) / inCount);
      if (route.outputs.length === 0) this.unrouted.inc(events.length);
      else deliver(tag, route.outputs, events, share);
    }
    if (emitted) {
      if (depth >= MAX_EMIT_DEPTH) {
        this.log.error({ tag, records: emitted.length }, 'events emitted too deep (a filter loop?): dropped');
        return;
      }
      const byTag = new Map<string, LogEvent[]>();
      for (const ev of emitted) {
        const list = byTag.get(ev.tag);
        if (list) list.push(ev);
        else byTag.set(ev.tag, [ev]);
      }
      for (const [t, list] of byTag) this.run(t, list, deliver, Math.round((bytes * list.length) / Math.max(1, inCount)), depth + 1);
    }
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

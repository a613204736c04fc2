/**
 * Routing (Fluent Bit semantics): filters run in declaration order on events whose tag they
 * match, each output receives the events whose tag it matches, and events a filter emits under a
 * new tag re-enter routing from the first filter. The filters and outputs of a tag are looked up
 * once and cached; a filter that throws refuses the whole chunk.
 */
import type { Logger } from 'pino';
import type { DeliveryEngine } from './delivery.js';
import type { LogEvent } from './event.js';
import type { TagMatcher } from './match.js';
import { cloneRecord } from './msgpack.js';
import type { FilterInstance, OutputInstance } from './plugin.js';

interface Inc {
  inc(n?: number): void;
}

export interface FilterNode {
  id: string;
  matcher: TagMatcher;
  instance: FilterInstance;
  m: { in: Inc; out: Inc; dropped: Inc; emitted: Inc; errors: Inc };
}

export interface OutputNode {
  id: string;
  matcher: TagMatcher;
  instance: OutputInstance;
  engine: DeliveryEngine;
}

/** Where routed events go: the outputs of one tag and the events that reach them. */
export type Deliver = (tag: string, outputs: OutputNode[], events: LogEvent[], bytes: number) => void;

interface Route {
  filters: FilterNode[];
  outputs: OutputNode[];
}

/** What replay and tests observe of routing. */
export interface RouteHooks {
  /** Called with the events that leave the filters of each routed chunk (replay prints from here). */
  onFiltered?: (events: LogEvent[]) => void;
  /** Trace hook (replay --trace): each filter call with copies of its input, its output and what it emitted. */
  tracer?: (filter: string, before: LogEvent[], after: LogEvent[], emitted: LogEvent[]) => void;
}

/**
 * Thrown out of ingest when a chunk cannot be routed (a filter threw on it): the input fails the
 * chunk's commit, so nothing of it is acked, and goes on with the next one.
 */
export class ChunkRefused extends Error {}

/** Emitted events re-enter routing; deeper than this is a loop in the configuration. */
const MAX_EMIT_DEPTH = 8;

/** Tags are usually few; the route cache is bounded anyway. */
const MAX_ROUTES = 10_000;

export class Router {
  private routes = new Map<string, Route>();

  /** `filters` and `outputs` are the pipeline's lists, read when a tag is first routed. */
  constructor(
    private readonly filters: readonly FilterNode[],
    private readonly outputs: readonly OutputNode[],
    private readonly unrouted: Inc,
    private readonly log: Logger,
    private readonly hooks: RouteHooks,
  ) {}

  private route(tag: string): Route {
    let r = this.routes.get(tag);
    if (r) return r;
    r = { filters: this.filters.filter((f) => f.matcher(tag)), outputs: this.outputs.filter((o) => o.matcher(tag)) };
    if (this.routes.size >= MAX_ROUTES) this.routes.clear();
    this.routes.set(tag, r);
    return r;
  }

  /** Runs one chunk through the filters of each of its tags and hands what is left to `deliver`. */
  dispatch(events: LogEvent[], bytes: number, deliver: Deliver): void {
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
    for (const [t, list] of byTag(events)) this.run(t, list, deliver, Math.round((bytes * list.length) / events.length), 0);
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
    const tracer = this.hooks.tracer;
    for (const f of route.filters) {
      if (events.length === 0) break;
      const n = events.length;
      const before = emitted?.length ?? 0;
      f.m.in.inc(n);
      const snapshot = tracer ? events.map((e) => ({ ...e, record: cloneRecord(e.record) })) : undefined;
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
      if (snapshot) tracer!(f.id, snapshot, events, emitted ? emitted.slice(before) : []);
    }
    this.hooks.onFiltered?.(events);
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
      for (const [t, list] of byTag(emitted)) this.run(t, list, deliver, Math.round((bytes * list.length) / Math.max(1, inCount)), depth + 1);
    }
  }
}

function byTag(events: LogEvent[]): Map<string, LogEvent[]> {
  const m = new Map<string, LogEvent[]>();
  for (const ev of events) {
    const list = m.get(ev.tag);
    if (list) list.push(ev);
    else m.set(ev.tag, [ev]);
  }
  return m;
}

/**
 * The JSON of GET /api/v1/health: the numbers /metrics exports, per plugin instance, with rates.
 * Shared by the server and the browser bundle (no Node or DOM imports).
 */

export interface InputHealth {
  name: string;
  connections: number;
  records: number;
  bytes: number;
  errors: number;
  /** Records per second over the last few seconds; null until two samples exist. */
  records_per_s: number | null;
  paused: boolean;
}

export interface FilterHealth {
  name: string;
  in: number;
  out: number;
  dropped: number;
  emitted: number;
  errors: number;
  in_per_s: number | null;
}

export interface OutputHealth {
  name: string;
  delivered: number;
  records_per_s: number | null;
  queue_records: number;
  queue_bytes: number;
  retries: number;
  retries_failed: number;
  /** Records finally dropped (dead-lettered or lost), by reason. */
  dropped: number;
  dropped_by_reason: Record<string, number>;
  errors: number;
  last_error?: string;
}

/** Where the process is in its life (the `state` of /readyz). */
export type LifeState = 'starting' | 'running' | 'stopping';

export interface Health {
  /** When the sample was taken (ms since the epoch). */
  time: number;
  ready: boolean;
  state: LifeState;
  /** Why inputs are paused (backpressure), by cause. */
  paused: Record<string, string>;
  inputs: InputHealth[];
  filters: FilterHealth[];
  outputs: OutputHealth[];
  /** Records that matched no output. */
  unrouted: number;
  /** Where the page's alerts are kept, and whether it answers (a shared database may not). */
  store?: { kind: 'memory' | 'sqlite' | 'postgres'; up: boolean; reason?: string };
  /** Queued records and bytes over all outputs, against service.memory_limit. */
  buffer: { records: number; bytes: number; limit_bytes: number; usage: number };
  process: { uptime_s: number; rss_bytes: number; heap_used_bytes: number };
}

/**
 * The page's readiness badge, as /readyz decides: `starting` while the buffer loads and inputs
 * bind, `stopping` while draining after SIGTERM, and while running either `ready` or the
 * backpressure that pauses inputs.
 */
export function readinessBadge(h: Pick<Health, 'ready' | 'state' | 'paused'>): { text: string; level: 'ok' | 'warn'; title: string } {
  if (h.state === 'starting') return { text: 'starting', level: 'warn', title: 'loading the filesystem buffer and opening the inputs' };
  if (h.state === 'stopping') return { text: 'stopping', level: 'warn', title: 'inputs closed; queued events drain for up to service.grace seconds' };
  if (h.ready) return { text: 'ready', level: 'ok', title: '' };
  const causes = Object.keys(h.paused);
  if (causes.length === 0) return { text: 'not ready', level: 'warn', title: '' };
  return { text: `paused: ${causes.map((k) => `${k} (${h.paused[k]})`).join(', ')}`, level: 'warn', title: 'backpressure: inputs routed there stop reading' };
}

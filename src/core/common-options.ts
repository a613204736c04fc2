/** Options every plugin of a kind has, handled by the core (Fluent Bit's names). */
import type { ConfigOf, OptionSpec, OptionTable } from '../config/schema.js';

const all = {
  name: { type: 'string', required: true, description: 'Plugin name' },
  alias: { type: 'string', description: 'Instance name in logs and metrics (default: name.N)' },
  log_level: {
    type: 'enum',
    values: ['off', 'error', 'warn', 'warning', 'info', 'debug', 'trace'],
    description: 'Log level of this instance (default: service log_level)',
  },
} as const satisfies OptionTable;

const routed = {
  match: { type: 'string', description: "Tag pattern with '*' wildcards; events whose tag matches go through this plugin" },
  match_regex: { type: 'string', description: 'Regular expression over the tag (instead of match)' },
} as const satisfies OptionTable;

export const commonInputOptions = {
  ...all,
  tag: { type: 'string', description: 'Tag of the events (forward: replaces the incoming tag)' },
  'storage.type': {
    type: 'enum',
    values: ['memory', 'filesystem'],
    default: 'memory',
    description: 'Where chunks are buffered until committed: memory (acked after every output delivered) or filesystem (written under service storage.path and acked once stored; survives a crash)',
  },
} as const satisfies OptionTable;

export const commonFilterOptions = { ...all, ...routed } satisfies OptionTable;

/**
 * The delivery engine's batching and retry options. Every output has them; an output whose
 * transport wants other defaults declares them once, in its own option table, with
 * `deliveryOptions({ ... })`. The engine reads the resolved values (src/core/delivery.ts).
 */
export const deliveryOptionTable = {
  retry_limit: {
    type: 'string',
    default: '1',
    description: 'Retries of a failed batch: a number, no_limits / false (unlimited), no_retries (Fluent Bit default 1)',
    check: (v) => (/^(\d+|no_limits|false|off|no_retries)$/i.test(String(v)) ? undefined : 'expected a number, no_limits, false or no_retries'),
  },
  workers: { type: 'int', min: 1, max: 64, default: 1, description: 'Batches sent concurrently' },
  batch_size: { type: 'int', min: 1, default: 2000, description: 'Records per batch' },
  batch_bytes: { type: 'size', default: '1Mi', description: 'Approximate bytes per batch' },
  batch_wait: { type: 'duration', docDefault: 'service `flush`', description: 'Longest wait before a partial batch is sent' },
} as const satisfies OptionTable;

export type DeliveryOptionName = keyof typeof deliveryOptionTable;

/** Per-output defaults of the delivery options, as they would be written in a config file. */
export interface DeliveryDefaults {
  retry_limit?: number | 'no_limits' | 'no_retries';
  workers?: number;
  batch_size?: number;
  batch_bytes?: number | string;
  batch_wait?: number | string;
}

/**
 * The delivery options with an output's own defaults, to spread into its option table: the
 * table is then the one declaration of what the output gets when the user sets nothing.
 */
export function deliveryOptions<const D extends DeliveryDefaults>(defaults: D): DeliveryOptionsWith<D> {
  const out: OptionTable = {};
  for (const [name, value] of Object.entries(defaults) as Array<[DeliveryOptionName, unknown]>) {
    const spec: OptionSpec = deliveryOptionTable[name];
    if (!spec) throw new Error(`deliveryOptions: '${name}' is not a delivery option`);
    out[name] = { ...spec, docDefault: undefined, default: name === 'retry_limit' ? String(value) : value };
  }
  return out as DeliveryOptionsWith<D>;
}

/** The specs deliveryOptions() returns: those of the common table, with the given defaults. */
export type DeliveryOptionsWith<D extends DeliveryDefaults> = {
  [K in keyof D & DeliveryOptionName]: Omit<(typeof deliveryOptionTable)[K], 'default' | 'docDefault'> & { default: D[K] };
};

export const commonOutputOptions = {
  ...all,
  ...routed,
  ...deliveryOptionTable,
  'scheduler.base': { type: 'duration', description: 'Retry backoff base for this output (default: service scheduler.base)' },
  'scheduler.cap': { type: 'duration', description: 'Retry backoff cap for this output, also of a wait a Retry-After asks for (default: service scheduler.cap)' },
  queue_max_records: { type: 'int', min: 1, description: 'Bound of queued + in-flight records before inputs pause (default from service memory_limit)' },
  queue_max_bytes: { type: 'size', description: 'Bound of queued + in-flight bytes before inputs pause (default: share of service memory_limit)' },
  'storage.total_limit_size': {
    type: 'size',
    unlimited: true,
    description:
      'Bound of the filesystem-buffered chunks (bytes on disk) still waiting for this output; see storage.overflow_action. Unset, off, false, no or 0 (any size of 0 bytes): no limit, as in Fluent Bit',
  },
  'storage.overflow_action': {
    type: 'enum',
    values: ['block', 'drop_oldest_chunk'],
    description:
      "At storage.total_limit_size: block (default; pause the filesystem inputs routed here, new chunks are acked only after delivery) or drop_oldest_chunk (Fluent Bit's behaviour: the oldest chunks leave this output's queue)",
  },
  dead_letter_file: {
    type: 'string',
    description: 'JSON-lines file for records finally dropped, with the reason (default: <storage.path>/dead-letter/<id>.jsonl when storage.path is set)',
  },
} as const satisfies OptionTable;

/** The options the delivery engine reads, as an output's config holds them after its table was applied. */
export type DeliveryConfig = ConfigOf<Pick<typeof commonOutputOptions, DeliveryOptionName | 'scheduler.base' | 'scheduler.cap' | 'queue_max_records' | 'queue_max_bytes' | 'dead_letter_file'>>;

export function commonOptionsFor(kind: 'input' | 'filter' | 'output'): OptionTable {
  return kind === 'input' ? commonInputOptions : kind === 'filter' ? commonFilterOptions : commonOutputOptions;
}

/**
 * The table a plugin's sections are checked against: the options of its kind, then its own
 * (which may restate a common option with another default, as deliveryOptions() does).
 */
export function optionTableFor(plugin: { kind: 'input' | 'filter' | 'output'; options: OptionTable }): OptionTable {
  return { ...commonOptionsFor(plugin.kind), ...plugin.options };
}

/** Parses retry_limit into a number of retries (Infinity for unlimited). */
export function parseRetryLimit(v: string | number | undefined): number {
  const s = String(v ?? '1').toLowerCase();
  if (s === 'no_limits' || s === 'false' || s === 'off') return Infinity;
  if (s === 'no_retries') return 0;
  return Number(s);
}

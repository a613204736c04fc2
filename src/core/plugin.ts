/**
 * The plugin contract. Each plugin is one folder exporting one `PluginDef`, registered in
 * src/plugins.ts; the core never names a plugin.
 */
import type { Logger } from 'pino';
import type { ConfigOf, OptionTable, RawSection } from '../config/schema.js';

export type { ConfigOf };
import type { commonFilterOptions, commonInputOptions, commonOutputOptions } from './common-options.js';
import type { Commit } from './commit.js';
import type { EventTime, LogEvent, LogRecord } from './event.js';
import type { FlowControl } from './flow.js';
import type { Metrics } from '../observe/metrics.js';
import type { ServiceConfig } from '../config/service.js';
import type { ServiceHttp } from '../observe/http.js';

export type PluginKind = 'input' | 'filter' | 'output';

/** What every plugin instance gets from the runtime. */
export interface PluginContext {
  /** Instance id used in logs and metrics: `alias`, or `name.N` as Fluent Bit names instances. */
  id: string;
  logger: Logger;
  metrics: Metrics;
  service: ServiceConfig;
  /** Directory of the config file that declared the plugin; relative paths resolve against it. */
  baseDir: string;
  /** The raw section (for positions in load-time errors). */
  section: RawSection;
  /** Named parsers declared in `parsers:` / `parsers_file` (filled by the parser support). */
  parsers: ParserRegistry;
  /**
   * The service HTTP server, when `http_server` is on and the pipeline runs (absent for validate
   * and replay): plugins that serve something mount their routes on it.
   */
  http?: ServiceHttp;
}

/** What a named parser returns for a text it matches. */
export interface ParsedRecord {
  record: LogRecord;
  /** The time read from the parser's time_key, when it has time_format and the value parsed. */
  time?: EventTime;
  /** Set when time_key was present but its value did not match time_format (the field is kept). */
  timeError?: string;
  /** Fields whose `types` cast failed (kept as strings). */
  castErrors?: string[];
}

/** A named parser (from `parsers:` / parsers_file), usable by any plugin. */
export interface LogParser {
  readonly name: string;
  readonly format: string;
  /** Parses one text; null when the text does not match the parser's format. */
  parse(text: string): ParsedRecord | null;
}

export interface ParserRegistry {
  get(name: string): LogParser | undefined;
  has(name: string): boolean;
  names(): string[];
}

/** Where inputs hand their chunks. Synchronous: filters run and outputs enqueue before it returns. */
/**
 * Route one chunk. `bytes` is its wire size (for queue accounting). The commit is held by every
 * output that accepts events; the caller releases its own reference afterwards.
 */
export type Ingest = (events: LogEvent[], commit: Commit, bytes: number) => void;

export interface InputContext extends PluginContext {
  ingest: Ingest;
  flow: FlowControl;
}

export interface InputInstance {
  /** Start listening. Resolves once the input accepts data. */
  start(): Promise<void>;
  /** Stop accepting new connections and data; in-flight chunks are still settled by the engine. */
  stop(): Promise<void>;
  /** Addresses actually bound (for tests and logs), e.g. `127.0.0.1:24224`. */
  addresses?(): string[];
}

/** Called by a filter to emit new events (they re-enter routing from the first filter). */
export interface FilterCall {
  emit(events: LogEvent[]): void;
}

export interface FilterInstance {
  /**
   * Process a whole chunk of events whose tag matched. Synchronous; returns the events that
   * continue (the same array may be returned, changed in place).
   */
  filter(events: LogEvent[], call: FilterCall): LogEvent[];
  close?(): void | Promise<void>;
}

/** Error classification an output gives the delivery engine. */
export class DeliveryError extends Error {
  constructor(
    message: string,
    /** Retryable errors are retried with backoff; others go to the dead letter at once. */
    public readonly retryable: boolean,
    /** Short reason label for metrics: `http_400`, `timeout`, `connection`... */
    public readonly reason = retryable ? 'retryable' : 'rejected',
    /**
     * Seconds the destination asked to be left alone (an HTTP Retry-After): a retry waits at
     * least this long, and never longer than the output's scheduler.cap.
     */
    public readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}

/**
 * A batch could not be encoded because of what some record holds; nothing of it was sent. The
 * engine splits the batch until the records at fault are alone: each goes to the dead letter,
 * the others are delivered. (Any error that is not a DeliveryError is taken the same way: the
 * outputs classify their transport errors, so an unclassified throw comes from the records.)
 */
export class EncodeError extends DeliveryError {
  constructor(message: string, reason = 'encode') {
    super(message, false, reason);
    this.name = 'EncodeError';
  }
}

/**
 * Part of a batch failed for reasons of its own records (a tag that cannot be a file name): the
 * `failed` records will never be delivered by this output, `pending` ones were not sent yet (they
 * are retried or rejected as `pendingError` says), and every other record of the batch was delivered.
 */
export class RecordsFailed extends DeliveryError {
  constructor(
    readonly failed: ReadonlyArray<{ event: LogEvent; error: DeliveryError }>,
    readonly pending: readonly LogEvent[] = [],
    readonly pendingError?: DeliveryError,
  ) {
    super(
      pendingError?.message ?? failed[0]?.error.message ?? 'records failed',
      pendingError?.retryable ?? false,
      pendingError?.reason ?? failed[0]?.error.reason ?? 'rejected',
      pendingError?.retryAfter,
    );
    this.name = 'RecordsFailed';
  }
}

/**
 * One batch as the delivery engine hands it to an output: the same object on every attempt of
 * the batch, so that an output can tell which of its destinations already have it.
 */
export interface OutgoingBatch {
  /** The records still to send: the batch's records less those a RecordsFailed settled. */
  readonly events: readonly LogEvent[];
  /** 0 on the first attempt, then the number of retries so far. */
  readonly attempt: number;
  /**
   * Keys of the destinations (a Loki tenant, an Alertmanager URL, a forward node or frame) that
   * already committed this batch: an output adds a key when one accepts it and does not send it
   * there again on a retry. The keys are the output's own. They survive a RecordsFailed that
   * narrows the batch; the halves of a batch split to find records at fault (EncodeError) start
   * with none.
   */
  readonly accepted: Set<string>;
}

/** A batch for a caller that is not the engine (tests, tools): attempt 0, accepted nowhere. */
export function outgoingBatch(events: readonly LogEvent[]): OutgoingBatch {
  return { events, attempt: 0, accepted: new Set() };
}

/** An output only implements "send this batch" (and optionally start/close). */
export interface OutputInstance {
  start?(): Promise<void>;
  /**
   * Deliver a batch. Resolve when committed; reject (preferably with DeliveryError) otherwise.
   * `signal` aborts when shutdown's grace period is over: stop the request and free its socket
   * (the engine no longer waits for the batch; it is not committed and will be sent again).
   */
  send(batch: OutgoingBatch, signal?: AbortSignal): Promise<void>;
  /** Flush and release resources (fsync files, close pools). */
  close?(): Promise<void>;
}

type CommonTable<K extends PluginKind> = K extends 'input' ? typeof commonInputOptions : K extends 'filter' ? typeof commonFilterOptions : typeof commonOutputOptions;

/** The table a plugin's sections are checked against: the options of its kind, then its own (optionTableFor). */
export type TableOf<K extends PluginKind, O> = Omit<CommonTable<K>, keyof O> & O;

/** The config of a plugin of kind K with option table O (its own options and those of its kind). */
export type PluginConfig<K extends PluginKind, O> = ConfigOf<TableOf<K, O>>;

export interface PluginDef<C = unknown, P = unknown> {
  kind: PluginKind;
  name: string;
  description: string;
  /**
   * The plugin's options: the one declaration of their names, types, defaults and docs. Outputs
   * whose transport wants other delivery defaults than the common ones restate them here with
   * `deliveryOptions({ ... })` (src/core/common-options.ts).
   */
  options: OptionTable;
  /**
   * Runs when the configuration is planned (so `validate` runs it too): checks across options
   * (throw ConfigError with positions) and compiles what the instance needs, reading the files
   * the options name. Its result is what `create` gets; without it, `create` gets the config.
   * It must not start anything: the result may be built into an instance later, or never.
   */
  prepare?(config: C, section: RawSection): P;
  create(prepared: P, ctx: never): InputInstance | FilterInstance | OutputInstance | Promise<InputInstance | FilterInstance | OutputInstance>;
}

export interface InputPlugin<C = Record<string, unknown>, P = C> extends PluginDef<C, P> {
  kind: 'input';
  create(prepared: P, ctx: InputContext): InputInstance | Promise<InputInstance>;
}

export interface FilterPlugin<C = Record<string, unknown>, P = C> extends PluginDef<C, P> {
  kind: 'filter';
  create(prepared: P, ctx: PluginContext): FilterInstance | Promise<FilterInstance>;
}

export interface OutputPlugin<C = Record<string, unknown>, P = C> extends PluginDef<C, P> {
  kind: 'output';
  create(prepared: P, ctx: PluginContext): OutputInstance | Promise<OutputInstance>;
}

export type AnyPlugin = InputPlugin<unknown, unknown> | FilterPlugin<unknown, unknown> | OutputPlugin<unknown, unknown>;

interface KindTypes {
  input: { ctx: InputContext; instance: InputInstance };
  filter: { ctx: PluginContext; instance: FilterInstance };
  output: { ctx: PluginContext; instance: OutputInstance };
}

/** What a plugin folder declares: its kind, name, option table and how to build an instance. */
export interface PluginSpec<K extends PluginKind, O extends OptionTable, P> {
  kind: K;
  name: string;
  description: string;
  options: O;
  prepare?(config: PluginConfig<K, O>, section: RawSection): P;
  create(prepared: P, ctx: KindTypes[K]['ctx']): KindTypes[K]['instance'] | Promise<KindTypes[K]['instance']>;
}

/**
 * Declares a plugin. The config type comes from the option table (declare it `as const
 * satisfies OptionTable` so enum values stay literal): there is no second declaration of it.
 */
export function definePlugin<const O extends OptionTable, P = PluginConfig<'input', O>>(spec: PluginSpec<'input', O, P>): InputPlugin<PluginConfig<'input', O>, P>;
export function definePlugin<const O extends OptionTable, P = PluginConfig<'filter', O>>(spec: PluginSpec<'filter', O, P>): FilterPlugin<PluginConfig<'filter', O>, P>;
export function definePlugin<const O extends OptionTable, P = PluginConfig<'output', O>>(spec: PluginSpec<'output', O, P>): OutputPlugin<PluginConfig<'output', O>, P>;
export function definePlugin(spec: PluginSpec<PluginKind, OptionTable, unknown>): AnyPlugin {
  return spec as AnyPlugin;
}

/**
 * The `loki` output: Fluent Bit's out_loki options, Loki's push API. Events are grouped into
 * streams by label set (and by tenant), sorted by time within each stream, encoded as
 * snappy-compressed protobuf (default) or JSON (optionally gzip), and POSTed; the delivery engine
 * batches and retries. 2xx is success; 408, 429 and 5xx except 501 are retried; other statuses
 * (400: invalid labels, too old, too long...) are not: the batch goes to the dead letter.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../../config/errors.js';
import type { OptionTable, RawSection } from '../../config/schema.js';
import type { LogEvent } from '../../core/event.js';
import { definePlugin, DeliveryError, EncodeError, RecordsFailed, type OutgoingBatch, type OutputInstance, type PluginConfig, type PluginContext } from '../../core/plugin.js';
import { recordJSON, toJSONLine, withoutMembers } from '../../core/json.js';
import { classifyStatus, HttpClient, laterRetry, httpClientOptions, prepareHttpClient, type HttpClientSetup } from '../http-common.js';
import { setField, valueToText } from '../../core/record-accessor.js';
import { JsonWriter, writeRecordJSON } from '../../core/msgpack-json.js';
import { sharedView } from '../../core/record-view.js';
import { WireEvent } from '../../core/wire-event.js';
import { compileAccessor, without, type Accessor, type PathPart } from './accessor.js';
import { encodeBody, labelString, type Entry, type Stream } from './encode.js';
import { LabelSet, LabelWarnings, labelMapTemplates, parseLabelEntry, sanitizeLabelName, splitList, StreamTracker, type LabelTemplate, type SkippedLabel } from './labels.js';
import { formatLine, type DropSingleKey } from './line.js';
import { deliveryOptions } from '../../core/common-options.js';

const options = {
  ...deliveryOptions({ batch_size: 5000, batch_wait: 1, workers: 2 }),
  url: { type: 'string', description: 'Push URL, http(s)://host:port/path (instead of host, port, uri and tls)' },
  host: { type: 'string', default: '127.0.0.1', description: 'Loki host' },
  port: { type: 'int', default: 3100, min: 1, max: 65535, description: 'Loki port' },
  uri: { type: 'string', default: '/loki/api/v1/push', description: 'Push API path' },
  ...httpClientOptions,
  tenant_id: { type: 'string', description: 'Tenant sent as X-Scope-OrgID (none: single-tenant Loki)' },
  tenant_id_key: {
    type: 'string',
    description: 'Record accessor ($key or key) whose string value is the tenant of the event; events without it use tenant_id',
  },
  labels: {
    type: 'multi',
    description: "Stream labels: name=value, name=$record['accessor'] or $accessor (named after its keys joined with _); comma-separated or a list. Default job=logwarden",
  },
  label_keys: { type: 'multi', description: 'Record accessors ($key) whose values become labels named after the keys' },
  label_map_path: {
    type: 'string',
    description: 'JSON file mapping record keys to label names: {"kubernetes": {"pod_name": "pod"}} is the label pod=$kubernetes[\'pod_name\']',
  },
  remove_keys: { type: 'multi', description: 'Record keys (or $accessors) left out of the line' },
  auto_kubernetes_labels: { type: 'bool', default: false, description: "Add every string in $kubernetes['labels'] as a label" },
  drop_single_key: {
    type: 'enum',
    values: ['off', 'on', 'raw', 'false', 'true'],
    default: 'off',
    description: 'When one key is left in the record, send only its value (raw: strings unquoted in JSON format)',
  },
  line_format: { type: 'enum', values: ['json', 'key_value'], default: 'json', description: 'Line format: json or key_value' },
  structured_metadata: {
    type: 'multi',
    description: 'Structured metadata (Loki 3): name=value, name=$accessor or $accessor; comma-separated or a list',
  },
  structured_metadata_map_keys: {
    type: 'multi',
    description: 'Record accessors to maps whose entries all become structured metadata (Loki 3)',
  },
  encoding: {
    type: 'enum',
    values: ['protobuf', 'json'],
    default: 'protobuf',
    description: "Push body: protobuf (snappy-compressed, Loki's native format) or json",
  },
  compress: { type: 'enum', values: ['none', 'gzip'], default: 'none', description: 'gzip the JSON body (encoding json only)' },
  max_streams: {
    type: 'int',
    default: 1000,
    min: 1,
    description: 'Distinct label sets written within stream_idle_timeout; events of further label sets keep only the static labels',
  },
  stream_idle_timeout: { type: 'duration', default: '30m', description: 'How long an unused label set still counts against max_streams' },
  max_line_size: {
    type: 'size',
    default: '256Ki',
    description: "Longer lines are truncated to this size before sending (Loki's default limit, its 256KB: 262144 bytes; 0: send as is)",
  },
} as const satisfies OptionTable;

export type LokiConfig = PluginConfig<'output', typeof options>;

const DEFAULT_LABEL: [string, string] = ['job', 'logwarden'];

interface Compiled {
  labels: LabelSet;
  remove: Array<readonly PathPart[]>;
  /** Paths that feed labels and structured metadata (left out of the line, as Fluent Bit does). */
  derived: Array<readonly PathPart[]>;
  meta: LabelTemplate[];
  metaMaps: Accessor[];
  tenantKey: Accessor | undefined;
  /** tenant_id, or the value of a `header X-Scope-OrgID ...` entry; '' when none. */
  tenant: string;
}

/** Reads Fluent Bit's label_map_path file (relative to the configuration file's directory). */
function readLabelMap(file: string, section: RawSection): LabelTemplate[] {
  const at = section.valuePos.label_map_path ?? section.pos;
  const path = resolve(section.baseDir, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, at, 'label_map_path');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON (${(e as Error).message})`, at, 'label_map_path');
  }
  const t = labelMapTemplates(doc);
  if (typeof t === 'string') throw new ConfigError(`${path}: ${t}`, at, 'label_map_path');
  return t;
}

/** Compiles label, metadata and key options; throws ConfigError with the option's position. */
export function compile(c: LokiConfig, section: RawSection, headers: Record<string, string>): Compiled {
  const fail = (key: string, msg: string): never => {
    throw new ConfigError(msg, section.valuePos[key] ?? section.keyPos[key] ?? section.pos, key);
  };
  const accessor = (key: string, s: string): Accessor => {
    const a = compileAccessor(s.startsWith('$') ? s : `$${s}`);
    return typeof a === 'string' ? fail(key, a) : a;
  };
  const templates: LabelTemplate[] = [];
  const names = new Set<string>();
  const addLabel = (key: string, t: LabelTemplate | string) => {
    if (typeof t === 'string') fail(key, t);
    const l = t as LabelTemplate;
    if (names.has(l.name)) fail(key, `label '${l.name}' is declared twice`);
    names.add(l.name);
    templates.push(l);
  };
  for (const e of splitList(c.labels)) addLabel('labels', parseLabelEntry(e));
  for (const e of splitList(c.label_keys)) {
    if (!e.startsWith('$')) fail('label_keys', `invalid label key '${e}': the name must start with '$'`);
    addLabel('label_keys', parseLabelEntry(e));
  }
  if (c.label_map_path !== undefined) for (const t of readLabelMap(c.label_map_path, section)) addLabel('label_map_path', t);
  const meta: LabelTemplate[] = [];
  for (const e of splitList(c.structured_metadata)) {
    const t = parseLabelEntry(e);
    if (typeof t === 'string') fail('structured_metadata', t.replace('label name', 'structured metadata name'));
    meta.push(t as LabelTemplate);
  }
  const metaMaps = splitList(c.structured_metadata_map_keys).map((s) => accessor('structured_metadata_map_keys', s));
  const remove = splitList(c.remove_keys).map((s) => accessor('remove_keys', s).path);
  const labels = new LabelSet(templates, c.auto_kubernetes_labels, DEFAULT_LABEL);
  const derived = [...labels.paths, ...meta.filter((t) => t.kind === 'dynamic').map((t) => (t.kind === 'dynamic' ? t.accessor.path : [])), ...metaMaps.map((a) => a.path)];
  const tenantKey = c.tenant_id_key !== undefined ? accessor('tenant_id_key', c.tenant_id_key) : undefined;
  const headerTenant = headers['x-scope-orgid'];
  if (headerTenant !== undefined && c.tenant_id !== undefined) {
    fail('header', 'set tenant_id or header X-Scope-OrgID, not both (they are the same header)');
  }
  return { labels, remove, derived, meta, metaMaps, tenantKey, tenant: c.tenant_id ?? headerTenant ?? '' };
}

/** `url` stands for host, port, uri and tls; it may not be mixed with them. */
function withUrl(c: LokiConfig, section: RawSection): LokiConfig {
  if (c.url === undefined) return c;
  const at = section.valuePos.url ?? section.pos;
  for (const k of ['host', 'port', 'uri', 'tls']) {
    if (k in section.values) throw new ConfigError(`set url or ${k}, not both`, section.keyPos[k] ?? at, k);
  }
  let u: URL;
  try {
    u = new URL(c.url);
  } catch {
    throw new ConfigError(`found ${JSON.stringify(c.url)}, expected an http(s) URL`, at, 'url');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`found ${JSON.stringify(c.url)}, expected an http(s) URL`, at, 'url');
  const tls = u.protocol === 'https:';
  return {
    ...c,
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : tls ? 443 : 80,
    uri: u.pathname === '/' ? '/loki/api/v1/push' : u.pathname,
    tls,
  };
}

/** What a Loki output is built from, made once when the plan is made. */
interface Prepared {
  config: LokiConfig;
  compiled: Compiled;
  http: HttpClientSetup;
}

function prepare(config: LokiConfig, section: RawSection): Prepared {
  const c = withUrl(config, section);
  const http = prepareHttpClient(c, section);
  if (c.compress === 'gzip' && c.encoding === 'protobuf') {
    throw new ConfigError('compress gzip applies to encoding json; protobuf bodies are always snappy-compressed', section.valuePos.compress ?? section.pos, 'compress');
  }
  if (!c.uri.startsWith('/')) throw new ConfigError(`uri must start with '/'`, section.valuePos.uri ?? section.pos, 'uri');
  return { config: c, compiled: compile(c, section, http.headers), http };
}

const sameKeys = (a: readonly PathPart[], b: readonly PathPart[]) => a.length === b.length && a.every((x, i) => x === b[i]);

function truncate(line: string, max: number): string {
  if (max <= 0 || line.length * 3 <= max || Buffer.byteLength(line) <= max) return line;
  // Cut at a byte boundary, then drop a partial UTF-8 sequence at the end.
  return Buffer.from(line)
    .subarray(0, max)
    .toString('utf8')
    .replace(/\uFFFD$/, '');
}

class LokiOutput implements OutputInstance {
  private readonly client: HttpClient;
  private readonly url: string;
  private readonly where: string;
  private readonly compiled: Compiled;
  private readonly removeAll: Array<readonly PathPart[]>;
  /** removeAll without the structured metadata keys (kept in the line when metadata is not sent). */
  private readonly removeNoMeta: Array<readonly PathPart[]>;
  private readonly tracker: StreamTracker;
  private readonly constantLabels: Array<[string, string]> | undefined;
  private readonly constantKey: string | undefined;
  /** Static labels beyond the 15th, left out of every record. */
  private readonly constantDropped: number;
  private readonly drop: DropSingleKey;
  /** For each list of removed paths: their keys as JSON text when all are top-level keys. */
  private readonly topLevelKeys = new Map<ReadonlyArray<readonly PathPart[]>, string[] | undefined>();
  /**
   * The top-level keys labels, tenant and structured metadata read; null when a path does not
   * start with a key. A record still in bytes gets a record of those keys only, read through the
   * view, and its JSON line is written from the bytes.
   */
  private readonly readKeys: string[] | null;
  private readonly lineWriter = new JsonWriter(16 * 1024);
  private warnedOverflow = false;
  private warnedLabelNames = false;
  private readonly labelWarnings = new LabelWarnings();
  /** Loki refused structured metadata in JSON pushes (Loki 2.x); entries are built without it. */
  private jsonMetadataRefused = false;
  private readonly m;

  private readonly c: LokiConfig;

  constructor(
    prepared: Prepared,
    private readonly ctx: PluginContext,
  ) {
    const c = prepared.config;
    this.c = c;
    this.compiled = prepared.compiled;
    {
      const { derived, tenantKey, labels } = this.compiled;
      const paths = [...derived, ...(tenantKey ? [tenantKey.path] : [])];
      const keys = new Set<string>(labels.readsKubernetes ? ['kubernetes'] : []);
      let ok = true;
      for (const p of paths) {
        if (typeof p[0] === 'string') keys.add(p[0]);
        else ok = false;
      }
      this.readKeys = ok ? [...keys] : null;
    }
    const { remove, derived } = this.compiled;
    this.removeAll = [...remove, ...derived.filter((p) => !remove.some((r) => sameKeys(r, p)))];
    const labelPaths = this.compiled.labels.paths;
    this.removeNoMeta = [...remove, ...labelPaths.filter((p) => !remove.some((r) => sameKeys(r, p)))];
    this.drop = c.drop_single_key === 'true' ? 'on' : c.drop_single_key === 'false' ? 'off' : (c.drop_single_key as DropSingleKey);
    for (const paths of [this.removeAll, this.removeNoMeta, remove]) {
      const top = paths.every((p) => p.length === 1 && typeof p[0] === 'string');
      this.topLevelKeys.set(paths, top ? paths.map((p) => JSON.stringify(p[0])) : undefined);
    }
    this.tracker = new StreamTracker(c.max_streams, c.stream_idle_timeout * 1000);
    const constant = this.compiled.labels.constant ? this.compiled.labels.evaluate({}) : undefined;
    this.constantLabels = constant?.labels;
    this.constantDropped = constant?.dropped ?? 0;
    this.constantKey = this.constantLabels && labelString(this.constantLabels);
    const host = c.host.includes(':') && !c.host.startsWith('[') ? `[${c.host}]` : c.host;
    this.url = `${c.tls ? 'https' : 'http'}://${host}:${c.port}${c.uri}`;
    this.where = `loki ${c.host}:${c.port}`;
    this.client = new HttpClient(prepared.http, c.workers);
    const id = ctx.id;
    this.m = {
      overflow: ctx.metrics.counter('logwarden_loki_stream_overflow_records_total', 'Records sent with only the static labels because the output reached max_streams', ['name']).labels(id),
      streams: ctx.metrics.gauge('logwarden_loki_streams', 'Distinct label sets the output counts against max_streams', ['name']).labels(id),
      labelsDropped: ctx.metrics.counter('logwarden_loki_labels_dropped_total', "Labels left out because a record produced more than Loki's 15 label names", ['name']).labels(id),
      truncated: ctx.metrics.counter('logwarden_loki_truncated_lines_total', 'Lines truncated to max_line_size', ['name']).labels(id),
      skipped: ctx.metrics.counter('logwarden_loki_labels_skipped_total', "Labels left out of a record's stream: a value that cannot be rendered (unrenderable) or a name Loki reserves (reserved)", [
        'name',
        'reason',
      ]),
    };
    for (const r of ['unrenderable', 'reserved']) this.m.skipped.labels(id, r);
  }

  /**
   * Groups a batch into per-tenant streams; exported behaviour is pinned by the tests. With
   * `eventsOf`, also lists each tenant's events there.
   */
  build(events: readonly LogEvent[], eventsOf?: Map<string, LogEvent[]>): Map<string, Stream[]> {
    const now = Date.now();
    const { labels: labelSet, tenantKey, meta, metaMaps, remove } = this.compiled;
    const tenants = new Map<string, Map<string, Stream>>();
    let overflowed = 0;
    let labelsDropped = 0;
    const readKeys = this.readKeys;
    const jsonLine = this.c.line_format === 'json' && this.drop === 'off';
    for (const ev of events) {
      // A record in bytes: what the labels read, through the view; the line from the bytes.
      let bytes: Uint8Array | undefined;
      let rec: Record<string, unknown>;
      if (jsonLine && readKeys !== null && ev instanceof WireEvent && ev.open(sharedView)) {
        bytes = ev.raw!;
        rec = {};
        for (const k of readKeys) if (sharedView.has(k)) setField(rec, k, sharedView.getTop(k));
      } else rec = ev.record;
      let tenant = this.compiled.tenant;
      if (tenantKey) {
        const t = valueToText(tenantKey.get(rec));
        if (t) tenant = t;
      }
      if (eventsOf) {
        const list = eventsOf.get(tenant);
        if (list) list.push(ev);
        else eventsOf.set(tenant, [ev]);
      }
      let labels: Array<[string, string]>;
      let key: string;
      let strip = this.jsonMetadataRefused ? this.removeNoMeta : this.removeAll;
      if (this.constantLabels) {
        labels = this.constantLabels;
        key = this.constantKey!;
        labelsDropped += this.constantDropped;
      } else {
        const r = labelSet.evaluate(rec);
        labels = r.labels;
        key = labelString(labels);
        labelsDropped += r.dropped;
        if (r.skipped) this.skippedLabels(r.skipped, now);
        if (r.dynamic && !this.tracker.admit(`${tenant}\0${key}`, now)) {
          labels = labelSet.fallback();
          key = labelString(labels);
          // The dropped labels' values stay in the line.
          strip = remove;
          overflowed++;
        }
      }
      let streams = tenants.get(tenant);
      if (!streams) tenants.set(tenant, (streams = new Map()));
      let st = streams.get(key);
      if (!st) streams.set(key, (st = { labels, entries: [] }));
      // JSON lines start from the record's shared serialisation (the file output's line is the
      // same text) with the label keys cut out, rather than a copy serialised again.
      const keys = this.c.line_format === 'json' && this.drop === 'off' ? this.topLevelKeys.get(strip) : undefined;
      let text: string | undefined;
      if (bytes !== undefined && keys !== undefined) {
        const w = this.lineWriter;
        w.reset();
        writeRecordJSON(w, bytes);
        text = w.view().toString('utf8');
      } else if (bytes !== undefined) rec = ev.record; // labels that cannot be cut from the text
      let line =
        keys !== undefined
          ? keys.length
            ? withoutMembers(text ?? recordJSON(rec), keys)
            : (text ?? recordJSON(rec))
          : formatLine(strip.length ? without(rec, strip) : rec, this.c.line_format, this.drop);
      const cut = truncate(line, this.c.max_line_size);
      if (cut !== line) {
        this.m.truncated.inc();
        line = cut;
      }
      const entry: Entry = { time: ev.time, line, meta: undefined };
      if ((meta.length || metaMaps.length) && !this.jsonMetadataRefused) entry.meta = this.metadata(rec);
      st.entries.push(entry);
    }
    if (overflowed) {
      this.m.overflow.inc(overflowed);
      if (!this.warnedOverflow) {
        this.warnedOverflow = true;
        this.ctx.logger.warn(
          { max_streams: this.c.max_streams, records: overflowed },
          'too many distinct label sets (label cardinality): records of new label sets are sent with the static labels only, their values kept in the line; see logwarden_loki_stream_overflow_records_total',
        );
      }
    }
    if (labelsDropped) {
      this.m.labelsDropped.inc(labelsDropped);
      if (!this.warnedLabelNames) {
        this.warnedLabelNames = true;
        this.ctx.logger.warn({ labels_dropped: labelsDropped }, 'records produce more than 15 label names (Loki max_label_names_per_series): extra labels are left out');
      }
    }
    this.m.streams.set(this.tracker.size);
    const out = new Map<string, Stream[]>();
    for (const [tenant, streams] of tenants) {
      const list = [...streams.values()];
      // Loki wants each stream's entries in time order (out-of-order writes are refused when
      // unordered_writes is off); Array#sort is stable, so equal times keep arrival order.
      for (const st of list) if (st.entries.length > 1) st.entries.sort((a, b) => a.time.compare(b.time));
      out.set(tenant, list);
    }
    return out;
  }

  private skippedLabels(skipped: readonly SkippedLabel[], now: number): void {
    for (const s of skipped) {
      this.m.skipped.labels(this.ctx.id, s.reason).inc();
      if (!this.labelWarnings.shouldWarn(s.name, s.reason, now)) continue;
      if (s.reason === 'reserved') {
        this.ctx.logger.warn({ label: s.name, key: s.detail }, "Kubernetes label left out: its name starts with '__', which Loki reserves; see logwarden_loki_labels_skipped_total");
      } else {
        this.ctx.logger.warn(
          { label: s.name, value_type: s.detail },
          'label left out: its value cannot be rendered as a label value (a list holding maps or lists); see logwarden_loki_labels_skipped_total',
        );
      }
    }
  }

  private metadata(rec: Record<string, unknown>): Array<[string, string]> | undefined {
    const out: Array<[string, string]> = [];
    const text = (v: unknown) => valueToText(v) ?? (Array.isArray(v) ? toJSONLine(v) : undefined);
    for (const t of this.compiled.meta) {
      if (t.kind === 'static') out.push([t.name, t.value]);
      else {
        const v = text(t.accessor.get(rec));
        if (v !== undefined && v !== '') out.push([t.name, v]);
      }
    }
    for (const a of this.compiled.metaMaps) {
      const map = a.get(rec);
      if (!map || typeof map !== 'object' || Array.isArray(map)) continue;
      for (const [k, v] of Object.entries(map as Record<string, unknown>)) {
        const s = text(v);
        if (s !== undefined && s !== '') out.push([sanitizeLabelName(k), s]);
      }
    }
    return out.length ? out : undefined;
  }

  async send(batch: OutgoingBatch, signal?: AbortSignal): Promise<void> {
    const events = batch.events;
    // Each tenant's events, for a tenant that refuses its part while others store theirs; with
    // tenant_id alone, every event goes to the one tenant and the batch fails or succeeds whole.
    const eventsOf = this.compiled.tenantKey ? new Map<string, LogEvent[]>() : undefined;
    const byTenant = this.build(events, eventsOf);
    const gzip = this.c.compress === 'gzip';
    // One request per tenant. A tenant whose request Loki accepted is in batch.accepted, and a
    // retry after a partial failure leaves it out: Loki keeps identical entries once only while
    // they are in the stream's head block, so resending an accepted request later stores its
    // entries twice.
    for (const t of batch.accepted) byTenant.delete(t);
    let retryable: DeliveryError | undefined;
    const retrying: string[] = [];
    const rejected = new Map<string, DeliveryError>();
    let unexpected: unknown;
    await Promise.all(
      [...byTenant].map(async ([tenant, streams]) => {
        const post = async (st: Stream[]) => {
          const { body, headers } = await encodeBody(st, this.c.encoding, gzip);
          if (tenant) headers['x-scope-orgid'] = tenant;
          return this.client.post(this.url, body, headers, signal);
        };
        try {
          const withMeta = this.c.encoding === 'json' && streams.some((st) => st.entries.some((e) => e.meta));
          let res = await post(streams);
          if (withMeta && res.status === 400 && res.body.startsWith('loghttp.PushRequest.Streams:')) {
            // Loki before 3.0 cannot parse the third element of a JSON value (structured
            // metadata) and refuses the whole push unparsed, so nothing of it was stored.
            // From now on the output sends none, and the keys that fed it stay in the line.
            this.noJsonMetadata();
            res = await post(this.build(events).get(tenant) ?? []);
          }
          const err = classifyStatus(res, tenant ? `${this.where} tenant ${tenant}` : this.where);
          if (err) throw err;
          batch.accepted.add(tenant);
        } catch (e) {
          // Not an answer from Loki (an encoding failure): the engine finds the records at fault.
          if (!(e instanceof DeliveryError) || e instanceof EncodeError) unexpected ??= e;
          else if (e.retryable) {
            retryable = laterRetry(retryable, e);
            retrying.push(tenant);
          } else rejected.set(tenant, e);
        }
      }),
    );
    if (unexpected !== undefined) throw unexpected;
    if (rejected.size) {
      // A tenant refused its part for good while others stored theirs or may still: only the
      // refused tenant's records go to the dead letter, the others are not sent again (stored)
      // or are retried alone. Refused as a whole, the batch is rejected as before.
      if (eventsOf && (retryable || batch.accepted.size > 0)) {
        const failed = [...rejected].flatMap(([t, error]) => (eventsOf.get(t) ?? []).map((event) => ({ event, error })));
        throw new RecordsFailed(
          failed,
          retrying.flatMap((t) => eventsOf.get(t) ?? []),
          retryable,
        );
      }
      throw rejected.values().next().value!;
    }
    if (retryable) throw retryable;
  }

  /** Loki refused JSON structured metadata (Loki 2.x): from now on none is sent; said once. */
  private noJsonMetadata(): void {
    if (this.jsonMetadataRefused) return;
    this.jsonMetadataRefused = true;
    this.ctx.logger.warn(
      { url: this.url },
      'Loki refused structured metadata in a JSON push (Loki before 3.0 cannot parse it): sending without structured_metadata from now on; Loki 2.x ignores it in protobuf pushes (encoding protobuf)',
    );
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

export const lokiOutput = definePlugin({
  kind: 'output',
  name: 'loki',
  description: "Send logs to Grafana Loki's push API (protobuf+snappy or JSON), with Fluent Bit's out_loki options",
  options,
  prepare,
  create: (prepared, ctx) => new LokiOutput(prepared, ctx),
});

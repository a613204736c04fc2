/**
 * The `alertmanager` output: Falco alert records (from the detect filter) become Alertmanager
 * alerts, POSTed as JSON arrays to /api/v2/alerts of every configured Alertmanager (its HA model:
 * each instance gets every alert). Option names and alert shape follow falcosidekick; unlike
 * falcosidekick, alerts are batched, retried through the delivery engine, and alerts still firing
 * are re-sent every resend_interval as Alertmanager expects of its clients.
 */
import { ConfigError } from '../../config/errors.js';
import type { OptionTable, RawSection } from '../../config/schema.js';
import type { LogEvent } from '../../core/event.js';
import { definePlugin, DeliveryError, type OutgoingBatch, type OutputInstance, type PluginConfig, type PluginContext } from '../../core/plugin.js';
import { classifyStatus, HttpClient, laterRetry, httpClientOptions, prepareHttpClient, safeUrl, type HttpClientSetup } from '../http-common.js';
import { buildAlert, DEFAULT_SEVERITY, fingerprint, priorityRank, PRIORITIES, type AlertOptions, type PostableAlert, type Priority } from './alert.js';
import { deliveryOptions } from '../../core/common-options.js';

const PRIORITY_VALUES = [...PRIORITIES, 'info'];

const options = {
  ...deliveryOptions({ batch_size: 500, batch_wait: 1, workers: 1, retry_limit: 3 }),
  url: {
    type: 'list',
    description: 'Alertmanager URL(s), a YAML list or separated by commas, e.g. http://am-0:9093,http://am-1:9093 (path /api/v2/alerts when none is given); every URL gets every alert',
  },
  host: { type: 'string', description: 'Alertmanager host (instead of url)' },
  port: { type: 'int', default: 9093, min: 1, max: 65535, description: 'Alertmanager port (with host)' },
  uri: { type: 'string', default: '/api/v2/alerts', description: 'Alerts API path (with host)' },
  ...httpClientOptions,
  minimum_priority: {
    type: 'enum',
    values: PRIORITY_VALUES,
    description: 'Lowest Falco priority sent (default: every alert)',
  },
  expires_after: {
    type: 'duration',
    default: 0,
    description: "Seconds after the event when the alert ends (endsAt); 0: no endsAt, Alertmanager's resolve_timeout applies",
  },
  resend_interval: {
    type: 'duration',
    default: 60,
    description: 'Re-send alerts still firing (before their endsAt) this often; 0: off. Only with expires_after',
  },
  max_active_alerts: {
    type: 'int',
    default: 10000,
    min: 1,
    description: 'Alerts kept for re-sending (by label set); past it the one updated longest ago is forgotten',
  },
  severity_map: {
    type: 'any',
    description: 'Priority → severity label, a map or "priority:severity,..." (default: emergency/alert/critical → critical, error/warning → warning, others → information)',
  },
  extra_labels: { type: 'any', description: 'Labels added to every alert, a map or "name:value,..." (override the built ones)' },
  extra_annotations: { type: 'any', description: 'Annotations added to every alert, a map or "name:value,..."' },
} as const satisfies OptionTable;

export type AlertmanagerConfig = PluginConfig<'output', typeof options>;

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A map option given as a YAML map or as falcosidekick's "key:value,key:value" string. */
function pairs(v: unknown, key: string, section: RawSection): Array<[string, string]> {
  const at = section.valuePos[key] ?? section.keyPos[key] ?? section.pos;
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') {
    return v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map((s) => {
        const i = s.indexOf(':');
        if (i <= 0) throw new ConfigError(`found ${JSON.stringify(s)}, expected name:value`, at, key);
        return [s.slice(0, i).trim(), s.slice(i + 1).trim()] as [string, string];
      });
  }
  if (typeof v === 'object' && !Array.isArray(v)) {
    return Object.entries(v as Record<string, unknown>).map(([k, x]) => {
      if (x === null || typeof x === 'object') throw new ConfigError(`value of '${k}' must be a string`, at, key);
      return [k, String(x)] as [string, string];
    });
  }
  throw new ConfigError(`found ${JSON.stringify(v)}, expected a map or "name:value,..."`, at, key);
}

function urls(c: AlertmanagerConfig, section: RawSection): string[] {
  const at = (k: string) => section.valuePos[k] ?? section.keyPos[k] ?? section.pos;
  if ((c.url === undefined) === (c.host === undefined)) {
    throw new ConfigError('set url (one or a list) or host, exactly one of them', at(c.url ? 'host' : 'url'), c.url ? 'host' : 'url');
  }
  if (c.host !== undefined) {
    const host = c.host.includes(':') && !c.host.startsWith('[') ? `[${c.host}]` : c.host;
    return [`${c.tls ? 'https' : 'http'}://${host}:${c.port}${c.uri}`];
  }
  return c.url!.map((u) => {
    let parsed: URL;
    try {
      parsed = new URL(u);
    } catch {
      throw new ConfigError(`found ${JSON.stringify(u)}, expected an http(s) URL`, at('url'), 'url');
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new ConfigError(`found ${JSON.stringify(u)}, expected an http(s) URL`, at('url'), 'url');
    }
    if (parsed.pathname === '/' || parsed.pathname === '') parsed.pathname = '/api/v2/alerts';
    return parsed.toString();
  });
}

interface Compiled {
  urls: string[];
  minRank: number;
  alert: AlertOptions;
}

export function compile(c: AlertmanagerConfig, section: RawSection): Compiled {
  const at = (k: string) => section.valuePos[k] ?? section.keyPos[k] ?? section.pos;
  const severity = { ...DEFAULT_SEVERITY };
  for (const [p, s] of pairs(c.severity_map, 'severity_map', section)) {
    const rank = priorityRank(p);
    if (rank < 0) throw new ConfigError(`unknown priority '${p}'; expected one of ${PRIORITY_VALUES.join(', ')}`, at('severity_map'), 'severity_map');
    severity[PRIORITIES[rank] as Priority] = s;
  }
  const extraLabels = pairs(c.extra_labels, 'extra_labels', section);
  const extraAnnotations = pairs(c.extra_annotations, 'extra_annotations', section);
  for (const [list, key] of [
    [extraLabels, 'extra_labels'],
    [extraAnnotations, 'extra_annotations'],
  ] as const) {
    for (const [k] of list) {
      if (!LABEL_NAME.test(k)) throw new ConfigError(`invalid name '${k}': must match [a-zA-Z_][a-zA-Z0-9_]*`, at(key), key);
    }
  }
  if (c.resend_interval > 0 && c.resend_interval < 1) {
    throw new ConfigError('resend_interval below 1 second would flood Alertmanager', at('resend_interval'), 'resend_interval');
  }
  return {
    urls: urls(c, section),
    minRank: c.minimum_priority === undefined ? -1 : priorityRank(c.minimum_priority),
    alert: { severity, expiresAfter: c.expires_after, extraLabels, extraAnnotations },
  };
}

/** What an Alertmanager output is built from, made once when the plan is made. */
interface Prepared {
  config: AlertmanagerConfig;
  compiled: Compiled;
  http: HttpClientSetup;
}

function prepare(config: AlertmanagerConfig, section: RawSection): Prepared {
  const http = prepareHttpClient(config, section);
  return { config, compiled: compile(config, section), http };
}

/** falcosidekick lets its test alert through whatever minimumpriority says (handlers.go). */
const TEST_RULE = 'Test rule';

interface Active {
  alert: PostableAlert;
  endsAtMs: number;
}

class AlertmanagerOutput implements OutputInstance {
  private readonly client: HttpClient;
  private readonly compiled: Compiled;
  /** Alerts still firing, by label set, in order of last update. */
  private readonly active = new Map<string, Active>();
  private resendTimer: NodeJS.Timeout | undefined;
  private resending: Promise<void> | undefined;
  private readonly m;

  private readonly c: AlertmanagerConfig;

  constructor(
    prepared: Prepared,
    private readonly ctx: PluginContext,
  ) {
    const c = prepared.config;
    this.c = c;
    this.compiled = prepared.compiled;
    this.client = new HttpClient(prepared.http, c.workers + 1);
    const id = ctx.id;
    this.m = {
      filtered: ctx.metrics.counter('logwarden_alertmanager_filtered_records_total', 'Alert records below minimum_priority', ['name']).labels(id),
      invalid: ctx.metrics.counter('logwarden_alertmanager_invalid_records_total', 'Records that are not Falco alerts (no rule, unknown priority)', ['name']).labels(id),
      active: ctx.metrics.gauge('logwarden_alertmanager_active_alerts', 'Alerts kept for re-sending until their endsAt', ['name']).labels(id),
      resent: ctx.metrics.counter('logwarden_alertmanager_resent_alerts_total', 'Alerts re-sent because they were still firing', ['name']).labels(id),
      resendErrors: ctx.metrics.counter('logwarden_alertmanager_resend_errors_total', 'Failed re-send requests', ['name', 'reason']),
    };
  }

  async start(): Promise<void> {
    if (this.c.expires_after > 0 && this.c.resend_interval > 0) {
      this.resendTimer = setInterval(() => {
        if (!this.resending) this.resending = this.resend().finally(() => (this.resending = undefined));
      }, this.c.resend_interval * 1000);
      this.resendTimer.unref?.();
    }
  }

  private alerts(events: readonly LogEvent[]): Array<{ alert: PostableAlert; endsAtMs: number | undefined }> {
    const out: Array<{ alert: PostableAlert; endsAtMs: number | undefined }> = [];
    let invalid = 0;
    let firstInvalid = '';
    for (const ev of events) {
      const built = buildAlert(ev, this.compiled.alert);
      if (typeof built === 'string') {
        invalid++;
        firstInvalid ||= built;
        continue;
      }
      if (built.rank < this.compiled.minRank && ev.record.rule !== TEST_RULE) {
        this.m.filtered.inc();
        continue;
      }
      out.push(built);
    }
    if (invalid) {
      this.m.invalid.inc(invalid);
      this.ctx.logger.warn({ records: invalid, tag: events[0]?.tag, reason: firstInvalid }, 'records skipped: not Falco alerts');
    }
    return out;
  }

  private async post(url: string, alerts: readonly PostableAlert[], signal?: AbortSignal): Promise<void> {
    const res = await this.client.post(url, JSON.stringify(alerts), { 'content-type': 'application/json' }, signal);
    const err = classifyStatus(res, `alertmanager ${safeUrl(url)}`);
    if (!err) return;
    if (res.status === 410) {
      throw new DeliveryError(`${err.message} (the v1 API was removed in Alertmanager 0.27; use /api/v2/alerts)`, false, err.reason);
    }
    throw err;
  }

  async send(batch: OutgoingBatch, signal?: AbortSignal): Promise<void> {
    const events = batch.events;
    const built = this.alerts(events);
    if (built.length === 0) return;
    const alerts = built.map((b) => b.alert);
    let retryable: DeliveryError | undefined;
    let rejected: DeliveryError | undefined;
    await Promise.all(
      this.compiled.urls
        // A retry goes only to the Alertmanagers that have not accepted the batch yet.
        .filter((u) => !batch.accepted.has(u))
        .map(async (u) => {
          try {
            await this.post(u, alerts, signal);
            batch.accepted.add(u);
          } catch (e) {
            const err = e instanceof DeliveryError ? e : new DeliveryError((e as Error).message, true, 'error');
            if (err.retryable) retryable = laterRetry(retryable, err);
            else rejected ??= err;
          }
        }),
    );
    if (retryable || rejected) throw retryable ?? rejected;
    this.remember(built);
  }

  private remember(built: ReadonlyArray<{ alert: PostableAlert; endsAtMs: number | undefined }>): void {
    if (!this.resendTimer) return;
    const now = Date.now();
    for (const b of built) {
      if (b.endsAtMs === undefined || b.endsAtMs <= now) continue;
      const fp = fingerprint(b.alert.labels);
      const prev = this.active.get(fp);
      // Alertmanager keeps the earliest startsAt of an alert; so does the re-sent copy.
      if (prev && prev.alert.startsAt < b.alert.startsAt) b.alert.startsAt = prev.alert.startsAt;
      if (prev && prev.endsAtMs > b.endsAtMs) continue;
      this.active.delete(fp);
      this.active.set(fp, { alert: b.alert, endsAtMs: b.endsAtMs });
      if (this.active.size > this.c.max_active_alerts) this.active.delete(this.active.keys().next().value!);
    }
    this.m.active.set(this.active.size);
  }

  /** Re-POSTs the alerts whose endsAt has not passed to every Alertmanager; failures wait for the next round. */
  async resend(): Promise<void> {
    const now = Date.now();
    const alerts: PostableAlert[] = [];
    for (const [fp, a] of this.active) {
      if (a.endsAtMs <= now) this.active.delete(fp);
      else alerts.push(a.alert);
    }
    this.m.active.set(this.active.size);
    if (alerts.length === 0) return;
    const BATCH = 1000;
    await Promise.all(
      this.compiled.urls.map(async (u) => {
        for (let i = 0; i < alerts.length; i += BATCH) {
          const part = alerts.slice(i, i + BATCH);
          try {
            await this.post(u, part);
            this.m.resent.inc(part.length);
          } catch (e) {
            const err = e instanceof DeliveryError ? e : new DeliveryError((e as Error).message, true, 'error');
            this.m.resendErrors.labels(this.ctx.id, err.reason).inc();
            this.ctx.logger.warn({ url: safeUrl(u), alerts: part.length, err: err.message }, 're-sending firing alerts failed; next try in resend_interval');
            return;
          }
        }
      }),
    );
  }

  /** Alerts currently kept for re-sending (for status and tests). */
  get activeAlerts(): number {
    return this.active.size;
  }

  async close(): Promise<void> {
    if (this.resendTimer) clearInterval(this.resendTimer);
    // Closing the client first cuts a re-send in flight instead of waiting for its answer.
    await this.client.close();
    await this.resending;
  }
}

export const alertmanagerOutput = definePlugin({
  kind: 'output',
  name: 'alertmanager',
  description: 'Send Falco alerts to Prometheus Alertmanager (POST /api/v2/alerts), falcosidekick-compatible labels and annotations',
  options,
  prepare,
  create: (prepared, ctx) => new AlertmanagerOutput(prepared, ctx),
});

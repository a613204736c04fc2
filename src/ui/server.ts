/**
 * The web page (`service.ui: on`): mounted on the service HTTP server, it serves the built page
 * (dist/ui/), the alert API the `ui` output fills (list, stats, one alert, a Server-Sent Events
 * stream) and pipeline health. Read-only; optional basic auth and/or bearer token; every
 * response carries a Content-Security-Policy that only allows the page's own files.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type http from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { ServiceConfig } from '../config/service.js';
import type { LogEvent } from '../core/event.js';
import type { ServiceHttp } from '../observe/http.js';
import type { Metrics } from '../observe/metrics.js';
import { compileQuery, parseQuery, resolveQuery, type AlertQuery, type AlertSummary, type Mute, type NewMute } from './alerts.js';
import { csvHeader, csvRow, EXPORT_TYPES, exportFileName, jsonLine, type ExportFormat } from './export.js';
import { HealthSampler, type MetricsReader, type PipelineView } from './health.js';
import { Silences } from './silences.js';
import { openAlertStore, StoreUnavailable, type AlertStore, type StoredAlert } from './store.js';

export interface UiAuth {
  user?: string;
  passwd?: string;
  bearerToken?: string;
}

export interface UiOptions {
  maxAlerts: number;
  /** Seconds; 0: no age limit. */
  retention: number;
  dbPath?: string;
  /** `ui.store`: absent or `memory`, or a postgres:// URL. */
  store?: string;
  auth: UiAuth;
  /** Where the store reports, and (unless healthMetrics) what the health view reads. */
  metrics: Metrics;
  /** What the health view reads, when not metrics (the primary of service.workers: the merged workers' metrics). */
  healthMetrics?: MetricsReader;
  pipeline: PipelineView;
  /** service.memory_limit, the budget buffer usage is measured against. */
  memoryLimit: number;
  logger: Logger;
  /** `ui.alertmanager_url`: where a mute also becomes a silence. */
  alertmanagerUrl?: string;
  /** Where the built page is (default: dist/ui/ next to the compiled sources). */
  assetsDir?: string;
  now?: () => number;
}

/** The page's options from the service section (`ui.*`). */
export function uiOptions(svc: ServiceConfig, metrics: Metrics, pipeline: PipelineView, logger: Logger): UiOptions {
  const auth: UiAuth = {};
  if (svc['ui.http_user'] !== undefined) auth.user = svc['ui.http_user'];
  if (svc['ui.http_passwd'] !== undefined) auth.passwd = svc['ui.http_passwd'];
  if (svc['ui.bearer_token'] !== undefined) auth.bearerToken = svc['ui.bearer_token'];
  return {
    maxAlerts: svc['ui.max_alerts'],
    retention: svc['ui.retention'],
    ...(svc['ui.db_path'] ? { dbPath: svc['ui.db_path'] } : {}),
    ...(svc['ui.store'] ? { store: svc['ui.store'] } : {}),
    ...(svc['ui.alertmanager_url'] ? { alertmanagerUrl: svc['ui.alertmanager_url'] } : {}),
    auth,
    metrics,
    pipeline,
    memoryLimit: svc.memory_limit,
    logger,
  };
}

/** The Content-Security-Policy of every UI response: nothing but the page's own files, no inline code, no HTML sinks. */
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
};

/** A stream client that falls this far behind is disconnected; it reconnects and catches up from the store. */
const MAX_STREAM_BUFFER = 1024 * 1024;
const MAX_STREAMS = 100;
/** Alerts re-sent to a (re)connecting stream, at most. */
const CATCH_UP = 500;
const HEARTBEAT_MS = 15_000;
const LIST_LIMIT_MAX = 1000;
const STATS_CACHE_MS = 1000;
/** Mutes read from the store are reused this long by the live streams (another replica's mute shows within it). */
const MUTES_CACHE_MS = 5000;
/** The header every request that changes something must carry (CSRF: a cross-site form cannot set it, and a cross-site fetch with it needs a CORS preflight this server never grants). */
export const WRITE_HEADER = 'x-logwarden-ui';
const MAX_BODY = 16 * 1024;
const MAX_MUTE_S = 90 * 86400;
const MAX_TEXT = 1000;
/** Alerts read from the store at a time while exporting. */
const EXPORT_PAGE = 500;

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const defaultAssets = fileURLToPath(new URL('../../ui/', import.meta.url));

const attached = new WeakMap<ServiceHttp, UiServer>();

const digest = (s: string) => createHash('sha256').update(s).digest();
const same = (a: string, b: string) => timingSafeEqual(digest(a), digest(b));

export class UiServer {
  private readonly assets = new Map<string, Asset>();
  private readonly streams = new Set<http.ServerResponse>();
  private readonly statsCache = new Map<string, { at: number; newest: number; text: string }>();
  private readonly health: HealthSampler;
  private readonly silences: Silences | undefined;
  private muteCache: { at: number; list: Mute[]; loading?: Promise<void> } = { at: -Infinity, list: [] };
  private closed = false;

  private constructor(
    readonly store: AlertStore,
    private readonly opts: UiOptions,
  ) {
    this.health = new HealthSampler(opts.healthMetrics ?? opts.metrics, opts.pipeline, opts.memoryLimit, opts.now);
    this.silences = opts.alertmanagerUrl ? new Silences(opts.alertmanagerUrl) : undefined;
    this.loadAssets(opts.assetsDir ?? defaultAssets);
  }

  /** Opens the alert store and mounts the page and its API on the service HTTP server. */
  static async attach(server: ServiceHttp, opts: UiOptions): Promise<UiServer> {
    if (attached.has(server)) throw new Error('the web page is already mounted on this server');
    const store = await openAlertStore({
      maxAlerts: opts.maxAlerts,
      retention: opts.retention,
      ...(opts.dbPath ? { dbPath: opts.dbPath } : {}),
      ...(opts.store ? { store: opts.store } : {}),
      metrics: opts.metrics,
      logger: opts.logger,
      ...(opts.now ? { now: opts.now } : {}),
    });
    const ui = new UiServer(store, opts);
    server.mount((req, res, url) => ui.handle(req, res, url));
    attached.set(server, ui);
    return ui;
  }

  /** The page mounted on a server, if any (how `ui` outputs find where to put alerts). */
  static of(server: ServiceHttp): UiServer | undefined {
    return attached.get(server);
  }

  /** Stores alerts; the store pushes them to the live streams once they are visible. */
  add(events: readonly LogEvent[]): Promise<StoredAlert[]> {
    return this.store.add(events);
  }

  get streamCount(): number {
    return this.streams.size;
  }

  private loadAssets(dir: string): void {
    if (!existsSync(join(dir, 'index.html'))) {
      this.opts.logger.warn({ dir }, 'web page files not built (npm run build:ui): / answers 503; the API still works');
      return;
    }
    for (const name of readdirSync(dir)) {
      const type = TYPES[extname(name)];
      if (!type) continue;
      const body = readFileSync(join(dir, name));
      this.assets.set(name, { body, type, etag: `"${createHash('sha1').update(body).digest('base64url')}"` });
    }
  }

  private authConfigured(): { basic: boolean; bearer: boolean } {
    const a = this.opts.auth;
    return { basic: a.user !== undefined && a.passwd !== undefined, bearer: a.bearerToken !== undefined };
  }

  private authorized(req: http.IncomingMessage): boolean {
    const { basic, bearer } = this.authConfigured();
    if (!basic && !bearer) return true;
    const h = req.headers.authorization;
    if (!h) return false;
    const sp = h.indexOf(' ');
    const scheme = h.slice(0, sp < 0 ? h.length : sp).toLowerCase();
    const cred = sp < 0 ? '' : h.slice(sp + 1).trim();
    if (scheme === 'bearer' && bearer) return same(cred, this.opts.auth.bearerToken!);
    if (scheme === 'basic' && basic) {
      const text = Buffer.from(cred, 'base64').toString('utf8');
      const i = text.indexOf(':');
      if (i < 0) return false;
      // Both compared, whatever the first gives, so timing tells nothing about which was wrong.
      const u = same(text.slice(0, i), this.opts.auth.user!);
      const p = same(text.slice(i + 1), this.opts.auth.passwd!);
      return u && p;
    }
    return false;
  }

  private unauthorized(res: http.ServerResponse): void {
    const { basic, bearer } = this.authConfigured();
    const challenge: string[] = [];
    if (basic) challenge.push('Basic realm="logwarden", charset="UTF-8"');
    if (bearer) challenge.push('Bearer realm="logwarden"');
    res.writeHead(401, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'cache-control': 'no-store', 'www-authenticate': challenge });
    res.end('{"error":"unauthorized"}\n');
  }

  /** The route mounted on the service server; false for paths that are not the page's. */
  private async handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname;
    const page = path === '/' || path === '/index.html' || path.startsWith('/ui/');
    const mutes = path === '/api/v1/mutes' || path.startsWith('/api/v1/mutes/');
    const api = path === '/api/v1/health' || path === '/api/v1/alerts' || path.startsWith('/api/v1/alerts/') || mutes;
    if (!page && !api) return false;
    const allow = path === '/api/v1/mutes' ? 'GET, HEAD, POST' : mutes ? 'DELETE' : 'GET, HEAD';
    if (!allow.split(', ').includes(req.method ?? '')) {
      res.writeHead(405, { ...SECURITY_HEADERS, allow }).end();
      return true;
    }
    // The page's files hold no data. With only a bearer token configured they are served to
    // anyone (a browser cannot send the token on navigation; the page asks for it); with basic
    // auth they are protected too, so the browser asks at once and then reuses the credentials.
    const { basic } = this.authConfigured();
    if ((api || basic) && !this.authorized(req)) {
      this.unauthorized(res);
      return true;
    }
    if (page) this.serveAsset(req, res, path === '/' || path === '/index.html' ? 'index.html' : /^\/ui\/[A-Za-z0-9_.-]+$/.test(path) ? path.slice(4) : '');
    else if (path === '/api/v1/health') this.json(res, 200, { ...(await this.health.snapshot()), store: this.store.status() });
    else {
      try {
        if (path === '/api/v1/alerts') await this.list(res, url);
        else if (path === '/api/v1/alerts/stats') await this.stats(res, url);
        else if (path === '/api/v1/alerts/export') await this.export(req, res, url);
        else if (path === '/api/v1/alerts/stream') await this.stream(req, res, url);
        else if (mutes) await this.mutes(req, res, path);
        else await this.one(res, path.slice('/api/v1/alerts/'.length));
      } catch (e) {
        this.storeError(res, e);
      }
    }
    return true;
  }

  /** A store that cannot answer: 503 with the reason (the page shows it), anything else 500. */
  private storeError(res: http.ServerResponse, e: unknown): void {
    const unavailable = e instanceof StoreUnavailable;
    if (!unavailable) this.opts.logger.error({ err: (e as Error).message }, 'ui alert store query failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = unavailable ? { error: `alert store unreachable: ${(e as Error).message}`, store: this.store.status() } : { error: `alert store query failed: ${(e as Error).message}` };
    res.writeHead(unavailable ? 503 : 500, {
      ...SECURITY_HEADERS,
      'content-type': 'application/json',
      'cache-control': 'no-store',
      ...(unavailable ? { 'retry-after': '5' } : {}),
    });
    res.end(`${JSON.stringify(body)}\n`);
  }

  private serveAsset(req: http.IncomingMessage, res: http.ServerResponse, name: string): void {
    if (this.assets.size === 0) {
      res.writeHead(503, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8' }).end('web page files not built: run npm run build:ui\n');
      return;
    }
    const a = this.assets.get(name);
    if (!a) {
      res.writeHead(404, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    const headers = { ...SECURITY_HEADERS, 'content-type': a.type, etag: a.etag, 'cache-control': 'no-cache' };
    if (req.headers['if-none-match'] === a.etag) {
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': a.body.length }).end(a.body);
  }

  private json(res: http.ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(body)}\n`);
  }

  private raw(res: http.ServerResponse, status: number, text: string): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${text}\n`);
  }

  /** A non-negative integer parameter within bounds, or an error message. */
  private intParam(url: URL, name: string, def: number | undefined, min: number, max: number): number | undefined | string {
    const v = url.searchParams.get(name);
    if (v === null || v === '') return def;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) return `${name}: found ${JSON.stringify(v.slice(0, 40))}, expected an integer from ${min} to ${max}`;
    return Number(v);
  }

  /** The filters of a request with `since` resolved at this moment, or the 400 answer sent. */
  private query(res: http.ServerResponse, url: URL): AlertQuery | undefined {
    const errors: string[] = [];
    const q = parseQuery(url.searchParams, errors);
    if (errors.length) {
      this.json(res, 400, { error: errors.join('; ') });
      return undefined;
    }
    return resolveQuery(q, (this.opts.now ?? Date.now)());
  }

  private async list(res: http.ServerResponse, url: URL): Promise<void> {
    const limit = this.intParam(url, 'limit', 100, 1, LIST_LIMIT_MAX);
    const before = this.intParam(url, 'before', undefined, 1, Number.MAX_SAFE_INTEGER);
    if (typeof limit === 'string' || typeof before === 'string') return this.json(res, 400, { error: typeof limit === 'string' ? limit : before });
    const q = this.query(res, url);
    if (!q) return;
    this.json(res, 200, await this.store.query(q, { limit: limit!, ...(before !== undefined ? { before } : {}) }));
  }

  /**
   * The matching alerts as a download, newest first: JSON lines of the full alerts or CSV of
   * their summaries. Read from the store a page at a time and written as the socket takes it.
   */
  private async export(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const f = url.searchParams.get('format') ?? 'jsonl';
    if (f !== 'jsonl' && f !== 'csv') return this.json(res, 400, { error: `format: found ${JSON.stringify(f.slice(0, 40))}, expected jsonl or csv` });
    const format: ExportFormat = f;
    const q = this.query(res, url);
    if (!q) return;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': EXPORT_TYPES[format],
      'content-disposition': `attachment; filename="${exportFileName(format, (this.opts.now ?? Date.now)())}"`,
      'cache-control': 'no-store',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    let closed = false;
    res.on('close', () => (closed = true));
    const write = async (text: string) => {
      if (!res.write(text))
        await new Promise<void>((r) => {
          if (closed) return r();
          res.once('drain', r);
          res.once('close', r);
        });
    };
    if (format === 'csv') await write(csvHeader());
    let before: number | undefined;
    for (;;) {
      // A store failing midway ends the download early: the status line is already sent.
      const page = await this.store.query(q, { limit: EXPORT_PAGE, ...(before !== undefined ? { before } : {}) });
      let text = '';
      for (const a of page.alerts) {
        if (format === 'csv') text += csvRow(a);
        else {
          const full = await this.store.get(a.id);
          if (full) text += jsonLine(full.json);
        }
      }
      if (text) await write(text);
      if (closed || !page.more || page.alerts.length === 0) break;
      before = page.alerts[page.alerts.length - 1]!.id;
    }
    res.end();
  }

  private async stats(res: http.ServerResponse, url: URL): Promise<void> {
    const window = this.intParam(url, 'window', 3600, 60, 366 * 86400);
    const buckets = this.intParam(url, 'buckets', 60, 1, 1000);
    if (typeof window === 'string' || typeof buckets === 'string') return this.json(res, 400, { error: typeof window === 'string' ? window : buckets });
    // Stats scan every kept alert; viewers refreshing the same view share one answer for a moment.
    const key = url.search;
    const now = Date.now();
    const newest = await this.store.newest();
    let hit = this.statsCache.get(key);
    if (!hit || now - hit.at > STATS_CACHE_MS || hit.newest !== newest) {
      const q = this.query(res, url);
      if (!q) return;
      const text = JSON.stringify(await this.store.counts(q, window! * 1000, buckets!));
      if (this.statsCache.size >= 100) this.statsCache.clear();
      hit = { at: now, newest, text };
      this.statsCache.set(key, hit);
    }
    this.raw(res, 200, hit.text);
  }

  private async one(res: http.ServerResponse, idText: string): Promise<void> {
    const a = /^\d{1,15}$/.test(idText) ? await this.store.get(Number(idText)) : undefined;
    if (!a) return this.json(res, 404, { error: 'no such alert (expired, or never stored)' });
    this.raw(res, 200, a.json);
  }

  /**
   * Server-Sent Events: `event: alert` with an alert summary as data and its id as the event id.
   * A reconnecting client (EventSource sends Last-Event-ID; `after` does the same) first gets
   * what it missed, up to the newest CATCH_UP alerts.
   */
  private async stream(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    if (this.closed || this.streams.size >= MAX_STREAMS) {
      res.writeHead(503, { ...SECURITY_HEADERS, 'retry-after': '5', 'content-type': 'application/json' }).end('{"error":"too many live streams"}\n');
      return;
    }
    const lastId = req.headers['last-event-id'];
    const afterText = typeof lastId === 'string' && lastId !== '' ? lastId : url.searchParams.get('after');
    const after = afterText && /^\d{1,15}$/.test(afterText) ? Number(afterText) : undefined;
    const q = this.query(res, url);
    if (!q) return;
    if (q.muted) await this.activeMutes();
    const m = this.streamMatcher(q);
    // Asked before the response starts, so that an unreachable store answers 503 (and the
    // client retries) rather than an empty stream.
    const newest = await this.store.newest();
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    req.socket.setNoDelay(true);
    // Ids already sent: the catch-up and the live batches may overlap, each alert goes out once.
    let sent = after ?? newest;
    const send = (alerts: StoredAlert[]) => {
      let text = '';
      for (const a of alerts) {
        if (a.summary.id <= sent) continue;
        sent = a.summary.id;
        if (m(a.summary)) text += `id: ${a.summary.id}\nevent: alert\ndata: ${JSON.stringify(a.summary)}\n\n`;
      }
      if (text === '' || res.destroyed) return;
      res.write(text);
      if (res.writableLength > MAX_STREAM_BUFFER) {
        this.opts.logger.warn({ buffered: res.writableLength }, 'ui stream client too slow: disconnected');
        res.destroy();
      }
    };
    // The newest id lets a client that starts without `after` ask only for what comes next.
    res.write(`retry: 2000\nevent: hello\ndata: {"newest":${newest}}\n\n`);
    // Subscribed before the catch-up is read: what arrives meanwhile is held, then sent after it.
    let held: StoredAlert[][] | undefined = after !== undefined ? [] : undefined;
    const unsubscribe = this.store.subscribe((added) => (held ? held.push(added) : send(added)));
    const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    this.streams.add(res);
    res.on('close', () => {
      unsubscribe();
      clearInterval(heartbeat);
      this.streams.delete(res);
    });
    if (held) {
      try {
        send(await this.store.since(after!, q, CATCH_UP));
      } catch (e) {
        // The client reconnects with its Last-Event-ID and asks again.
        this.opts.logger.warn({ err: (e as Error).message }, 'ui stream catch-up failed: stream closed');
        res.destroy();
        return;
      }
      for (const batch of held) send(batch);
      held = undefined;
    }
  }

  /** The stream's filter; with `muted`, against the mutes of the moment (re-read every few seconds). */
  private streamMatcher(q: AlertQuery): (a: AlertSummary) => boolean {
    if (!q.muted) return compileQuery(q);
    let list = this.muteCache.list;
    let m = compileQuery(q, { mutes: list });
    return (a) => {
      void this.activeMutes().catch(() => undefined);
      if (list !== this.muteCache.list) {
        list = this.muteCache.list;
        m = compileQuery(q, { mutes: list });
      }
      return m(a);
    };
  }

  /** The active mutes, read from the store at most every MUTES_CACHE_MS (the last answer meanwhile). */
  private async activeMutes(): Promise<Mute[]> {
    const c = this.muteCache;
    const now = (this.opts.now ?? Date.now)();
    if (now - c.at > MUTES_CACHE_MS && !c.loading) {
      c.loading = this.store
        .mutes()
        .then((list) => {
          this.muteCache = { at: (this.opts.now ?? Date.now)(), list };
        })
        .finally(() => (c.loading = undefined));
    }
    if (c.loading && c.at === -Infinity) await c.loading;
    return this.muteCache.list.filter((x) => x.until > now);
  }

  /** Whether a request that changes something comes from the page itself (see WRITE_HEADER). */
  private sameOrigin(req: http.IncomingMessage): string | undefined {
    if (req.headers[WRITE_HEADER] !== '1') return `the ${WRITE_HEADER}: 1 header is missing (requests that change something must come from the page)`;
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return `cross-site request refused (Sec-Fetch-Site: ${String(site)})`;
    const origin = req.headers.origin;
    if (origin !== undefined) {
      let host: string | undefined;
      try {
        host = new URL(origin).host;
      } catch {
        host = undefined;
      }
      // Behind a proxy that rewrites Host, the host the browser used is in X-Forwarded-Host.
      const forwarded = String(req.headers['x-forwarded-host'] ?? '')
        .split(',')[0]!
        .trim();
      if (host !== req.headers.host && (forwarded === '' || host !== forwarded)) return `cross-origin request refused (Origin: ${origin.slice(0, 100)})`;
    }
    return undefined;
  }

  private async body(req: http.IncomingMessage): Promise<unknown> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') throw new BadRequest(`content-type: found ${JSON.stringify(type)}, expected application/json`);
    let size = 0;
    const parts: Buffer[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY) throw new BadRequest(`body larger than ${MAX_BODY} bytes`);
      parts.push(chunk);
    }
    try {
      return JSON.parse(Buffer.concat(parts).toString('utf8')) as unknown;
    } catch (e) {
      throw new BadRequest(`body is not JSON: ${(e as Error).message}`);
    }
  }

  /** GET /api/v1/mutes, POST /api/v1/mutes, DELETE /api/v1/mutes/ID. */
  private async mutes(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> {
    if (req.method === 'GET' || req.method === 'HEAD') {
      const list = await this.store.mutes();
      this.muteCache = { at: (this.opts.now ?? Date.now)(), list };
      return this.json(res, 200, { mutes: list, alertmanager: this.silences?.url ?? null });
    }
    const refused = this.sameOrigin(req);
    if (refused) return this.json(res, 403, { error: refused });
    try {
      if (req.method === 'POST') await this.addMute(req, res);
      else await this.removeMute(res, path.slice('/api/v1/mutes/'.length));
    } catch (e) {
      if (e instanceof BadRequest) return this.json(res, 400, { error: e.message });
      throw e;
    }
    this.muteCache.at = -Infinity;
  }

  private async addMute(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const n = readMute(await this.body(req), (this.opts.now ?? Date.now)());
    const user = this.basicUser(req);
    if (user !== undefined) n.by = user;
    let silenceError: string | undefined;
    if (this.silences) {
      try {
        n.silence = await this.silences.create(n, (this.opts.now ?? Date.now)());
      } catch (e) {
        silenceError = (e as Error).message;
        this.opts.logger.warn({ err: silenceError }, 'ui mute: the Alertmanager silence was not created');
      }
    }
    let mute: Mute;
    try {
      mute = await this.store.addMute(n);
    } catch (e) {
      if (n.silence) await this.silences!.expire(n.silence).catch(() => undefined);
      throw e;
    }
    this.opts.logger.info({ mute: mute.id, rule: mute.rule, namespace: mute.namespace, user: mute.user, until: new Date(mute.until).toISOString(), silence: mute.silence }, 'ui: alert group muted');
    this.json(res, 201, { mute, ...(silenceError ? { silence_error: silenceError } : {}) });
  }

  private async removeMute(res: http.ServerResponse, idText: string): Promise<void> {
    if (!/^\d{1,15}$/.test(idText)) return this.json(res, 404, { error: 'no such mute' });
    const mute = await this.store.removeMute(Number(idText));
    if (!mute) return this.json(res, 404, { error: 'no such mute (ended, or removed)' });
    let silenceError: string | undefined;
    if (mute.silence && this.silences) {
      try {
        await this.silences.expire(mute.silence);
      } catch (e) {
        silenceError = (e as Error).message;
        this.opts.logger.warn({ err: silenceError }, 'ui un-mute: the Alertmanager silence was not expired');
      }
    }
    this.opts.logger.info({ mute: mute.id, rule: mute.rule }, 'ui: alert group un-muted');
    this.json(res, 200, { mute, ...(silenceError ? { silence_error: silenceError } : {}) });
  }

  /** The basic auth user of an authorized request, if it used basic auth. */
  private basicUser(req: http.IncomingMessage): string | undefined {
    const h = req.headers.authorization;
    if (!h || !/^basic /i.test(h) || this.opts.auth.user === undefined) return undefined;
    return this.opts.auth.user;
  }

  /** Ends live streams (cleanly, so browsers reconnect without an error) and closes the store. */
  async close(): Promise<void> {
    this.closed = true;
    const ended = [...this.streams].map((s) => new Promise<void>((resolve) => s.end(resolve)));
    this.streams.clear();
    await Promise.race([Promise.all(ended), new Promise((r) => setTimeout(r, 1000).unref())]);
    await this.store.close();
  }
}

class BadRequest extends Error {}

const isText = (v: unknown, max = MAX_TEXT): v is string => typeof v === 'string' && v.length <= max;

/** A mute from a request body: `{rule, namespace?, user?, duration (seconds) | until (ms), comment?}`. */
export function readMute(body: unknown, now: number): NewMute {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequest('expected a JSON object');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (!['rule', 'namespace', 'user', 'duration', 'until', 'comment'].includes(k)) throw new BadRequest(`unknown field ${JSON.stringify(k.slice(0, 40))}`);
  }
  if (!isText(b.rule) || b.rule === '') throw new BadRequest(`rule: expected a non-empty string of at most ${MAX_TEXT} characters`);
  const m: NewMute = { rule: b.rule, until: 0 };
  for (const k of ['namespace', 'user'] as const) {
    const v = b[k];
    if (v === undefined || v === null) continue;
    if (!isText(v)) throw new BadRequest(`${k}: expected a string of at most ${MAX_TEXT} characters (absent: any)`);
    m[k] = v;
  }
  if (b.comment !== undefined && b.comment !== null && b.comment !== '') {
    if (!isText(b.comment)) throw new BadRequest(`comment: expected a string of at most ${MAX_TEXT} characters`);
    m.comment = b.comment;
  }
  if ((b.duration === undefined) === (b.until === undefined)) throw new BadRequest('give either duration (seconds) or until (ms since the epoch)');
  if (b.duration !== undefined) {
    if (typeof b.duration !== 'number' || !Number.isInteger(b.duration) || b.duration < 60 || b.duration > MAX_MUTE_S) {
      throw new BadRequest(`duration: expected whole seconds from 60 to ${MAX_MUTE_S}`);
    }
    m.until = now + b.duration * 1000;
  } else {
    if (typeof b.until !== 'number' || !Number.isInteger(b.until) || b.until < now + 60_000 || b.until > now + MAX_MUTE_S * 1000) {
      throw new BadRequest(`until: expected ms since the epoch, from a minute to ${MAX_MUTE_S / 86400} days from now`);
    }
    m.until = b.until;
  }
  return m;
}

/**
 * The alerts the web page shows, behind one asynchronous interface (`AlertStore`) so that the
 * page, its live stream and the `ui` output work the same whatever keeps them:
 * - `MemoryAlertStore`: the newest `maxAlerts` in memory, dropped by count and by age
 *   (`retention` seconds after they arrived), optionally written through to a SQLite file so that
 *   a restart keeps the history. Queries always run in memory; the file only mirrors it.
 * - a shared PostgreSQL database (`ui.store: postgres://...`, store-pg.ts), so that every replica's
 *   page shows every replica's alerts.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Database as SqliteDatabase, Statement } from 'better-sqlite3';
import type { LogEvent } from '../core/event.js';
import { recordJSON } from '../core/json.js';
import type { Metrics } from '../observe/metrics.js';
import { ChartSeries, compileQuery, haystack, summarize, type AlertQuery, type AlertStats, type AlertSummary, type Mute, type NewMute } from './alerts.js';
import { MuteBook } from './mutes.js';

export interface StoredAlert {
  summary: AlertSummary;
  /** The alert as /api/v1/alerts/ID returns it: `{id, received, tag, time, record}` as JSON. */
  json: string;
}

/** Which page of a filtered list: the newest `limit` alerts, older than the alert `before` (an id) when given. */
export interface AlertPage {
  limit: number;
  before?: number;
}

/** One page of a filtered list, newest first. */
export interface AlertList {
  alerts: AlertSummary[];
  /** More matching alerts are older than the last one returned. */
  more: boolean;
  /** Alerts kept in the store (all of them, not only the matching ones). */
  total: number;
}

export type AlertStoreKind = 'memory' | 'sqlite' | 'postgres';

/** Whether the store answers; a shared database can be unreachable for a while. */
export interface AlertStoreStatus {
  kind: AlertStoreKind;
  up: boolean;
  /** Why it is down (the last error), when it is. */
  reason?: string;
}

/**
 * Thrown by every store method while the store cannot be reached: the API answers 503 with the
 * message, the `ui` output retries the batch later.
 */
export class StoreUnavailable extends Error {
  override name = 'StoreUnavailable';
}

/**
 * Where the page's alerts are kept. Ids are positive integers that strictly increase in the order
 * alerts become visible (committed), whichever process added them: they are the cursors of the
 * list (`before`) and of the live stream (`since`, Last-Event-ID).
 */
export interface AlertStore {
  readonly kind: AlertStoreKind;
  status(): AlertStoreStatus;
  /**
   * Stores alert events (newest last), all or none: when it rejects, nothing was stored and the
   * caller may retry the same batch. Resolves to the stored alerts with their ids.
   */
  add(events: readonly LogEvent[]): Promise<StoredAlert[]>;
  /** Matching alerts, newest first. */
  query(filter: AlertQuery, page: AlertPage): Promise<AlertList>;
  /** Matching alerts with an id above `after`, oldest first; at most the newest `limit` of them. */
  since(after: number, filter: AlertQuery, limit: number): Promise<StoredAlert[]>;
  get(id: number): Promise<StoredAlert | undefined>;
  /** Counts of matching alerts by priority and rule, and per time bucket over the last `windowMs`. */
  counts(filter: AlertQuery, windowMs: number, buckets: number): Promise<AlertStats>;
  /** Id of the newest alert kept, 0 when none. */
  newest(): Promise<number>;
  /**
   * Calls `listener` with every batch of alerts that becomes visible in the store, whoever added
   * it, in id order; returns the unsubscribe function.
   */
  subscribe(listener: (added: StoredAlert[]) => void): () => void;
  /** The mutes that have not ended, soonest to end first (the `muted` filter uses them). */
  mutes(): Promise<Mute[]>;
  /** Stores a mute, all or nothing; resolves to it with its id and creation time. */
  addMute(mute: NewMute): Promise<Mute>;
  /** Removes an active mute; resolves to it, or undefined when there is none with this id. */
  removeMute(id: number): Promise<Mute | undefined>;
  close(): Promise<void>;
}

export interface AlertStoreOptions {
  maxAlerts: number;
  /** Seconds an alert is kept after it arrived; 0 keeps it until maxAlerts pushes it out. */
  retention: number;
  /** SQLite file that mirrors the store (absent: memory only). */
  dbPath?: string;
  /** `memory` (or absent): this process's memory (and dbPath); a postgres:// URL: a shared database. */
  store?: string;
  /** Where a shared store reports whether it is up and how its writes go. */
  metrics?: Metrics;
  logger: Logger;
  /** Clock (ms since the epoch); tests move it. */
  now?: () => number;
}

/** Bumped when the table changes shape; a file from a newer version is refused rather than misread. */
const SCHEMA_VERSION = 1;

/** Values offered as filter choices, per kind. */
const MAX_VALUES = 1000;

interface Sqlite {
  db: SqliteDatabase;
  insert: Statement<[number, number, string, string, string]>;
  deleteBelow: Statement<[number]>;
}

/** The JSON of GET /api/v1/alerts/ID. */
export function detailJson(id: number, received: number, tag: string, time: string, recordJson: string): string {
  return `{"id":${id},"received":${received},"tag":${JSON.stringify(tag)},"time":${JSON.stringify(time)},"record":${recordJson}}`;
}

function entry(id: number, received: number, tag: string, time: string, recordJson: string, record: Record<string, unknown>): StoredAlert {
  return { summary: summarize(id, received, tag, record, time), json: detailJson(id, received, tag, time, recordJson) };
}

/** Opens the store the options name. */
export async function openAlertStore(opts: AlertStoreOptions): Promise<AlertStore> {
  if (opts.store === undefined || opts.store === 'memory') return MemoryAlertStore.open(opts);
  if (isPostgresUrl(opts.store)) {
    // Loaded only when configured, like the SQLite addon.
    const { PgAlertStore } = await import('./store-pg.js');
    return PgAlertStore.open({ ...opts, store: opts.store });
  }
  throw new Error(`ui.store: found ${JSON.stringify(opts.store.slice(0, 40))}, expected memory or a postgres:// URL`);
}

/** A PostgreSQL connection URL (`postgres://` or `postgresql://`, as libpq accepts). */
export function isPostgresUrl(s: string): boolean {
  return /^postgres(ql)?:\/\//i.test(s);
}

/** This process's alerts, in memory, optionally mirrored to a SQLite file. */
export class MemoryAlertStore implements AlertStore {
  readonly kind: AlertStoreKind;
  /** Oldest first; ids strictly increase. */
  private entries: StoredAlert[] = [];
  private nextId = 1;
  private readonly listeners = new Set<(added: StoredAlert[]) => void>();
  /** Lower-cased text for free-text search, built once per alert. */
  private readonly hay = new WeakMap<AlertSummary, string>();
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private readonly muteBook: MuteBook;

  private constructor(
    private readonly opts: AlertStoreOptions,
    private readonly sqlite: Sqlite | undefined,
  ) {
    this.now = opts.now ?? Date.now;
    this.muteBook = new MuteBook(this.now, sqlite?.db);
    this.kind = sqlite ? 'sqlite' : 'memory';
    if (opts.retention > 0) {
      // Age-based retention also applies while no alert arrives.
      this.timer = setInterval(() => this.prune(), Math.min(60_000, Math.max(1000, opts.retention * 100))).unref();
    }
  }

  /** Opens the store; with a dbPath, creates or reads the SQLite file and loads what retention keeps. */
  static async open(opts: AlertStoreOptions): Promise<MemoryAlertStore> {
    if (!opts.dbPath) return new MemoryAlertStore(opts, undefined);
    const sqlite = await openSqlite(opts.dbPath);
    const store = new MemoryAlertStore(opts, sqlite);
    try {
      store.load();
    } catch (e) {
      sqlite.db.close();
      throw e;
    }
    return store;
  }

  private load(): void {
    const { db } = this.sqlite!;
    const cutoff = this.opts.retention > 0 ? this.now() - this.opts.retention * 1000 : -Infinity;
    const last = db.prepare('SELECT MAX(id) AS id FROM alerts').get() as { id: number | null };
    this.nextId = (last.id ?? 0) + 1;
    const rows = db
      .prepare('SELECT id, received, tag, time, record FROM alerts WHERE id > ? AND received >= ? ORDER BY id')
      .all(this.nextId - 1 - this.opts.maxAlerts, Number.isFinite(cutoff) ? cutoff : -1) as Array<{
      id: number;
      received: number;
      tag: string;
      time: string;
      record: string;
    }>;
    let bad = 0;
    for (const r of rows) {
      let record: unknown;
      try {
        record = JSON.parse(r.record);
      } catch {
        record = undefined;
      }
      if (record === null || typeof record !== 'object' || Array.isArray(record)) {
        bad++;
        continue;
      }
      const e = entry(r.id, r.received, r.tag, r.time, r.record, record as Record<string, unknown>);
      this.entries.push(e);
      this.hay.set(e.summary, haystack(e.summary));
    }
    if (bad) this.opts.logger.warn({ file: this.opts.dbPath, rows: bad }, 'ui alert store: unreadable rows skipped');
    this.sqlite!.deleteBelow.run(this.entries[0]?.summary.id ?? this.nextId);
    this.opts.logger.info({ file: this.opts.dbPath, alerts: this.entries.length }, 'ui alert store loaded');
  }

  status(): AlertStoreStatus {
    return { kind: this.kind, up: true };
  }

  /** Id of the newest alert kept, 0 when none. */
  get newestId(): number {
    return this.entries[this.entries.length - 1]?.summary.id ?? 0;
  }

  async newest(): Promise<number> {
    return this.newestId;
  }

  get size(): number {
    return this.entries.length;
  }

  /**
   * Stores alert events (newest last). With SQLite the rows are written first, in one
   * transaction: when that throws, nothing was stored and the caller may retry.
   */
  async add(events: readonly LogEvent[]): Promise<StoredAlert[]> {
    return this.addSync(events);
  }

  addSync(events: readonly LogEvent[]): StoredAlert[] {
    if (events.length === 0) return [];
    const received = this.now();
    const added: StoredAlert[] = [];
    const rows: Array<[number, number, string, string, string]> = [];
    let id = this.nextId;
    for (const ev of events) {
      // The JSON text is the stored form; parsing it back gives a plain copy of the record
      // (BigInts and binary values already turned into JSON by toJSONLine).
      const json = recordJSON(ev.record);
      const time = ev.time.toISO();
      added.push(entry(id, received, ev.tag, time, json, JSON.parse(json) as Record<string, unknown>));
      rows.push([id++, received, ev.tag, time, json]);
    }
    if (this.sqlite) {
      const { db, insert } = this.sqlite;
      db.transaction(() => {
        for (const r of rows) insert.run(...r);
      })();
    }
    this.nextId = id;
    for (const a of added) {
      this.entries.push(a);
      this.hay.set(a.summary, haystack(a.summary));
    }
    this.prune();
    for (const l of this.listeners) l(added);
    return added;
  }

  /** Drops alerts beyond maxAlerts and older than retention. */
  prune(): void {
    let drop = Math.max(0, this.entries.length - this.opts.maxAlerts);
    if (this.opts.retention > 0) {
      const cutoff = this.now() - this.opts.retention * 1000;
      while (drop < this.entries.length && this.entries[drop]!.summary.received < cutoff) drop++;
    }
    if (drop === 0) return;
    this.entries.splice(0, drop);
    try {
      this.sqlite?.deleteBelow.run(this.entries[0]?.summary.id ?? this.nextId);
    } catch (e) {
      // Rows left behind are dropped again on the next prune or at the next load.
      this.opts.logger.error({ file: this.opts.dbPath, err: (e as Error).message }, 'ui alert store: cannot delete expired rows');
    }
  }

  private index(id: number): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entries[mid]!.summary.id < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  async get(id: number): Promise<StoredAlert | undefined> {
    return this.getSync(id);
  }

  getSync(id: number): StoredAlert | undefined {
    const e = this.entries[this.index(id)];
    return e && e.summary.id === id ? e : undefined;
  }

  private matcher(q: AlertQuery): (e: StoredAlert) => boolean {
    const m = compileQuery(q, { text_of: (s) => this.hay.get(s) ?? haystack(s), mutes: this.muteBook.active(), now: this.now() });
    return (e) => m(e.summary);
  }

  async query(filter: AlertQuery, page: AlertPage): Promise<AlertList> {
    return { ...this.list(filter, page.limit, page.before), total: this.size };
  }

  /** Matching alerts, newest first, older than `before` (an id) when given. */
  list(q: AlertQuery, limit: number, before?: number): { alerts: AlertSummary[]; more: boolean } {
    this.prune();
    const m = this.matcher(q);
    const alerts: AlertSummary[] = [];
    const start = before === undefined ? this.entries.length - 1 : this.index(before) - 1;
    for (let i = start; i >= 0; i--) {
      const e = this.entries[i]!;
      if (!m(e)) continue;
      if (alerts.length === limit) return { alerts, more: true };
      alerts.push(e.summary);
    }
    return { alerts, more: false };
  }

  async since(after: number, q: AlertQuery, limit: number): Promise<StoredAlert[]> {
    return this.sinceSync(after, q, limit);
  }

  /** Matching alerts with an id above `after`, oldest first; at most the newest `limit` of them. */
  sinceSync(after: number, q: AlertQuery, limit: number): StoredAlert[] {
    const m = this.matcher(q);
    const out: StoredAlert[] = [];
    for (let i = this.entries.length - 1; i >= 0 && out.length < limit; i--) {
      const e = this.entries[i]!;
      if (e.summary.id <= after) break;
      if (m(e)) out.push(e);
    }
    return out.reverse();
  }

  async counts(q: AlertQuery, windowMs: number, buckets: number): Promise<AlertStats> {
    return this.stats(q, windowMs, buckets);
  }

  /** Counts of matching alerts by priority and rule, and per time bucket over the last `windowMs`. */
  stats(q: AlertQuery, windowMs: number, buckets: number): AlertStats {
    this.prune();
    const now = this.now();
    const step = Math.max(1000, Math.ceil(windowMs / buckets / 1000) * 1000);
    const end = Math.ceil((now + 1) / step) * step;
    const start = end - buckets * step;
    const m = this.matcher(q);
    // Facet counts: each ignores its own filter, so the other choices keep their numbers.
    const { priority: _p, ...noPriority } = q;
    const { rule: _r, ...noRule } = q;
    const mPriority = this.matcher(noPriority);
    const mRule = this.matcher(noRule);
    const byPriority: Record<string, number> = Object.create(null) as Record<string, number>;
    const byRule: Record<string, number> = Object.create(null) as Record<string, number>;
    const series = new ChartSeries(buckets);
    const rules = new Set<string>();
    const tags = new Set<string>();
    const namespaces = new Set<string>();
    const users = new Set<string>();
    const hostnames = new Set<string>();
    const sources = new Set<string>();
    let total = 0;
    for (const e of this.entries) {
      const s = e.summary;
      if (rules.size < MAX_VALUES) rules.add(s.rule);
      for (const t of s.tags) if (tags.size < MAX_VALUES) tags.add(t);
      if (s.namespace !== undefined && namespaces.size < MAX_VALUES) namespaces.add(s.namespace);
      if (s.user !== undefined && users.size < MAX_VALUES) users.add(s.user);
      if (s.hostname !== undefined && hostnames.size < MAX_VALUES) hostnames.add(s.hostname);
      if (s.source !== '' && sources.size < MAX_VALUES) sources.add(s.source);
      if (mPriority(e)) byPriority[s.priority] = (byPriority[s.priority] ?? 0) + 1;
      if (mRule(e)) byRule[s.rule] = (byRule[s.rule] ?? 0) + 1;
      if (!m(e)) continue;
      total++;
      if (s.received >= start && s.received < end) series.add(Math.floor((s.received - start) / step), s.priority, s.rule);
    }
    const sorted = (s: Set<string>) => [...s].sort();
    return {
      total,
      byPriority,
      byRule,
      values: { rules: sorted(rules), tags: sorted(tags), namespaces: sorted(namespaces), users: sorted(users), hostnames: sorted(hostnames), sources: sorted(sources) },
      series: { start, step, ...series.result() },
    };
  }

  async mutes(): Promise<Mute[]> {
    return this.muteBook.active();
  }

  async addMute(mute: NewMute): Promise<Mute> {
    return this.muteBook.add(mute);
  }

  async removeMute(id: number): Promise<Mute | undefined> {
    return this.muteBook.remove(id);
  }

  /** Calls `fn` with every batch of added alerts; returns the unsubscribe function. */
  subscribe(fn: (added: StoredAlert[]) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async close(): Promise<void> {
    this.closeSync();
  }

  closeSync(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
    if (this.sqlite?.db.open) this.sqlite.db.close();
  }
}

async function openSqlite(path: string): Promise<Sqlite> {
  // Loaded only when a file is configured: the native addon is not needed otherwise.
  const { default: Database } = await import('better-sqlite3');
  mkdirSync(dirname(path), { recursive: true });
  let db: SqliteDatabase;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new Error(`written by a newer logwarden (schema ${version}, this one reads ${SCHEMA_VERSION})`);
    }
    db.exec('CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY, received INTEGER NOT NULL, tag TEXT NOT NULL, time TEXT NOT NULL, record TEXT NOT NULL)');
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  } catch (e) {
    throw new Error(`ui.db_path ${path}: ${(e as Error).message}`);
  }
  return {
    db,
    insert: db.prepare('INSERT OR REPLACE INTO alerts (id, received, tag, time, record) VALUES (?, ?, ?, ?, ?)'),
    deleteBelow: db.prepare('DELETE FROM alerts WHERE id < ?'),
  };
}

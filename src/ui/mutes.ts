/**
 * Mutes (acknowledged alert groups) of the memory/SQLite store: kept in memory, written through
 * to a `mutes` table in the same SQLite file when there is one, dropped once they end.
 */
import type { Database as SqliteDatabase, Statement } from 'better-sqlite3';
import type { Mute, NewMute } from './alerts.js';

interface MuteRow {
  id: number;
  rule: string;
  namespace: string | null;
  user: string | null;
  created: number;
  until: number;
  by: string | null;
  comment: string | null;
  silence: string | null;
}

function fromRow(r: MuteRow): Mute {
  const m: Mute = { id: r.id, rule: r.rule, created: r.created, until: r.until };
  if (r.namespace !== null) m.namespace = r.namespace;
  if (r.user !== null) m.user = r.user;
  if (r.by !== null) m.by = r.by;
  if (r.comment !== null) m.comment = r.comment;
  if (r.silence !== null) m.silence = r.silence;
  return m;
}

export class MuteBook {
  private list: Mute[] = [];
  private nextId = 1;
  private readonly sql:
    | { insert: Statement<[string, string | null, string | null, number, number, string | null, string | null, string | null]>; remove: Statement<[number]>; expire: Statement<[number]> }
    | undefined;

  constructor(
    private readonly now: () => number,
    db?: SqliteDatabase,
  ) {
    if (!db) return;
    // A table of its own: files without it (older logwarden) gain it, and older versions ignore it.
    // AUTOINCREMENT: the id of a removed mute is never given again (a stale un-mute cannot hit a new one).
    db.exec(
      'CREATE TABLE IF NOT EXISTS mutes (id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL, namespace TEXT, user TEXT, created INTEGER NOT NULL, until INTEGER NOT NULL, by TEXT, comment TEXT, silence TEXT)',
    );
    this.sql = {
      insert: db.prepare('INSERT INTO mutes (rule, namespace, user, created, until, by, comment, silence) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      remove: db.prepare('DELETE FROM mutes WHERE id = ?'),
      expire: db.prepare('DELETE FROM mutes WHERE until <= ?'),
    };
    this.list = (db.prepare('SELECT * FROM mutes WHERE until > ? ORDER BY until, id').all(this.now()) as MuteRow[]).map(fromRow);
    this.sql.expire.run(this.now());
  }

  /** The mutes not yet ended, soonest to end first. */
  active(): Mute[] {
    const now = this.now();
    if (this.list.some((m) => m.until <= now)) {
      this.list = this.list.filter((m) => m.until > now);
      try {
        this.sql?.expire.run(now);
      } catch {
        // Ended rows left in the file are not loaded again (until <= now) and go at the next expiry.
      }
    }
    return this.list;
  }

  /** Stores a mute (written to the file first: when that throws, nothing was stored). */
  add(n: NewMute): Mute {
    const created = this.now();
    let id = this.nextId;
    if (this.sql) {
      const r = this.sql.insert.run(n.rule, n.namespace ?? null, n.user ?? null, created, n.until, n.by ?? null, n.comment ?? null, n.silence ?? null);
      id = Number(r.lastInsertRowid);
    }
    this.nextId = id + 1;
    const m: Mute = { ...n, id, created };
    this.list = [...this.list, m].sort((a, b) => a.until - b.until || a.id - b.id);
    return m;
  }

  /** The removed mute, or undefined when there is no such active mute. */
  remove(id: number): Mute | undefined {
    const m = this.active().find((x) => x.id === id);
    if (!m) return undefined;
    this.sql?.remove.run(id);
    this.list = this.list.filter((x) => x !== m);
    return m;
  }
}

/**
 * The event a rule set is evaluated on: one Kubernetes audit event as the k8saudit plugin hands
 * it to Falco's engine (the decoded object, or a view over its msgpack bytes), its time from
 * stageTimestamp, Falco's renderings of a time (evt.time, evt.rawtime), and the host name rules
 * see (evt.hostname).
 */
import { hostname as osHostname } from 'node:os';
import { UNSUPPORTED, type RecordView } from '../core/record-view.js';

/**
 * One audit event as rules see it: the event object, or a view over its msgpack bytes (fields
 * are then read by path without decoding the event; `obj` decodes it for the few fields that
 * take the whole event), and its time, parsed from stageTimestamp only when something needs it
 * (jevt.rawtime, evt.*, an alert); see eventTime().
 */
export class AuditEvent {
  #obj: Record<string, unknown> | undefined;
  /** 0: not read yet, 1: the event has a top-level auditID, 2: it has none. */
  auditID: 0 | 1 | 2 = 0;
  /** 0: not parsed yet, 1: sec/nsec valid, 2: stageTimestamp missing or not RFC 3339. */
  timeState: 0 | 1 | 2 = 0;
  sec = 0;
  nsec = 0;

  constructor(
    obj: Record<string, unknown> | undefined,
    /** Over the event's bytes while they are read in place; null once decoded. */
    public view: RecordView | null,
    /** Falco's evt.hostname. */
    public hostname: string,
  ) {
    this.#obj = obj;
  }

  /** Points this event at the next one read through `view` (one object for every event). */
  rebind(view: RecordView): this {
    this.#obj = undefined;
    this.view = view;
    this.auditID = 0;
    this.timeState = 0;
    this.sec = 0;
    this.nsec = 0;
    return this;
  }

  /** The event object (decoded from the bytes on first use). */
  get obj(): Record<string, unknown> {
    if (this.#obj === undefined) this.#obj = this.view!.decode();
    return this.#obj;
  }

  /** Top-level `k` (a fixed key, never an Object.prototype name). */
  top(k: string): unknown {
    if (this.view === null) return this.obj[k];
    return this.topView(k);
  }

  /** The value at fixed keys `keys` (at() at each step). */
  at(keys: readonly string[]): unknown {
    if (this.view === null) {
      const o = this.obj;
      if (keys.length === 2) {
        const x = o[keys[0]!];
        return x !== null && typeof x === 'object' ? (x as Record<string, unknown>)[keys[1]!] : undefined;
      }
      return path(o, keys);
    }
    return this.atView(keys);
  }

  /** The value at rule-given keys `keys` (atOwn at each step). */
  atOwn(keys: readonly string[]): unknown {
    if (this.view !== null) return this.atView(keys);
    let x: unknown = this.obj;
    for (let i = 0; i < keys.length && x !== undefined; i++) x = atOwn(x, keys[i]!);
    return x;
  }

  private topView(k: string): unknown {
    try {
      return this.view!.getTop(k);
    } catch (e) {
      this.decoded(e);
    }
    return this.obj[k];
  }

  private atView(keys: readonly string[]): unknown {
    try {
      return this.view!.get(keys);
    } catch (e) {
      this.decoded(e);
    }
    // The object from here on: at() and atOwn() agree on the own, non-prototype keys of a record.
    let x: unknown = this.obj;
    for (let i = 0; i < keys.length && x !== undefined; i++) x = atOwn(x, keys[i]!);
    return x;
  }

  /** The view could not answer byte for byte: the event is decoded and read as an object from now on. */
  private decoded(e: unknown): void {
    if (e !== UNSUPPORTED) throw e;
    this.#obj = this.view!.decode();
    this.view = null;
  }
}

export function newAuditEvent(obj: Record<string, unknown>, hostname: string): AuditEvent {
  return new AuditEvent(obj, null, hostname);
}

/** An audit event read through `view` (pointed at its bytes) until a field needs the whole event. */
export function viewAuditEvent(view: RecordView, hostname: string): AuditEvent {
  return new AuditEvent(undefined, view, hostname);
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

// Audit events arrive in time order: the seconds part of consecutive stageTimestamps is mostly
// the same, so the last one parsed is remembered and only the fraction is read.
let lastPrefix = '';
let lastSec = 0;

/**
 * Parses the event's stageTimestamp (RFC 3339, as Go's time.RFC3339Nano) into sec/nsec once;
 * false when it is missing or invalid (the k8saudit plugin drops such events).
 */
export function eventTime(ev: AuditEvent): boolean {
  if (ev.timeState !== 0) return ev.timeState === 1;
  const ts = ev.top('stageTimestamp');
  if (typeof ts !== 'string') {
    ev.timeState = 2;
    return false;
  }
  // Fast path: same second as the previous event, UTC, fraction of digits then 'Z'.
  if (ts.length > 20 && ts.charCodeAt(ts.length - 1) === 90 /* Z */ && ts.charCodeAt(19) === 46 /* . */ && ts.startsWith(lastPrefix) && lastPrefix.length === 19) {
    let nsec = 0;
    let digits = 0;
    let ok = true;
    for (let i = 20; i < ts.length - 1; i++) {
      const d = ts.charCodeAt(i) - 48;
      if (d < 0 || d > 9) {
        ok = false;
        break;
      }
      if (digits < 9) {
        nsec = nsec * 10 + d;
        digits++;
      }
    }
    if (ok && ts.length > 21) {
      for (; digits < 9; digits++) nsec *= 10;
      ev.sec = lastSec;
      ev.nsec = nsec;
      ev.timeState = 1;
      return true;
    }
  }
  const m = RFC3339.exec(ts);
  if (!m) {
    ev.timeState = 2;
    return false;
  }
  let sec = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) / 1000;
  if (m[9]) sec -= (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 3600 + Number(m[11]) * 60);
  if (!Number.isFinite(sec)) {
    ev.timeState = 2;
    return false;
  }
  if (m[8]) {
    lastPrefix = ts.slice(0, 19);
    lastSec = sec;
  }
  ev.sec = sec;
  ev.nsec = m[7] ? Number(m[7].padEnd(9, '0')) : 0;
  ev.timeState = 1;
  return true;
}

const hasOwn = Object.prototype.hasOwnProperty;

/** Child by a fixed key (never an Object.prototype name): no own-property check needed. */
export function at(v: unknown, k: string): unknown {
  return v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
}

/** Child by a key that comes from a rule (a JSON pointer segment): own properties only. */
function atOwn(v: unknown, k: string): unknown {
  if (v === null || typeof v !== 'object') return undefined;
  if (Array.isArray(v)) {
    if (!/^(0|[1-9][0-9]*)$/.test(k)) return undefined;
    return v[Number(k)];
  }
  return hasOwn.call(v, k) ? (v as Record<string, unknown>)[k] : undefined;
}

/** The value at fixed keys (at() at each step). */
export function path(obj: unknown, keys: readonly string[]): unknown {
  let v = obj;
  for (let i = 0; i < keys.length && v !== undefined; i++) v = at(v, keys[i]!);
  return v;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

let todSec = NaN;
let todText = '';

/** Falco's evt.time: local time of day with nanoseconds, `HH:MM:SS.nnnnnnnnn`. */
export function timeOfDay(sec: number, nsec: number): string {
  if (sec !== todSec) {
    const d = new Date(sec * 1000);
    todText = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    todSec = sec;
  }
  return `${todText}.${pad(nsec, 9)}`;
}

/** Local date of `sec`, `YYYY-MM-DD`. */
export function localDate(sec: number): string {
  const d = new Date(sec * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Local UTC offset at `sec`, `+HHMM`. */
export function tzOffset(sec: number): string {
  const off = -new Date(sec * 1000).getTimezoneOffset();
  const a = Math.abs(off);
  return `${off < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}${pad(a % 60)}`;
}

/** Nanoseconds since the epoch as decimal text. */
export function rawTime(sec: number, nsec: number): string {
  return sec === 0 ? String(nsec) : `${sec}${pad(nsec, 9)}`;
}

/** evt.hostname unless configured: this machine's host name. */
export const DEFAULT_HOSTNAME = osHostname();

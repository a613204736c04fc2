/**
 * Kubernetes audit events (audit.k8s.io Event / EventList) inside log records.
 *
 * The apiserver's log backend writes one Event per line as JSON; Fluent Bit's `tail` sends that
 * line as a string under `log`, and after a `parser` filter the record is the Event itself. The
 * webhook backend (and `kubectl get --raw` dumps) produce an EventList whose `items` are Events.
 * These helpers take any of those shapes and return the Events, without copying them.
 */
import { nestedDeeperThan } from '../core/json.js';
import { MAX_DEPTH } from '../core/msgpack-scan.js';
import { EventTime } from '../core/event.js';

export type AuditEvent = Record<string, unknown>;

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function isAuditApiVersion(v: unknown): boolean {
  return typeof v === 'string' && v.startsWith('audit.k8s.io/');
}

/** `kind: Event` with `apiVersion: audit.k8s.io/<version>`. */
export function isAuditEvent(v: unknown): v is AuditEvent {
  return isMap(v) && v.kind === 'Event' && isAuditApiVersion(v.apiVersion);
}

/** `kind: EventList` with `apiVersion: audit.k8s.io/<version>` and an `items` array. */
export function isAuditEventList(v: unknown): v is { kind: 'EventList'; items: unknown[] } & Record<string, unknown> {
  return isMap(v) && v.kind === 'EventList' && isAuditApiVersion(v.apiVersion) && Array.isArray(v.items);
}

/**
 * The audit Events a value holds: `[value]` for an Event, the items of an EventList, the
 * elements of an array (each an Event or EventList). Items that are not Events are skipped, and
 * `skipped` (when given) counts them. Returns null when the value holds no Event shape at all
 * (not an Event, not an EventList, not an array), so callers can tell "not audit data" from
 * "an empty list".
 */
export function expandAuditEvents(value: unknown, skipped?: { count: number }): AuditEvent[] | null {
  if (isAuditEvent(value)) return [value];
  const items = isAuditEventList(value) ? value.items : Array.isArray(value) ? value : null;
  if (items === null) return null;
  const out: AuditEvent[] = [];
  for (const item of items) {
    if (isAuditEvent(item)) out.push(item);
    else if (isAuditEventList(item)) {
      for (const inner of item.items) {
        if (isAuditEvent(inner)) out.push(inner);
        else if (skipped) skipped.count++;
      }
    } else if (skipped) skipped.count++;
  }
  return out;
}

/** Where the audit value of a record came from. */
export type AuditSource =
  /** The record itself (no key_name). */
  | 'record'
  /** A map under key_name. */
  | 'map'
  /** A JSON string (or binary holding JSON text) under key_name, parsed here. */
  | 'string';

export interface AuditValue {
  value: unknown;
  source: AuditSource;
}

export type ReadAuditResult = AuditValue | { error: 'missing_key' | 'not_json' | 'wrong_type' | 'too_deep'; detail?: string };

/**
 * The value that should hold audit data: the record itself when `keyName` is unset, else the
 * value under `keyName` (a top-level key, as Fluent Bit's parser filter reads `key_name`),
 * parsed when it is a string. JSON.parse keeps a `__proto__` key as an own data property, so a
 * hostile line cannot change any prototype.
 */
export function readAuditValue(record: Record<string, unknown>, keyName?: string): ReadAuditResult {
  if (keyName === undefined) return { value: record, source: 'record' };
  if (!Object.hasOwn(record, keyName)) return { error: 'missing_key' };
  const raw = record[keyName];
  if (isMap(raw) || Array.isArray(raw)) return { value: raw, source: 'map' };
  let text: string;
  if (typeof raw === 'string') text = raw;
  else if (raw instanceof Uint8Array) text = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8');
  else return { error: 'wrong_type', detail: raw === null ? 'null' : typeof raw };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { error: 'not_json', detail: (e as Error).message };
  }
  // As the inputs refuse: evaluating or serialising a deeper value would overflow the stack.
  if (nestedDeeperThan(value, MAX_DEPTH)) return { error: 'too_deep', detail: `nested deeper than ${MAX_DEPTH} levels` };
  return { value, source: 'string' };
}

/**
 * The time an Event describes: its `stageTimestamp` (when it reached the stage it was written
 * at, the time the apiserver's log backend writes the line), else `requestReceivedTimestamp`;
 * null when neither is an RFC 3339 timestamp.
 */
export function auditEventTime(event: AuditEvent): EventTime | null {
  for (const key of ['stageTimestamp', 'requestReceivedTimestamp'] as const) {
    const v = event[key];
    if (typeof v === 'string') {
      const t = EventTime.fromISO(v);
      if (t) return t;
    }
  }
  return null;
}

/**
 * The audit Events in a webhook body. What the API server sends differs from what its log
 * backend writes: the webhook's EventList carries `kind`/`apiVersion` only at the top, its items
 * have none (the codec types the list, not its elements), and an API server built on
 * k8s.io/apiserver without version information sends `{"metadata":{},"items":[...]}`. So, as
 * Falco's k8saudit plugin does (ParseAuditEventsJSON), an item of a list is an Event by being in
 * the list; logwarden only asks it to be an object with an `auditID` (set on every Event) and
 * not to say it is something else.
 *
 * Each Event leaves with `kind: Event` and an `apiVersion` (its list's, else audit.k8s.io/v1),
 * so downstream stages see the shape the log backend writes one per line (the audit_policy and
 * detect filters recognise Events by them).
 */
export type AuditEvent = Record<string, unknown>;

function isMap(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

const auditVersion = (v: unknown) => v === undefined || (typeof v === 'string' && v.startsWith('audit.k8s.io/'));

/** An Event as an item of a list: an object with a string auditID, kind Event (or none), an audit apiVersion (or none). */
function isItem(v: unknown): v is AuditEvent {
  return isMap(v) && typeof v.auditID === 'string' && (v.kind === undefined || v.kind === 'Event') && auditVersion(v.apiVersion);
}

/** A body that is one Event: kind Event, an audit apiVersion or none (Falco's trace files leave it out). */
function isEvent(v: unknown): v is AuditEvent {
  return isMap(v) && v.kind === 'Event' && auditVersion(v.apiVersion);
}

/** An EventList, typed (kind EventList, audit apiVersion) or untyped (no kind, no apiVersion). */
function isList(v: unknown): v is { items: unknown[] } {
  if (!isMap(v) || !Array.isArray(v.items)) return false;
  return (v.kind === 'EventList' && auditVersion(v.apiVersion) && v.apiVersion !== undefined) || (v.kind === undefined && v.apiVersion === undefined);
}

const DEFAULT_VERSION = 'audit.k8s.io/v1';

/** Sets a missing kind / apiVersion in place (the Event is the record; nothing else holds it). */
function typed(e: AuditEvent, apiVersion: unknown): AuditEvent {
  if (e.kind === undefined) e.kind = 'Event';
  if (e.apiVersion === undefined) e.apiVersion = typeof apiVersion === 'string' ? apiVersion : DEFAULT_VERSION;
  return e;
}

export interface Expanded {
  events: AuditEvent[];
  /** List items (or array elements) that are not Events. */
  skipped: number;
}

/**
 * The Events of a body: an Event, an EventList, or an array of those (Falco accepts arrays).
 * Null when the body is none of these shapes.
 */
export function expandWebhookBody(value: unknown): Expanded | null {
  if (isEvent(value)) return { events: [typed(value, undefined)], skipped: 0 };
  if (isList(value)) {
    const out: Expanded = { events: [], skipped: 0 };
    const version = (value as Record<string, unknown>).apiVersion;
    for (const item of value.items) {
      if (isItem(item)) out.events.push(typed(item, version));
      else out.skipped++;
    }
    return out;
  }
  if (Array.isArray(value)) {
    const out: Expanded = { events: [], skipped: 0 };
    for (const v of value) {
      const inner = isEvent(v) || isList(v) ? expandWebhookBody(v) : null;
      if (inner === null) out.skipped++;
      else {
        for (const e of inner.events) out.events.push(e);
        out.skipped += inner.skipped;
      }
    }
    return out;
  }
  return null;
}

/**
 * Audit events as the k8saudit plugin accepts them (source.go parseAuditEventsJSON): an object
 * with `"kind":"Event"`, an `"kind":"EventList"` whose `items` are events, or a JSON array of
 * those; anything else is "data not recognized as a k8s audit event".
 */
export const NOT_AUDIT = 'data not recognized as a k8s audit event';

/** The audit events in a decoded JSON value, or the reason it holds none. */
export function splitAuditEvents(value: unknown): Array<Record<string, unknown>> | string {
  if (Array.isArray(value)) {
    const out: Array<Record<string, unknown>> = [];
    for (const v of value) {
      const sub = splitAuditEvents(v);
      if (typeof sub === 'string') return sub;
      for (const x of sub) out.push(x);
    }
    return out;
  }
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const o = value as Record<string, unknown>;
    if (o.kind === 'Event') return [o];
    if (o.kind === 'EventList') {
      const items = o.items;
      if (Array.isArray(items)) return items.filter((x): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x));
    }
  }
  return NOT_AUDIT;
}

export interface EventsText {
  /** Decoded JSON values with the 1-based line they start on. */
  values: Array<{ line: number; value: unknown }>;
  /** Lines that are not JSON. */
  errors: Array<{ line: number; message: string }>;
}

/**
 * Reads an events file as the k8saudit plugin does: one JSON value per line, empty lines
 * skipped. A file that is one (pretty-printed) JSON value spread over several lines is read as
 * that value.
 */
export function parseEventsText(text: string): EventsText {
  const values: EventsText['values'] = [];
  const errors: EventsText['errors'] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    try {
      values.push({ line: i + 1, value: JSON.parse(line) });
    } catch (e) {
      errors.push({ line: i + 1, message: `invalid JSON: ${(e as Error).message}` });
    }
  }
  if (errors.length) {
    try {
      const first = lines.findIndex((l) => l.trim() !== '');
      return { values: [{ line: first + 1, value: JSON.parse(text) }], errors: [] };
    } catch {
      // not one document either: report the line errors
    }
  }
  return { values, errors };
}

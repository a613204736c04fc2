/**
 * A Falco alert event as the detect filter emits it (Falco's JSON output shape), tagged `falco`:
 * the fixture of the Alertmanager output and alerts page tests.
 */
import { EventTime, type LogEvent } from '../../src/core/event.js';

export interface AlertOptions {
  /** Event time (and the record's `time`); 1700000000.123456789 by default. */
  time?: EventTime;
  tags?: string[];
  /** The output line; by default `PRIORITY RULE (user=… ns=…)` from the fields. */
  output?: string;
  /** More record keys, after the usual ones. */
  extra?: Record<string, unknown>;
}

export function falcoAlert(rule: string, priority: string, fields: Record<string, unknown> = {}, o: AlertOptions = {}): LogEvent {
  const time = o.time ?? new EventTime(1_700_000_000, 123_456_789);
  return {
    tag: 'falco',
    time,
    record: {
      time: time.toISO(),
      rule,
      priority,
      source: 'k8s_audit',
      tags: o.tags ?? ['k8s', 'NIST_800-53_AC-6'],
      output: o.output ?? `${priority} ${rule} (user=${String(fields['ka.user.name'] ?? '<NA>')} ns=${String(fields['ka.target.namespace'] ?? '<NA>')})`,
      output_fields: fields,
      hostname: 'node-1',
      ...o.extra,
    },
  };
}

/** A clock tests move by hand (`now` in milliseconds). */
export class Clock {
  t = 1_800_000_000_000;
  now = () => this.t;
}

/**
 * audit_policy: applies a Kubernetes audit Policy (audit.k8s.io/v1) to audit Events that an
 * apiserver already wrote, usually to filter them again with a stricter policy before they are
 * stored: drop noisy requests, drop request/response bodies, strip managedFields.
 */
import { resolve } from 'node:path';
import { expandAuditEvents, isAuditEvent, readAuditValue, auditEventTime, type AuditEvent, type AuditSource } from '../../k8s-audit/audit-event.js';
import { ConfigError } from '../../config/errors.js';
import type { OptionTable, RawSection } from '../../config/schema.js';
import type { LogEvent, LogRecord } from '../../core/event.js';
import { definePlugin, type FilterInstance, type PluginConfig } from '../../core/plugin.js';
import { setField } from '../../core/record-accessor.js';
import { CompiledPolicy, copyWithout, withKey, type ViewDecision } from './checker.js';
import { sharedView, UNSUPPORTED, type Edit } from '../../core/record-view.js';
import { WireEvent } from '../../core/wire-event.js';
import { LEVELS, loadPolicyFile, parseInlinePolicy, type Policy } from './policy.js';

export type AuditPolicyConfig = PluginConfig<'filter', typeof options>;

function sourcePos(section: RawSection, key: string) {
  return section.valuePos[key] ?? section.keyPos[key] ?? section.pos;
}

/** Reads the configured policy; throws ConfigError / ConfigErrors with positions. */
export function readPolicy(config: AuditPolicyConfig, section: RawSection): Policy {
  const hasFile = config.policy_file !== undefined;
  const hasInline = config.policy !== undefined && config.policy !== null;
  if (hasFile === hasInline) {
    throw new ConfigError(
      hasFile ? 'set policy_file or policy, not both' : 'set policy_file (a Policy YAML file) or policy (an inline Policy map)',
      hasFile ? (section.keyPos.policy ?? section.pos) : section.pos,
      hasFile ? 'policy' : 'policy_file',
    );
  }
  if (hasFile) return loadPolicyFile(resolve(section.baseDir, config.policy_file!), 'policy_file', sourcePos(section, 'policy_file'));
  return parseInlinePolicy(config.policy, 'policy', sourcePos(section, 'policy'));
}

const RESULTS = ['kept', 'dropped'] as const;
/** Longest quiet time between two warnings about records that hold no audit Event. */
const WARN_EVERY_MS = 60_000;

const options = {
  policy_file: { type: 'string', description: 'Policy YAML file (audit.k8s.io/v1 kind Policy), relative to the config file' },
  policy: { type: 'any', description: 'Inline Policy: a YAML map (omitStages, omitManagedFields, rules) or its YAML text; instead of policy_file' },
  key_name: {
    type: 'string',
    description: 'Key holding the audit Event (a JSON string, as tail sends it under log, or a map); unset: the record is the Event',
  },
  reserve_data: {
    type: 'bool',
    default: false,
    description: "With key_name holding a JSON string: keep the record's other keys next to the Event's fields (as the parser filter's reserve_data)",
  },
  non_audit: {
    type: 'enum',
    values: ['pass', 'drop'],
    default: 'pass',
    description: 'What happens to records that hold no audit Event: pass unchanged, or drop',
  },
} as const satisfies OptionTable;

export const auditPolicy = definePlugin({
  kind: 'filter',
  name: 'audit_policy',
  description: 'Applies a Kubernetes audit Policy (audit.k8s.io/v1) to audit Events: drops or reduces them by rule',
  options,
  prepare(config, section) {
    if (config.reserve_data && config.key_name === undefined) {
      throw new ConfigError('reserve_data keeps the keys around the Event under key_name; set key_name', sourcePos(section, 'reserve_data'), 'reserve_data');
    }
    return { config, policy: new CompiledPolicy(readPolicy(config, section)) };
  },
  create({ config, policy: checker }, ctx): FilterInstance {
    const keyName = config.key_name;
    const dropNonAudit = config.non_audit === 'drop';
    const nonAuditMetric = ctx.metrics
      .counter('logwarden_audit_policy_non_audit_records_total', 'Records an audit_policy filter found no audit Event in (passed or dropped per non_audit)', ['name'])
      .labels({ name: ctx.id });
    const eventsMetric = ctx.metrics.counter(
      'logwarden_audit_policy_events_total',
      'Audit Events through an audit_policy filter by resulting level (None: no rule or a None rule) and result (dropped at another level: omitted stage)',
      ['name', 'level', 'result'],
    );
    const byLevel = LEVELS.map((level) => RESULTS.map((result) => eventsMetric.labels({ name: ctx.id, level, result })));
    const counts = new Array<number>(LEVELS.length * RESULTS.length).fill(0);
    const rank = new Map<string, number>(LEVELS.map((l, i) => [l, i]));

    let lastWarn = 0;
    let suppressed = 0;
    const warnNonAudit = (reason: string, tag: string) => {
      const now = Date.now();
      if (now - lastWarn < WARN_EVERY_MS) {
        suppressed++;
        return;
      }
      ctx.logger.warn(
        { tag, reason, suppressed, non_audit: config.non_audit },
        `record holds no audit Event (${reason}); ${dropNonAudit ? 'dropped' : 'passed unchanged'}${keyName === undefined ? '' : ` (key_name ${keyName})`}`,
      );
      lastWarn = now;
      suppressed = 0;
    };

    /** The record an output Event gets, given where the audit value came from. */
    const recordFor = (record: LogRecord, source: AuditSource, event: AuditEvent): LogRecord => {
      if (source === 'record') return event;
      if (source === 'map') return withKey(record, keyName!, event);
      if (!config.reserve_data) return event;
      // The parser filter's reserve_data: the record's other keys, then the parsed fields.
      const out = copyWithout(record, keyName!);
      for (const k of Object.keys(event)) setField(out, k, event[k]);
      return out;
    };

    // Records still in bytes are read through a view; the level cut is recorded as edits.
    const view = sharedView;
    const d: ViewDecision = { rule: -1, level: 'None', keep: false, dropRequest: false, dropResponse: false, setLevel: null, strip: [] };
    const dropRequest: Edit = { op: 'remove', path: ['requestObject'] };
    const dropResponse: Edit = { op: 'remove', path: ['responseObject'] };
    const setLevel = new Map<string, Edit>(LEVELS.map((l) => [l, { op: 'put', key: 'level', value: l, move: false }]));
    /** Decides an Event from its bytes: 1 kept, 0 dropped, -1 when it must be decoded. */
    const fromBytes = (e: WireEvent): number => {
      try {
        if (!e.open(view)) return -1;
        const kind = view.getTop('kind');
        const api = view.getTop('apiVersion');
        if (kind !== 'Event' || typeof api !== 'string' || !api.startsWith('audit.k8s.io/')) return -1;
        if (!checker.applyView(view, d)) return -1;
      } catch (err) {
        if (err === UNSUPPORTED) return -1;
        throw err;
      }
      counts[rank.get(d.level)! * 2 + (d.keep ? 0 : 1)]!++;
      if (!d.keep) return 0;
      if (d.dropRequest) e.edit(dropRequest);
      if (d.dropResponse) e.edit(dropResponse);
      for (const path of d.strip) e.edit({ op: 'remove', path });
      if (d.setLevel !== null) e.edit(setLevel.get(d.setLevel)!);
      return 1;
    };

    return {
      filter(events) {
        const out: LogEvent[] = [];
        let nonAudit = 0;
        for (const e of events) {
          if (keyName === undefined && e instanceof WireEvent && e.isBytes) {
            const kept = fromBytes(e);
            if (kept === 1) out.push(e);
            if (kept >= 0) continue;
          }
          let read = readAuditValue(e.record, keyName);
          // A record that is itself an Event (parsed earlier in the pipeline) is still filtered:
          // passing it unchanged could let through bodies the policy removes.
          if ('error' in read && read.error === 'missing_key' && isAuditEvent(e.record)) read = { value: e.record, source: 'record' };
          if ('error' in read) {
            nonAudit++;
            warnNonAudit(read.error + (read.detail ? `: ${read.detail}` : ''), e.tag);
            if (!dropNonAudit) out.push(e);
            continue;
          }
          const skipped = { count: 0 };
          const list = expandAuditEvents(read.value, skipped);
          if (list === null) {
            nonAudit++;
            warnNonAudit('not a kind Event / EventList of apiVersion audit.k8s.io/*', e.tag);
            if (!dropNonAudit) out.push(e);
            continue;
          }
          if (skipped.count) {
            nonAudit += skipped.count;
            warnNonAudit(`${skipped.count} list item(s) that are not audit Events, dropped`, e.tag);
          }
          const single = list.length === 1 && list[0] === read.value;
          for (const item of list) {
            const d = checker.apply(item);
            counts[rank.get(d.level)! * 2 + (d.event ? 0 : 1)]!++;
            if (d.event === null) continue;
            if (single) {
              if (d.event === item && read.source !== 'string') out.push(e);
              else out.push({ ...e, record: recordFor(e.record, read.source, d.event) });
            } else {
              out.push({ ...e, time: auditEventTime(item) ?? e.time, record: recordFor(e.record, read.source, d.event) });
            }
          }
        }
        if (nonAudit) nonAuditMetric.inc(nonAudit);
        for (let i = 0; i < counts.length; i++) {
          if (counts[i]) {
            byLevel[i >> 1]![i & 1]!.inc(counts[i]);
            counts[i] = 0;
          }
        }
        return out;
      },
    };
  },
});

export default auditPolicy;

/**
 * detect: evaluates Falco rules (source k8s_audit) on Kubernetes audit events, as Falco with
 * the k8saudit and json plugins does, and emits one alert event per alert, in Falco's JSON
 * output shape, under `alert_tag`. Alerts re-enter routing (like rewrite_tag's emitter), so an
 * output matching the alert tag (alertmanager, loki, file) receives them.
 */
import { resolve } from 'node:path';
import { ConfigError, ConfigErrors } from '../../config/errors.js';
import type { OptionTable, RawSection } from '../../config/schema.js';
import { readAuditValue } from '../../k8s-audit/audit-event.js';
import { EventTime, type LogEvent } from '../../core/event.js';
import { definePlugin, type FilterInstance, type PluginConfig } from '../../core/plugin.js';
import { sharedView, UNSUPPORTED } from '../../core/record-view.js';
import { WireEvent } from '../../core/wire-event.js';
import { encode } from '../../core/msgpack.js';
import { MsgpackWriter } from '../../core/msgpack-writer.js';
import { BUNDLED_RULES, DEFAULT_HOSTNAME, Engine, PRIORITY_VALUES, RuleLoadError, RuleLoader, formatMessage, newStats, parsePriority, type AuditEvent, type RuleSet } from '../../falco/index.js';

function pos(section: RawSection, key: string) {
  return section.valuePos[key] ?? section.keyPos[key] ?? section.pos;
}

/** Rule file paths: relative ones against the config file's directory; the bundled file by default. */
export function ruleFiles(config: DetectConfig, section: RawSection): string[] {
  return config.rules_file?.length ? config.rules_file.map((f) => resolve(section.baseDir, f)) : [BUNDLED_RULES];
}

/** Loads and compiles the configured rule files; load errors become ConfigErrors with rule-file positions. */
export function loadRules(files: readonly string[], section: RawSection): RuleSet {
  const loader = new RuleLoader();
  try {
    for (const f of files) loader.loadFile(f);
    return loader.result();
  } catch (e) {
    if (!(e instanceof RuleLoadError)) throw e;
    const errors = e.messages
      .filter((m) => m.severity === 'error')
      .map((m) => {
        const at = m.textPos ? ` (${m.textPos.what} line ${m.textPos.pos.line} column ${m.textPos.pos.col})` : '';
        const where = m.where.line > 0 ? m.where : pos(section, 'rules_file');
        return new ConfigError(`${m.item ? `${m.item}: ` : ''}${m.message}${at} [${m.code}]`, where, 'rules_file');
      });
    throw new ConfigErrors(errors);
  }
}

const WARN_EVERY_MS = 60_000;

const options = {
  rules_file: {
    type: 'multi',
    description: 'Falco rule file(s), loaded in order, relative to the config file (default: the bundled rules/k8s_audit_rules.yaml)',
  },
  rule_matching: {
    type: 'enum',
    values: ['first', 'all'],
    default: 'first',
    description: "Falco's rule_matching: first (one alert per event: the first matching rule in rule order) or all",
  },
  minimum_priority: {
    type: 'enum',
    values: PRIORITY_VALUES,
    default: 'debug',
    description: 'Rules less severe than this priority are not evaluated (Falco priority names, case-insensitive)',
  },
  alert_tag: { type: 'string', default: 'falco', description: 'Tag of the emitted alert events' },
  keep_events: {
    type: 'bool',
    default: true,
    description: 'Pass the incoming records on (on) or drop them so only the alerts continue (off)',
  },
  hostname: {
    type: 'string',
    default: DEFAULT_HOSTNAME,
    docDefault: 'the host name of the machine logwarden runs on',
    description: 'hostname field of the alert records (Falco evt.hostname; the Alertmanager output makes it the `hostname` label)',
  },
  include_event: {
    type: 'bool',
    default: false,
    description: "Add the audit event that triggered each alert under audit_event (the web page shows it); off keeps Falco's alert shape",
  },
  key_name: {
    type: 'string',
    description: 'Key holding the audit event (a JSON string or a map); unset: the record is the event',
  },
} as const satisfies OptionTable;

export type DetectConfig = PluginConfig<'filter', typeof options>;

export const detect = definePlugin({
  kind: 'filter',
  name: 'detect',
  description: 'Evaluates Falco rules (source k8s_audit) on Kubernetes audit events and emits Falco alerts under alert_tag',
  options,
  /** The rule files are read and compiled once, when the plan is made (`validate` reports their errors). */
  prepare: (config, section) => ({ config, ruleSet: loadRules(ruleFiles(config, section), section) }),
  create({ config, ruleSet }, ctx): FilterInstance {
    for (const m of ruleSet.messages) {
      if (m.severity !== 'warning') continue;
      if (m.code.startsWith('LOAD_UNUSED')) ctx.logger.debug({ code: m.code }, formatMessage(m));
      else ctx.logger.warn({ code: m.code }, formatMessage(m));
    }
    if (ruleSet.otherSources.size) {
      const list = [...ruleSet.otherSources].map(([s, n]) => `${s} (${n})`).join(', ');
      ctx.logger.info(`rules of other sources parsed and skipped: ${list}`);
    }
    const engine = new Engine(ruleSet, {
      ruleMatching: config.rule_matching,
      minPriority: parsePriority(config.minimum_priority)!,
      hostname: config.hostname,
    });
    ctx.logger.info({ rules: engine.active.length, files: ruleSet.files, index: engine.indexFields }, `loaded ${engine.active.length} k8s_audit rules from ${ruleSet.files.length} file(s)`);

    const alertsMetric = ctx.metrics.counter('logwarden_detect_alerts_total', 'Alerts emitted by a detect filter, by rule and priority', ['name', 'rule', 'priority']);
    const perRule = new Map(engine.active.map((r) => [r, alertsMetric.labels({ name: ctx.id, rule: r.rule.name, priority: r.rule.priorityName })]));
    // Alerts per rule counted during a chunk, added to the metric once per chunk.
    const counted = new Map<(typeof engine.active)[number], number>();
    const eventsMetric = ctx.metrics.counter('logwarden_detect_events_total', 'Audit events a detect filter evaluated', ['name']).labels({ name: ctx.id });
    const skipped = ctx.metrics.counter(
      'logwarden_detect_skipped_records_total',
      'Records or events a detect filter could not evaluate, by reason (not_audit, missing_key, not_json, wrong_type, too_deep, invalid_stage_timestamp, error)',
      ['name', 'reason'],
    );
    const ruleErrors = ctx.metrics.counter('logwarden_detect_rule_errors_total', 'Checks that failed while evaluating (an operator a list field does not support)', ['name']).labels({ name: ctx.id });

    const keyName = config.key_name;
    const tag = config.alert_tag;
    const stats = newStats();
    let lastWarn = 0;
    let suppressed = 0;
    const warn = (reason: string, detail: string, ev: LogEvent) => {
      skipped.labels({ name: ctx.id, reason }).inc();
      const now = Date.now();
      if (now - lastWarn < WARN_EVERY_MS) {
        suppressed++;
        return;
      }
      ctx.logger.warn({ tag: ev.tag, reason, suppressed }, `record not evaluated: ${detail}`);
      lastWarn = now;
      suppressed = 0;
    };

    let alerts: LogEvent[] = [];
    const includeEvent = config.include_event;
    // Alerts are written as msgpack from the rule's fields (no alert object), and travel as bytes
    // like received records: outputs write their JSON from the bytes. An event still read through
    // its bytes goes into the alert (include_event) as those bytes, not decoded.
    const w = new MsgpackWriter();
    const onRule = (r: (typeof engine.active)[number], ev: AuditEvent) => {
      counted.set(r, (counted.get(r) ?? 0) + 1);
      engine.writeAlert(r, w, includeEvent ? (ev.view !== null ? ev.view.b : encode(ev.obj)) : undefined);
      alerts.push(new WireEvent(tag, new EventTime(ev.sec, ev.nsec), w.take()));
    };

    const view = sharedView;
    /** An Event still in bytes is evaluated through a view; false when it must be decoded. */
    const fromBytes = (e: WireEvent): boolean => {
      try {
        if (!e.open(view) || view.getTop('kind') !== 'Event') return false;
      } catch (err) {
        if (err === UNSUPPORTED) return false;
        throw err;
      }
      const invalid = stats.invalidTime;
      engine.detectViewMatches(view, onRule, stats);
      if (stats.invalidTime !== invalid) warn('invalid_stage_timestamp', 'audit event without a valid RFC 3339 stageTimestamp', e);
      return true;
    };

    const one = (e: LogEvent) => {
      if (keyName === undefined && e instanceof WireEvent && e.isBytes && fromBytes(e)) return;
      const read = readAuditValue(e.record, keyName);
      if ('error' in read) {
        warn(read.error, `${read.error}${read.detail ? `: ${read.detail}` : ''}${keyName === undefined ? '' : ` (key_name ${keyName})`}`, e);
        return;
      }
      const notAudit = stats.notAudit;
      const invalid = stats.invalidTime;
      engine.detectMatches(read.value, onRule, stats);
      if (stats.notAudit !== notAudit) warn('not_audit', 'data not recognized as a k8s audit event', e);
      if (stats.invalidTime !== invalid) warn('invalid_stage_timestamp', 'audit event without a valid RFC 3339 stageTimestamp', e);
    };

    return {
      filter(events, call) {
        const before = stats.events;
        const errorsBefore = engine.runtimeErrors;
        const n = events.length;
        let i = 0;
        // One try per chunk; an unexpected error skips only the event it happened on.
        while (i < n) {
          try {
            for (; i < n; i++) one(events[i]!);
          } catch (err) {
            skipped.labels({ name: ctx.id, reason: 'error' }).inc();
            ctx.logger.error({ tag: events[i]!.tag, err: (err as Error).message }, 'detect failed on an event; event passed on unevaluated');
            i++;
          }
        }
        if (stats.events !== before) eventsMetric.inc(stats.events - before);
        if (engine.runtimeErrors !== errorsBefore) ruleErrors.inc(engine.runtimeErrors - errorsBefore);
        if (counted.size) {
          for (const [r, n] of counted) perRule.get(r)?.inc(n);
          counted.clear();
        }
        if (alerts.length) {
          call.emit(alerts);
          alerts = [];
        }
        return config.keep_events ? events : [];
      },
    };
  },
});

export default detect;

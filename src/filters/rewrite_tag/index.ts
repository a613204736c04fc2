/**
 * rewrite_tag: Fluent Bit's filter_rewrite_tag. Each `rule` is `$KEY REGEX NEW_TAG KEEP`: the
 * first rule whose REGEX matches the (string) value of KEY emits a copy of the record under
 * NEW_TAG, which re-enters routing from the first filter; KEEP false drops the original.
 *
 * NEW_TAG is a record accessor template: `$TAG`, `$TAG[n]` (n-th dot-separated part), `$0`..`$9`
 * (the regex match and its groups), `$key['sub']` (record values), `${ENV}` (substituted when
 * the config is loaded). Records this instance emitted are not matched by it again (Fluent Bit
 * skips records coming from its own emitter). The emitted records are counted as the emitter's
 * input records (logwarden_input_records_total{name=emitter_name}, as Fluent Bit reports its
 * emitter_for_rewrite_tag.N input).
 *
 * A record still in msgpack bytes is not decoded: the rules' KEY and the NEW_TAG template's
 * `$key['sub']` parts are read through the record view (only the values they name are decoded;
 * a sub-key that looks like an array index, `['0']`, is read from the decoded record). With KEEP
 * true the emitted copy is a new event over the same bytes (pending edits written first; bytes
 * are never changed once written, so the two events share them and each keeps its own later
 * edits); with KEEP false the event itself moves to NEW_TAG. Metadata is copied for KEEP true
 * and moves with the event for KEEP false.
 */
import { ConfigError } from '../../config/errors.js';
import { parseBool, type OptionTable, type RawSection } from '../../config/schema.js';
import type { LogEvent } from '../../core/event.js';
import { definePlugin, type FilterInstance, type PluginConfig } from '../../core/plugin.js';
import { AccessorSyntaxError, compileAccessor, compileTemplate, type RecordAccessor, type Template } from '../../core/record-accessor.js';
import { compileRegex, RegexError, type SafeRegex } from '../../core/safe-regex.js';
import { optionPos, splitArgs, WarnLimiter } from '../modify/args.js';
import { cloneRecord } from '../../core/msgpack.js';
import { readAccessor, viewable } from '../../core/record-read.js';
import { WireEvent } from '../../core/wire-event.js';

type RewriteTagConfig = PluginConfig<'filter', typeof options>;

const options = {
  rule: { type: 'multi', required: true, description: '$KEY REGEX NEW_TAG KEEP: emit a copy under NEW_TAG when KEY matches REGEX; KEEP true keeps the original' },
  emitter_name: { type: 'string', description: 'Name the emitted records are counted under (default emitter_for_<filter id>)' },
  'emitter_storage.type': {
    type: 'enum',
    values: ['memory'],
    default: 'memory',
    description: "Emitted records travel with the chunk they came from (memory); filesystem buffering is the input's storage.type",
  },
} as const satisfies OptionTable;

interface Rule {
  key: RecordAccessor;
  /** Whether `key` is read through the record view (viewable). */
  keyByView: boolean;
  re: SafeRegex;
  tag: Template;
  keep: boolean;
}

function compile(config: RewriteTagConfig, section: RawSection): Rule[] {
  const where = optionPos(section, 'rule');
  return config.rule.map((value) => {
    const fail = (msg: string): never => {
      throw new ConfigError(`'${value}': ${msg}`, where, 'rule');
    };
    const args = splitArgs(value, 4);
    if (typeof args === 'string') return fail(args);
    if (args.length !== 4) return fail('expected $KEY REGEX NEW_TAG KEEP (quote a REGEX that holds spaces)');
    const keep = parseBool(args[3]);
    if (keep === undefined) return fail(`KEEP must be true or false, found '${args[3]}'`);
    try {
      const tag = compileTemplate(args[2]!);
      if (args[2]!.trim() === '') fail('NEW_TAG is empty');
      const key = compileAccessor(args[0]!);
      return { key, keyByView: viewable(key), re: compileRegex(args[1]!), tag, keep };
    } catch (e) {
      if (e instanceof RegexError || e instanceof AccessorSyntaxError) return fail(e.message);
      throw e;
    }
  });
}

export const rewriteTagFilter = definePlugin({
  kind: 'filter',
  name: 'rewrite_tag',
  description: "Re-emits records under a new tag computed from the record, as Fluent Bit's rewrite_tag filter",
  options,
  prepare: (config, section) => ({ config, rules: compile(config, section) }),
  create({ config, rules }, ctx): FilterInstance {
    const emitterName = config.emitter_name ?? `emitter_for_${ctx.id}`;
    const emitterRecords = ctx.metrics.inputRecords.labels(emitterName);
    const emptyTag = ctx.metrics
      .counter('logwarden_rewrite_tag_empty_tag_records_total', 'Records a rewrite_tag rule matched whose NEW_TAG rendered empty (kept under their tag)', ['name'])
      .labels(ctx.id);
    const warnEmpty = new WarnLimiter(ctx.logger);
    const own = new WeakSet<LogEvent>();
    // The template's record values, read from the event being rendered (one function for the
    // instance, not one per record).
    const byView = new Set<RecordAccessor>(rules.flatMap((r) => r.tag.accessors.filter(viewable)));
    let current: LogEvent | undefined;
    const read = (a: RecordAccessor): unknown => readAccessor(current!, a, byView.has(a));
    return {
      filter(events, call) {
        let out: LogEvent[] | undefined;
        let emitted: LogEvent[] | undefined;
        for (let i = 0; i < events.length; i++) {
          const e = events[i]!;
          let rule: Rule | undefined;
          let match: RegExpExecArray | null = null;
          if (!own.has(e)) {
            for (const r of rules) {
              const v = readAccessor(e, r.key, r.keyByView);
              if (typeof v !== 'string') continue;
              match = r.re.exec(v);
              if (match) {
                rule = r;
                break;
              }
            }
          }
          if (rule) {
            current = e;
            const tag = rule.tag.renderWith(e.tag, read, match);
            current = undefined;
            if (tag) {
              let moved: LogEvent;
              if (!rule.keep) {
                // The event itself goes to the new tag, its record and metadata with it.
                e.tag = tag;
                moved = e;
              } else {
                const metadata = e.metadata === undefined ? undefined : cloneRecord(e.metadata);
                const copy = e instanceof WireEvent ? e.fork(tag, metadata) : undefined;
                if (copy !== undefined) moved = copy;
                else {
                  moved = { tag, time: e.time, record: cloneRecord(e.record) };
                  if (metadata !== undefined) moved.metadata = metadata;
                }
              }
              own.add(moved);
              (emitted ??= []).push(moved);
              if (!rule.keep) {
                out ??= events.slice(0, i);
                continue;
              }
            } else {
              emptyTag.inc();
              warnEmpty.warn({ tag: e.tag, template: rule.tag.pattern }, 'rewrite_tag rule matched but NEW_TAG rendered empty; record kept under its tag');
            }
          }
          out?.push(e);
        }
        if (emitted) {
          emitterRecords.inc(emitted.length);
          call.emit(emitted);
        }
        return out ?? events;
      },
    };
  },
});

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
 */
import { ConfigError } from '../../config/errors.js';
import { parseBool, type OptionTable, type RawSection } from '../../config/schema.js';
import type { LogEvent } from '../../core/event.js';
import type { FilterInstance, FilterPlugin } from '../../core/plugin.js';
import { AccessorSyntaxError, compileAccessor, compileTemplate, type RecordAccessor, type Template } from '../../core/record-accessor.js';
import { compileRegex, RegexError, type SafeRegex } from '../../core/safe-regex.js';
import { optionPos, splitArgs, WarnLimiter } from '../modify/args.js';
import { cloneRecord } from '../../core/msgpack.js';

interface RewriteTagConfig {
  rule: string[];
  emitter_name?: string;
  'emitter_storage.type': 'memory';
}

const options = {
  rule: { type: 'multi', required: true, description: '$KEY REGEX NEW_TAG KEEP: emit a copy under NEW_TAG when KEY matches REGEX; KEEP true keeps the original' },
  emitter_name: { type: 'string', description: 'Name the emitted records are counted under (default emitter_for_<filter id>)' },
  'emitter_storage.type': {
    type: 'enum',
    values: ['memory'],
    default: 'memory',
    description: 'Emitted records travel with the chunk they came from (memory); filesystem buffering is the input\'s storage.type',
  },
} satisfies OptionTable;

interface Rule {
  key: RecordAccessor;
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
      return { key: compileAccessor(args[0]!), re: compileRegex(args[1]!), tag, keep };
    } catch (e) {
      if (e instanceof RegexError || e instanceof AccessorSyntaxError) return fail(e.message);
      throw e;
    }
  });
}

export const rewriteTagFilter: FilterPlugin<RewriteTagConfig> = {
  kind: 'filter',
  name: 'rewrite_tag',
  description: "Re-emits records under a new tag computed from the record, as Fluent Bit's rewrite_tag filter",
  options,
  validate(config, section) {
    compile(config, section);
  },
  create(config, ctx): FilterInstance {
    const rules = compile(config, ctx.section);
    const emitterName = config.emitter_name ?? `emitter_for_${ctx.id}`;
    const emitterRecords = ctx.metrics.inputRecords.labels(emitterName);
    const emptyTag = ctx.metrics
      .counter('logwarden_rewrite_tag_empty_tag_records_total', 'Records a rewrite_tag rule matched whose NEW_TAG rendered empty (kept under their tag)', ['name'])
      .labels(ctx.id);
    const warnEmpty = new WarnLimiter(ctx.logger);
    const own = new WeakSet<LogEvent>();
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
              const v = r.key.get(e.record);
              if (typeof v !== 'string') continue;
              match = r.re.exec(v);
              if (match) {
                rule = r;
                break;
              }
            }
          }
          if (rule) {
            const tag = rule.tag.render(e.tag, e.record, match);
            if (tag) {
              const copy: LogEvent = { tag, time: e.time, record: rule.keep ? cloneRecord(e.record) : e.record };
              if (e.metadata !== undefined) copy.metadata = rule.keep ? cloneRecord(e.metadata) : e.metadata;
              own.add(copy);
              (emitted ??= []).push(copy);
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
};

/**
 * grep: Fluent Bit's filter_grep. `regex KEY REGEX` keeps records whose KEY matches, `exclude
 * KEY REGEX` drops them; KEY is a record accessor (`$kubernetes['labels']['app']`) or a plain
 * top-level key. Only string values can match; a missing key never matches.
 *
 * logical_op (src/flb_grep.c):
 * - legacy (default): rules in order; the first regex rule that does not match drops the
 *   record, the first exclude rule that matches drops it, the first regex rule that matches
 *   keeps it (later rules are not looked at).
 * - and / or: all rules (or any rule) must match; then the record is kept (regex rules) or
 *   dropped (exclude rules). Mixing regex and exclude is an error with and / or.
 *
 * A record still in msgpack bytes is read through the record view (only the values the rules
 * name are decoded), unless a key's sub-key looks like an array index (`['0']`): the view would
 * read it as an index where the accessor reads only a map key.
 */
import { ConfigError } from '../../config/errors.js';
import type { OptionTable, RawSection } from '../../config/schema.js';
import type { LogEvent } from '../../core/event.js';
import { definePlugin, type FilterInstance, type PluginConfig } from '../../core/plugin.js';
import { AccessorSyntaxError, compileAccessor, type RecordAccessor } from '../../core/record-accessor.js';
import { readAccessor, viewable } from '../../core/record-read.js';
import { compileRegex, RegexError, type SafeRegex } from '../../core/safe-regex.js';
import { optionPos, orderedEntries, splitArgs } from '../modify/args.js';

type GrepConfig = PluginConfig<'filter', typeof options>;

const options = {
  regex: { type: 'multi', description: 'KEY REGEX: keep records whose KEY (record accessor or key name) matches REGEX' },
  exclude: { type: 'multi', description: 'KEY REGEX: drop records whose KEY matches REGEX' },
  logical_op: {
    type: 'enum',
    values: ['legacy', 'and', 'or'],
    default: 'legacy',
    description: 'How several rules combine: legacy (in order, first decisive rule wins), and, or',
  },
} as const satisfies OptionTable;

interface Rule {
  exclude: boolean;
  key: RecordAccessor;
  re: SafeRegex;
}

function compile(config: GrepConfig, section: RawSection): Rule[] {
  const rules: Rule[] = [];
  for (const [option, value] of orderedEntries(section, new Set(['regex', 'exclude']))) {
    const where = optionPos(section, option);
    const args = splitArgs(value, 2);
    if (typeof args === 'string' || args.length !== 2) {
      throw new ConfigError(`'${value}': expected KEY REGEX`, where, option);
    }
    let key: RecordAccessor;
    let re: SafeRegex;
    try {
      key = compileAccessor(args[0]!);
      re = compileRegex(args[1]!);
    } catch (e) {
      if (e instanceof RegexError || e instanceof AccessorSyntaxError) throw new ConfigError(`'${value}': ${e.message}`, where, option);
      throw e;
    }
    rules.push({ exclude: option === 'exclude', key, re });
  }
  if (rules.length === 0) throw new ConfigError('grep needs at least one regex or exclude rule', section.pos, 'regex');
  if (config.logical_op !== 'legacy' && rules.some((r) => r.exclude) && rules.some((r) => !r.exclude)) {
    throw new ConfigError(`with logical_op ${config.logical_op}, set regex or exclude rules, not both`, optionPos(section, 'logical_op'), 'logical_op');
  }
  return rules;
}

function matches(rule: Rule, e: LogEvent, bytes: boolean): boolean {
  const v = readAccessor(e, rule.key, bytes);
  return typeof v === 'string' && rule.re.test(v);
}

export const grepFilter = definePlugin({
  kind: 'filter',
  name: 'grep',
  description: "Keeps or drops records whose fields match regular expressions, as Fluent Bit's grep filter",
  options,
  prepare: (config, section) => ({ config, rules: compile(config, section) }),
  create({ config, rules }): FilterInstance {
    const bytes = rules.every((r) => viewable(r.key));
    let keep: (e: LogEvent) => boolean;
    if (config.logical_op === 'legacy') {
      keep = (r) => {
        for (const rule of rules) {
          const m = matches(rule, r, bytes);
          if (m) return !rule.exclude;
          if (!rule.exclude) return false;
        }
        return true;
      };
    } else {
      const and = config.logical_op === 'and';
      const exclude = rules[0]!.exclude;
      keep = (r) => {
        let found = and;
        for (const rule of rules) {
          if (matches(rule, r, bytes) !== and) {
            found = !and;
            break;
          }
        }
        return exclude ? !found : found;
      };
    }
    return {
      filter(events) {
        return events.filter(keep);
      },
    };
  },
});

/**
 * nest: Fluent Bit's filter_nest. `operation: nest` moves the keys matching `wildcard` into a
 * map under `nest_under`; `operation: lift` moves the keys of the map under `nested_under` up
 * to the record. `add_prefix` / `remove_prefix` rename the keys moved.
 *
 * From plugins/filter_nest/nest.c: a wildcard ending in `*` matches a key prefix, otherwise the
 * whole key; a record with no matching key (nest) or whose nested_under is not a map (lift) is
 * left unchanged; the new map and lifted keys go to the end of the record. Where Fluent Bit would
 * write a key twice (nest_under already present, a lifted key already at the top), the moved
 * value replaces the existing one.
 */
import { ConfigError } from '../../config/errors.js';
import type { OptionTable, RawSection } from '../../config/schema.js';
import type { LogRecord } from '../../core/event.js';
import type { FilterInstance, FilterPlugin } from '../../core/plugin.js';
import { hasField, isMap, setField } from '../../core/record-accessor.js';
import { optionPos, rawOption } from '../modify/args.js';

interface NestConfig {
  operation: 'nest' | 'lift';
  wildcard?: string[];
  nest_under?: string;
  nested_under?: string;
  add_prefix?: string;
  remove_prefix?: string;
}

const options = {
  operation: { type: 'enum', values: ['nest', 'lift'], required: true, description: 'nest: move keys into a map; lift: move a map\'s keys up' },
  wildcard: { type: 'multi', description: 'nest: keys to move (a trailing * matches a prefix)' },
  nest_under: { type: 'string', description: 'nest: key of the new map' },
  nested_under: { type: 'string', description: 'lift: key of the map whose keys move up' },
  add_prefix: { type: 'string', description: 'Prefix added to the names of the moved keys' },
  remove_prefix: { type: 'string', description: 'Prefix removed from the names of the moved keys that start with it' },
} satisfies OptionTable;

function check(config: NestConfig, section: RawSection): void {
  const needs = (option: keyof NestConfig) => {
    if (config[option] === undefined) throw new ConfigError(`operation ${config.operation} needs ${option}`, optionPos(section, 'operation'), option);
  };
  const forbids = (option: keyof NestConfig) => {
    if (config[option] !== undefined) {
      throw new ConfigError(`${option} does not apply to operation ${config.operation}`, optionPos(section, rawOption(section, option) ?? option), option);
    }
  };
  if (config.operation === 'nest') {
    needs('wildcard');
    needs('nest_under');
    forbids('nested_under');
  } else {
    needs('nested_under');
    forbids('wildcard');
    forbids('nest_under');
  }
}

export const nestFilter: FilterPlugin<NestConfig> = {
  kind: 'filter',
  name: 'nest',
  description: "Nests keys under a map or lifts a map's keys up, as Fluent Bit's nest filter",
  options,
  validate: check,
  create(config, ctx): FilterInstance {
    check(config, ctx.section);
    const add = config.add_prefix ?? '';
    const strip = config.remove_prefix;
    const rename = (k: string) => add + (strip !== undefined && k.startsWith(strip) ? k.slice(strip.length) : k);
    let apply: (r: LogRecord) => void;
    if (config.operation === 'nest') {
      const exact = new Set<string>();
      const prefixes: string[] = [];
      for (const w of config.wildcard!) {
        if (w.endsWith('*')) prefixes.push(w.slice(0, -1));
        else exact.add(w);
      }
      const under = config.nest_under!;
      apply = (r) => {
        let nested: LogRecord | undefined;
        for (const k of Object.keys(r)) {
          if (!exact.has(k) && !prefixes.some((p) => k.startsWith(p))) continue;
          nested ??= {};
          setField(nested, rename(k), r[k]);
          delete r[k];
        }
        if (!nested) return;
        if (hasField(r, under)) delete r[under];
        setField(r, under, nested);
      };
    } else {
      const under = config.nested_under!;
      apply = (r) => {
        const inner = hasField(r, under) ? r[under] : undefined;
        if (!isMap(inner)) return;
        delete r[under];
        for (const k of Object.keys(inner)) {
          const name = rename(k);
          if (hasField(r, name)) delete r[name];
          setField(r, name, inner[k]);
        }
      };
    }
    return {
      filter(events) {
        for (const e of events) apply(e.record);
        return events;
      },
    };
  },
};

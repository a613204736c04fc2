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
 *
 * A record still in msgpack bytes is not decoded: the move is recorded as one edit and written
 * into the bytes with the other pending edits (src/core/record-view.ts); a lifted map's entries
 * are copied from its bytes. Only what the bytes cannot express exactly (an extension value under
 * nested_under, keys an object would reorder colliding on one name) falls back to the object.
 */
import { ConfigError } from '../../config/errors.js';
import type { OptionTable, RawSection } from '../../config/schema.js';
import { definePlugin, type FilterInstance, type PluginConfig } from '../../core/plugin.js';
import { applyEdit } from '../../core/record-edit.js';
import type { Edit } from '../../core/record-view.js';
import { WireEvent } from '../../core/wire-event.js';
import { optionPos, rawOption } from '../modify/args.js';

type NestConfig = PluginConfig<'filter', typeof options>;

const options = {
  operation: { type: 'enum', values: ['nest', 'lift'], required: true, description: "nest: move keys into a map; lift: move a map's keys up" },
  wildcard: { type: 'multi', description: 'nest: keys to move (a trailing * matches a prefix)' },
  nest_under: { type: 'string', description: 'nest: key of the new map' },
  nested_under: { type: 'string', description: 'lift: key of the map whose keys move up' },
  add_prefix: { type: 'string', description: 'Prefix added to the names of the moved keys' },
  remove_prefix: { type: 'string', description: 'Prefix removed from the names of the moved keys that start with it' },
} as const satisfies OptionTable;

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

export const nestFilter = definePlugin({
  kind: 'filter',
  name: 'nest',
  description: "Nests keys under a map or lifts a map's keys up, as Fluent Bit's nest filter",
  options,
  prepare(config, section) {
    check(config, section);
    return config;
  },
  create(config): FilterInstance {
    const add = config.add_prefix ?? '';
    const strip = config.remove_prefix;
    const rename = (k: string) => add + (strip !== undefined && k.startsWith(strip) ? k.slice(strip.length) : k);
    // One edit for the whole filter: a record still in bytes records it (applied to the bytes in
    // the one copy pass that writes all pending edits), a decoded record takes it at once.
    let edit: Edit;
    if (config.operation === 'nest') {
      const exact = new Set<string>();
      const prefixes: string[] = [];
      for (const w of config.wildcard!) {
        if (w.endsWith('*')) prefixes.push(w.slice(0, -1));
        else exact.add(w);
      }
      const match = (k: string) => exact.has(k) || prefixes.some((p) => k.startsWith(p));
      edit = { op: 'nest', under: config.nest_under!, match, name: rename };
    } else {
      edit = { op: 'lift', under: config.nested_under!, name: rename };
    }
    return {
      filter(events) {
        for (const e of events) {
          if (e instanceof WireEvent && e.isBytes) e.edit(edit);
          else e.record = applyEdit(e.record, edit);
        }
        return events;
      },
    };
  },
});

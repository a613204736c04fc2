/**
 * record_modifier: Fluent Bit's filter_record_modifier. `record KEY VALUE` appends fields,
 * `remove_key` removes keys, `allowlist_key` (or the older `whitelist_key`) keeps only the listed
 * keys, `uuid_key` adds a random UUID.
 *
 * From plugins/filter_record_modifier/filter_modifier.c: keys compare case-insensitively and a
 * trailing `*` matches every key with that prefix; remove_key and allowlist_key exclude each
 * other; appended fields go to the end of the record. Where Fluent Bit would append a second
 * key of the same name, the appended value replaces the existing one. A record left without any
 * field (every key removed, nothing appended) is dropped, as Fluent Bit drops it.
 *
 * A record still in msgpack bytes is not decoded: the removed keys and the appended fields are
 * edits written into the bytes with the other pending edits (src/core/record-view.ts), and
 * whether a field is left is read from the record's top-level keys. A record from which nothing
 * is removed and to which nothing is appended keeps its bytes as they came.
 */
import { randomUUID } from 'node:crypto';
import { ConfigError } from '../../config/errors.js';
import type { OptionTable, RawSection } from '../../config/schema.js';
import { definePlugin, type FilterInstance, type PluginConfig } from '../../core/plugin.js';
import { hasField } from '../../core/record-accessor.js';
import { optionPos, rawOption, splitArgs } from '../modify/args.js';
import { applyEdit } from '../../core/record-edit.js';
import { sharedView, type Edit, type RecordView } from '../../core/record-view.js';
import { WireEvent } from '../../core/wire-event.js';

type RecordModifierConfig = PluginConfig<'filter', typeof options>;

const options = {
  record: { type: 'multi', description: 'KEY VALUE: append KEY with VALUE (the rest of the line)' },
  remove_key: { type: 'multi', description: 'Remove this key (case-insensitive; a trailing * matches a prefix)' },
  allowlist_key: { type: 'multi', description: 'Keep only these keys (case-insensitive; a trailing * matches a prefix)' },
  whitelist_key: { type: 'multi', description: 'Older name of allowlist_key' },
  uuid_key: { type: 'string', description: 'Add this key with a random UUID (v4) per record' },
} as const satisfies OptionTable;

interface Compiled {
  records: Array<[string, string]>;
  matcher?: (key: string) => boolean;
  /** true: matcher lists keys to remove; false: keys to keep. */
  remove: boolean;
}

function keyMatcher(patterns: string[]): (key: string) => boolean {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const p of patterns) {
    if (p.endsWith('*')) prefixes.push(p.slice(0, -1).toLowerCase());
    else exact.add(p.toLowerCase());
  }
  return (key) => {
    const k = key.toLowerCase();
    return exact.has(k) || prefixes.some((p) => k.startsWith(p));
  };
}

function compile(config: RecordModifierConfig, section: RawSection): Compiled {
  const records: Array<[string, string]> = [];
  for (const value of config.record ?? []) {
    const args = splitArgs(value, 2);
    if (typeof args === 'string' || args.length !== 2) throw new ConfigError(`'${value}': expected KEY VALUE`, optionPos(section, 'record'), 'record');
    records.push([args[0]!, args[1]!]);
  }
  const remove = config.remove_key ?? [];
  const allow = [...(config.allowlist_key ?? []), ...(config.whitelist_key ?? [])];
  if (remove.length && allow.length) {
    const which = rawOption(section, 'allowlist_key') ? 'allowlist_key' : 'whitelist_key';
    throw new ConfigError('remove_key and allowlist_key exclude each other', optionPos(section, which), which);
  }
  if (!records.length && !remove.length && !allow.length && config.uuid_key === undefined) {
    throw new ConfigError('record_modifier needs record, remove_key, allowlist_key or uuid_key', section.pos);
  }
  if (remove.length) return { records, matcher: keyMatcher(remove), remove: true };
  if (allow.length) return { records, matcher: keyMatcher(allow), remove: false };
  return { records, remove: true };
}

const NONE = 0;
const SOME = 1;
const ALL = 2;

/** Whether `match` accepts none, some or all (an empty record: all) of the record's top-level keys. */
function removes(view: RecordView, match: (key: string) => boolean): typeof NONE | typeof SOME | typeof ALL {
  const n = view.size();
  let hit = 0;
  for (let i = 0; i < n; i++) if (match(view.keyAt(i))) hit++;
  return hit === n ? ALL : hit === 0 ? NONE : SOME;
}

export const recordModifierFilter = definePlugin({
  kind: 'filter',
  name: 'record_modifier',
  description: "Appends fields, removes keys or keeps an allowlist of keys, as Fluent Bit's record_modifier filter",
  options,
  prepare: (config, section) => ({ config, compiled: compile(config, section) }),
  create({ config, compiled }): FilterInstance {
    const { records, matcher, remove } = compiled;
    const uuidKey = config.uuid_key;
    // The changes as edits (src/core/record-view.ts): the keys removed (remove_key, or the ones
    // allowlist_key does not keep), then the fields appended. A record still in bytes records
    // them; a decoded record takes them at once.
    const removeKeys: Edit | null = matcher === undefined ? null : { op: 'removeKeys', match: remove ? matcher : (k) => !matcher(k) };
    const puts: Edit[] = records.map(([k, v]) => ({ op: 'put', key: k, value: v, move: true }));
    const appends = puts.length > 0 || uuidKey !== undefined;
    const view = sharedView;
    return {
      filter(events) {
        let out: typeof events | undefined;
        for (let i = 0; i < events.length; i++) {
          const e = events[i]!;
          if (e instanceof WireEvent && e.open(view, !appends)) {
            if (removeKeys !== null) {
              if (appends) e.edit(removeKeys);
              else {
                // Nothing appended: whether a field is left is read from the keys as the edits
                // before left them (the view is over the edited bytes).
                const r = removes(view, removeKeys.match);
                if (r === ALL) {
                  out ??= events.slice(0, i);
                  continue;
                }
                if (r === SOME) e.edit(removeKeys);
              }
            }
            for (const p of puts) e.edit(p);
            if (uuidKey !== undefined) e.edit({ op: 'put', key: uuidKey, value: randomUUID(), move: true });
            out?.push(e);
            continue;
          }
          let r = e.record;
          if (removeKeys !== null) r = applyEdit(r, removeKeys);
          for (const p of puts) r = applyEdit(r, p);
          if (uuidKey !== undefined) r = applyEdit(r, { op: 'put', key: uuidKey, value: randomUUID(), move: true });
          e.record = r;
          // A record left without any field is dropped, as Fluent Bit does.
          let empty = true;
          for (const k in r) {
            if (hasField(r, k)) {
              empty = false;
              break;
            }
          }
          if (empty) out ??= events.slice(0, i);
          else out?.push(e);
        }
        return out ?? events;
      },
    };
  },
});

/**
 * modify: Fluent Bit's filter_modify. Rules (set, add, remove, remove_wildcard, remove_regex,
 * rename, hard_rename, copy, hard_copy, move_to_start, move_to_end) run in the order written, each
 * on the result of the previous one, when every condition holds.
 *
 * Semantics from plugins/filter_modify/modify.c: rules work on top-level keys compared as exact
 * strings; set / add write string values; set moves the key to the end; rename keeps the key's
 * place; copy places the copy right after the source; copy and hard_copy do nothing when several
 * keys match. A VALUE is the rest of the line (Fluent Bit needs it quoted when it holds spaces;
 * both forms work here). The conditions key_exists, key_does_not_exist, key_value_equals,
 * key_value_does_not_equal, key_value_matches and key_value_does_not_match take a record
 * accessor (`$kubernetes['labels']['app']`); the others match top-level keys by regex. Values
 * compare as strings only (key_value_matches also matches booleans as true / false).
 *
 * Each rule is one edit (src/core/record-view.ts): a record still in msgpack bytes records it,
 * written into the bytes with the other pending edits in one copy pass; a decoded record takes
 * it at once. On a record in bytes the conditions read the record as the filters before left
 * it through the record view: a condition on one value reads that value, one that looks at
 * every key reads the top-level keys and decodes only the values of the keys that match. The
 * record is decoded only for an accessor whose sub-key is written like an array index (the view
 * would read it as an index) and where the bytes cannot be changed byte for byte (keys that are
 * not strings, a copy from a key an object lists first).
 */
import { ConfigError } from '../../config/errors.js';
import type { OptionTable, RawSection } from '../../config/schema.js';
import type { LogRecord } from '../../core/event.js';
import { definePlugin, type FilterInstance } from '../../core/plugin.js';
import { AccessorSyntaxError, compileAccessor, hasField, type PathPart, type RecordAccessor } from '../../core/record-accessor.js';
import { compileRegex, RegexError, type SafeRegex } from '../../core/safe-regex.js';
import { applyEdit } from '../../core/record-edit.js';
import { sharedView, ViewUnsupported, type Edit, type RecordView } from '../../core/record-view.js';
import { WireEvent } from '../../core/wire-event.js';
import { optionPos, orderedEntries, splitArgs } from './args.js';

const RULES_1 = ['remove', 'remove_wildcard', 'remove_regex', 'move_to_start', 'move_to_end'] as const;
const RULES_2 = ['set', 'add', 'rename', 'hard_rename', 'copy', 'hard_copy'] as const;
const CONDITIONS: Record<string, 1 | 2> = {
  key_exists: 1,
  key_does_not_exist: 1,
  a_key_matches: 1,
  no_key_matches: 1,
  key_value_equals: 2,
  key_value_does_not_equal: 2,
  key_value_matches: 2,
  key_value_does_not_match: 2,
  matching_keys_have_matching_values: 2,
  matching_keys_do_not_have_matching_values: 2,
};

const multi = (description: string) => ({ type: 'multi', description }) as const;

const options = {
  set: multi('KEY VALUE: set KEY to VALUE, replacing (and moving to the end) an existing KEY'),
  add: multi('KEY VALUE: add KEY with VALUE when KEY does not exist'),
  remove: multi('KEY: remove KEY'),
  remove_wildcard: multi('PREFIX: remove every key that starts with PREFIX (a trailing * is allowed)'),
  remove_regex: multi('REGEX: remove every key matching REGEX'),
  rename: multi('KEY NEW: rename KEY to NEW when KEY exists and NEW does not'),
  hard_rename: multi('KEY NEW: rename KEY to NEW when KEY exists, replacing NEW'),
  copy: multi('KEY NEW: copy KEY to NEW when KEY exists and NEW does not'),
  hard_copy: multi('KEY NEW: copy KEY to NEW when KEY exists, replacing NEW'),
  move_to_start: multi('PREFIX: move the keys that start with PREFIX to the start of the record'),
  move_to_end: multi('PREFIX: move the keys that start with PREFIX to the end of the record'),
  condition: multi(`CONDITION ARGS: apply the rules only when every condition holds; one of ${Object.keys(CONDITIONS).join(', ')}`),
} as const satisfies OptionTable;

/**
 * A rule: one edit (src/core/record-view.ts), made when top-level `need` is there and `absent`
 * is not. A record still in bytes records the edit; a decoded record takes it at once.
 */
interface Rule {
  edit: Edit;
  need?: string;
  absent?: string;
}
type Condition = (r: LogRecord) => boolean;
/** The same condition on a record in bytes, read through the view (pointed at its edited bytes). */
type ViewCondition = (view: RecordView) => boolean;

const INDEX = /^(0|[1-9][0-9]*)$/;

/** Whether the view reads `ra` as the accessor does (a sub-key like `['0']` is a map key only there). */
function viewable(ra: RecordAccessor): boolean {
  return ra.path.every((p, i) => i === 0 || typeof p === 'number' || !INDEX.test(p));
}

function prefixOf(p: string): string {
  return p.endsWith('*') ? p.slice(0, -1) : p;
}

function stringOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  return undefined;
}

function compile(section: RawSection): { rules: Rule[]; conditions: Condition[]; viewConditions: ViewCondition[] | null } {
  const rules: Rule[] = [];
  let ruleCount = 0;
  const conditions: Condition[] = [];
  // Every condition also reads through the view, but for a record accessor the view does not
  // read as the accessor does (then the record is decoded).
  let viewConditions: ViewCondition[] | null = [];
  const onValue = (ra: RecordAccessor, test: (v: unknown) => boolean) => {
    conditions.push((r) => test(ra.get(r)));
    if (!viewable(ra)) viewConditions = null;
    const path: readonly PathPart[] = ra.path;
    viewConditions?.push((view) => test(view.get(path)));
  };
  const names = new Set<string>([...RULES_1, ...RULES_2, 'condition']);
  for (const [option, value] of orderedEntries(section, names)) {
    const where = optionPos(section, option);
    const fail = (msg: string): never => {
      throw new ConfigError(`'${value}': ${msg}`, where, option);
    };
    const regex = (p: string): SafeRegex => {
      try {
        return compileRegex(p);
      } catch (e) {
        if (e instanceof RegexError) fail(e.message);
        throw e;
      }
    };
    const accessor = (p: string): RecordAccessor => {
      try {
        return compileAccessor(p);
      } catch (e) {
        if (e instanceof AccessorSyntaxError) fail(e.message);
        throw e;
      }
    };
    const args = splitArgs(value, option === 'condition' ? 3 : 2);
    if (typeof args === 'string') fail(args);
    const a = args as string[];

    if (option === 'condition') {
      const kind = a[0]?.toLowerCase() ?? '';
      const arity = CONDITIONS[kind];
      if (!arity) fail(`unknown condition '${a[0] ?? ''}'; expected one of ${Object.keys(CONDITIONS).join(', ')}`);
      if (a.length - 1 !== arity) fail(`${kind} takes ${arity === 1 ? 'one argument' : 'two arguments'}`);
      const [, x, y] = a as [string, string, string];
      switch (kind) {
        case 'key_exists': {
          onValue(accessor(x), (v) => v !== undefined);
          break;
        }
        case 'key_does_not_exist': {
          onValue(accessor(x), (v) => v === undefined);
          break;
        }
        case 'a_key_matches':
        case 'no_key_matches': {
          const re = regex(x);
          const want = kind === 'a_key_matches';
          conditions.push((r) => {
            for (const k in r) if (hasField(r, k) && re.test(k)) return want;
            return !want;
          });
          viewConditions?.push((view) => {
            const n = view.size();
            for (let i = 0; i < n; i++) if (re.test(view.keyAt(i))) return want;
            return !want;
          });
          break;
        }
        case 'key_value_equals':
        case 'key_value_does_not_equal': {
          const ra = accessor(x);
          const eq = kind === 'key_value_equals';
          onValue(ra, (v) => {
            if (v === undefined) return false;
            return (stringOf(v) === y) === eq;
          });
          break;
        }
        case 'key_value_matches':
        case 'key_value_does_not_match': {
          const ra = accessor(x);
          const re = regex(y);
          const want = kind === 'key_value_matches';
          onValue(ra, (v) => {
            if (v === undefined) return false;
            const s = typeof v === 'boolean' ? String(v) : stringOf(v);
            return (s !== undefined && re.test(s)) === want;
          });
          break;
        }
        case 'matching_keys_have_matching_values':
        case 'matching_keys_do_not_have_matching_values': {
          const kre = regex(x);
          const vre = regex(y);
          const want = kind === 'matching_keys_have_matching_values';
          conditions.push((r) => {
            for (const k in r) {
              if (!hasField(r, k) || !kre.test(k)) continue;
              const v = r[k];
              const s = typeof v === 'boolean' ? String(v) : stringOf(v);
              if (s === undefined || !vre.test(s)) return !want;
            }
            return want;
          });
          // Only the values of matching keys are read (a key written twice: its last value).
          viewConditions?.push((view) => {
            const n = view.size();
            for (let i = 0; i < n; i++) {
              if (!kre.test(view.keyAt(i)) || view.repeated(i)) continue;
              const s = view.textAt(i);
              if (s === undefined || !vre.test(s)) return !want;
            }
            return want;
          });
          break;
        }
      }
      continue;
    }

    const arity = (RULES_1 as readonly string[]).includes(option) ? 1 : 2;
    if (a.length !== arity) fail(arity === 1 ? 'expected KEY' : 'expected KEY VALUE');
    const [k, v] = a as [string, string];
    const prefix = prefixOf(k);
    const startsWith = (key: string) => key.startsWith(prefix);
    ruleCount++;
    // A key renamed or copied onto itself: nothing to do.
    if (k === v && option !== 'set' && option !== 'add') continue;
    switch (option) {
      case 'set':
        rules.push({ edit: { op: 'put', key: k, value: v, move: true } });
        break;
      case 'add':
        rules.push({ edit: { op: 'put', key: k, value: v, move: false }, absent: k });
        break;
      case 'remove':
        rules.push({ edit: { op: 'remove', path: [k] } });
        break;
      case 'remove_wildcard':
        rules.push({ edit: { op: 'removeKeys', match: startsWith } });
        break;
      case 'remove_regex': {
        const re = regex(k);
        rules.push({ edit: { op: 'removeKeys', match: (key) => re.test(key) } });
        break;
      }
      case 'rename':
        rules.push({ edit: { op: 'rename', key: k, to: v }, need: k, absent: v });
        break;
      case 'hard_rename':
        rules.push({ edit: { op: 'rename', key: k, to: v }, need: k });
        break;
      case 'copy':
        rules.push({ edit: { op: 'copy', key: k, to: v }, need: k, absent: v });
        break;
      case 'hard_copy':
        rules.push({ edit: { op: 'copy', key: k, to: v }, need: k });
        break;
      case 'move_to_start':
      case 'move_to_end':
        rules.push({ edit: { op: 'move', match: startsWith, toStart: option === 'move_to_start' } });
        break;
    }
  }
  if (ruleCount === 0) {
    throw new ConfigError('modify has no rule (set, add, remove, remove_wildcard, remove_regex, rename, hard_rename, copy, hard_copy, move_to_start, move_to_end)', section.pos);
  }
  return { rules, conditions, viewConditions };
}

export const modifyFilter = definePlugin({
  kind: 'filter',
  name: 'modify',
  description: "Changes records with rules (set, add, remove, rename, copy...) under conditions, as Fluent Bit's modify filter",
  options,
  prepare: (_config, section) => compile(section),
  create({ rules, conditions, viewConditions }): FilterInstance {
    const view = sharedView;
    const conditional = viewConditions !== null && viewConditions.length > 0;
    /**
     * The conditions read through the view over the record as the edits before left it: true /
     * false, or undefined when the view cannot answer.
     */
    const holds = (e: WireEvent): boolean | undefined => {
      try {
        if (!e.open(view)) return undefined;
        for (const c of viewConditions!) if (!c(view)) return false;
        return true;
      } catch (err) {
        if (err instanceof ViewUnsupported) return undefined;
        throw err;
      }
    };
    return {
      filter(events) {
        for (const e of events) {
          // A record still in bytes whose top level reads byte for byte takes the edits.
          if (viewConditions !== null && e instanceof WireEvent) {
            const ok = conditional ? holds(e) : true;
            if (ok === false) continue;
            if (ok === true && e.open(view, false)) {
              for (const { edit, need, absent } of rules) {
                if ((need === undefined || e.hasKey(need, view)) && (absent === undefined || !e.hasKey(absent, view))) e.edit(edit);
              }
              continue;
            }
          }
          let ok = true;
          for (const c of conditions) {
            if (!c(e.record)) {
              ok = false;
              break;
            }
          }
          if (!ok) continue;
          let r = e.record;
          for (const { edit, need, absent } of rules) {
            if ((need === undefined || hasField(r, need)) && (absent === undefined || !hasField(r, absent))) r = applyEdit(r, edit);
          }
          e.record = r;
        }
        return events;
      },
    };
  },
});

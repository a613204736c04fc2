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
 * On a record still in msgpack bytes, set / add / remove / rename / hard_rename are recorded as
 * edits, and the conditions on one value read it through the record view; the other rules and
 * the conditions that look at every key work on the decoded record.
 */
import { ConfigError } from '../../config/errors.js';
import type { OptionTable, RawSection } from '../../config/schema.js';
import type { LogRecord } from '../../core/event.js';
import type { FilterInstance, FilterPlugin } from '../../core/plugin.js';
import { AccessorSyntaxError, compileAccessor, hasField, setField, type PathPart, type RecordAccessor } from '../../core/record-accessor.js';
import { compileRegex, RegexError, type SafeRegex } from '../../core/safe-regex.js';
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
  condition: multi(
    `CONDITION ARGS: apply the rules only when every condition holds; one of ${Object.keys(CONDITIONS).join(', ')}`,
  ),
} satisfies OptionTable;

type Rule = (r: LogRecord) => LogRecord;
type Condition = (r: LogRecord) => boolean;
/** The same rule on a record still in bytes: recorded as an edit (src/core/record-view.ts). */
type EditRule = (e: WireEvent, view: RecordView) => void;
/** A condition on one value (a record accessor's): read through the view on a record in bytes. */
interface ValueCondition {
  path: readonly PathPart[];
  test: (v: unknown) => boolean;
}

const INDEX = /^(0|[1-9][0-9]*)$/;

/** Whether the view reads `ra` as the accessor does (a sub-key like `['0']` is a map key only there). */
function viewable(ra: RecordAccessor): boolean {
  return ra.path.every((p, i) => i === 0 || typeof p === 'number' || !INDEX.test(p));
}

function prefixOf(p: string): string {
  return p.endsWith('*') ? p.slice(0, -1) : p;
}

/** Rebuilds `r` with `key` renamed in place, or a copy inserted after it; `drop` is left out. */
function rebuild(r: LogRecord, key: string, newKey: string, copy: boolean, drop: string | undefined): LogRecord {
  const out: LogRecord = {};
  for (const k of Object.keys(r)) {
    if (k === drop) continue;
    if (k === key) {
      if (copy) setField(out, k, r[k]);
      setField(out, newKey, r[k]);
    } else setField(out, k, r[k]);
  }
  return out;
}

function stringOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  return undefined;
}

function compile(section: RawSection): { rules: Rule[]; conditions: Condition[]; editRules: EditRule[] | null; valueConditions: ValueCondition[] | null } {
  const rules: Rule[] = [];
  const conditions: Condition[] = [];
  // set, add, remove, rename and hard_rename are edits; any other rule works on the decoded
  // record. Conditions on one value are read through the view; conditions that look at every
  // key work on the decoded record.
  let editRules: EditRule[] | null = [];
  let valueConditions: ValueCondition[] | null = [];
  const onValue = (ra: RecordAccessor, test: (v: unknown) => boolean) => {
    conditions.push((r) => test(ra.get(r)));
    if (!viewable(ra)) valueConditions = null;
    valueConditions?.push({ path: ra.path, test });
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
          valueConditions = null;
          conditions.push((r) => {
            for (const k in r) if (hasField(r, k) && re.test(k)) return want;
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
          valueConditions = null;
          conditions.push((r) => {
            for (const k in r) {
              if (!hasField(r, k) || !kre.test(k)) continue;
              const v = r[k];
              const s = typeof v === 'boolean' ? String(v) : stringOf(v);
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
    const edits = editRules;
    switch (option) {
      case 'set': {
        const ed: Edit = { op: 'put', key: k, value: v, move: true };
        edits?.push((e) => e.edit(ed));
        break;
      }
      case 'add': {
        const ed: Edit = { op: 'put', key: k, value: v, move: false };
        edits?.push((e, view) => {
          if (!e.hasKey(k, view)) e.edit(ed);
        });
        break;
      }
      case 'remove': {
        const ed: Edit = { op: 'remove', path: [k] };
        edits?.push((e) => e.edit(ed));
        break;
      }
      case 'rename': {
        const ed: Edit = { op: 'rename', key: k, to: v };
        edits?.push((e, view) => {
          if (e.hasKey(k, view) && !e.hasKey(v, view)) e.edit(ed);
        });
        break;
      }
      case 'hard_rename': {
        const ed: Edit = { op: 'rename', key: k, to: v };
        edits?.push((e, view) => {
          if (k !== v && e.hasKey(k, view)) e.edit(ed);
        });
        break;
      }
      default:
        editRules = null;
    }
    switch (option) {
      case 'set':
        rules.push((r) => {
          if (hasField(r, k)) delete r[k];
          setField(r, k, v);
          return r;
        });
        break;
      case 'add':
        rules.push((r) => {
          if (!hasField(r, k)) setField(r, k, v);
          return r;
        });
        break;
      case 'remove':
        rules.push((r) => {
          if (hasField(r, k)) delete r[k];
          return r;
        });
        break;
      case 'remove_wildcard': {
        const prefix = prefixOf(k);
        rules.push((r) => {
          for (const key of Object.keys(r)) if (key.startsWith(prefix)) delete r[key];
          return r;
        });
        break;
      }
      case 'remove_regex': {
        const re = regex(k);
        rules.push((r) => {
          for (const key of Object.keys(r)) if (re.test(key)) delete r[key];
          return r;
        });
        break;
      }
      case 'move_to_start':
      case 'move_to_end': {
        const prefix = prefixOf(k);
        const toStart = option === 'move_to_start';
        rules.push((r) => {
          const keys = Object.keys(r);
          const moved = keys.filter((key) => key.startsWith(prefix));
          if (moved.length === 0) return r;
          const rest = keys.filter((key) => !key.startsWith(prefix));
          const out: LogRecord = {};
          for (const key of toStart ? [...moved, ...rest] : [...rest, ...moved]) setField(out, key, r[key]);
          return out;
        });
        break;
      }
      case 'rename':
        rules.push((r) => (hasField(r, k) && !hasField(r, v) ? rebuild(r, k, v, false, undefined) : r));
        break;
      case 'hard_rename':
        rules.push((r) => (hasField(r, k) && k !== v ? rebuild(r, k, v, false, v) : r));
        break;
      case 'copy':
        rules.push((r) => (hasField(r, k) && !hasField(r, v) ? rebuild(r, k, v, true, undefined) : r));
        break;
      case 'hard_copy':
        rules.push((r) => (hasField(r, k) && k !== v ? rebuild(r, k, v, true, v) : r));
        break;
    }
  }
  if (rules.length === 0) {
    throw new ConfigError('modify has no rule (set, add, remove, remove_wildcard, remove_regex, rename, hard_rename, copy, hard_copy, move_to_start, move_to_end)', section.pos);
  }
  return { rules, conditions, editRules: valueConditions === null ? null : editRules, valueConditions };
}

export const modifyFilter: FilterPlugin = {
  kind: 'filter',
  name: 'modify',
  description: 'Changes records with rules (set, add, remove, rename, copy...) under conditions, as Fluent Bit\'s modify filter',
  options,
  validate(_config, section) {
    compile(section);
  },
  create(_config, ctx): FilterInstance {
    const { rules, conditions, editRules, valueConditions } = compile(ctx.section);
    const view = sharedView;
    const conditional = valueConditions !== null && valueConditions.length > 0;
    /** The conditions read through the view: true / false, or undefined when the view cannot answer. */
    const holds = (e: WireEvent): boolean | undefined => {
      try {
        if (!e.open(view)) return undefined;
        for (const c of valueConditions!) if (!c.test(view.get(c.path))) return false;
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
          if (editRules !== null && e instanceof WireEvent) {
            const ok = conditional ? holds(e) : true;
            if (ok === false) continue;
            if (ok === true && e.open(view, false)) {
              for (const r of editRules) r(e, view);
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
          for (const rule of rules) r = rule(r);
          e.record = r;
        }
        return events;
      },
    };
  },
};

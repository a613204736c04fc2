/**
 * Record accessors for the loki output: the project's record accessor (src/core/record-accessor.ts,
 * Fluent Bit's `$key['sub'][0]` syntax) plus what out_loki needs on top: the label name Fluent
 * Bit derives from a pattern, and removal of keys from a copy of a record (the record is shared
 * with the other outputs, so it is never changed in place).
 */
import { AccessorSyntaxError, compileAccessor as compileRecordAccessor, type PathPart, type RecordAccessor } from '../../core/record-accessor.js';

export type { PathPart };

export interface Accessor {
  pattern: string;
  path: readonly PathPart[];
  /** Fluent Bit's label name for the pattern: its keys joined with `_` (`$a['b']` → `a_b`). */
  name: string;
  get(record: Record<string, unknown>): unknown;
}

/** Compiles `$key[...]`; returns the error message for a malformed pattern. */
export function compileAccessor(pattern: string): Accessor | string {
  let ra: RecordAccessor;
  try {
    ra = compileRecordAccessor(pattern, { allowLiteral: false });
  } catch (e) {
    if (e instanceof AccessorSyntaxError) return e.message;
    throw e;
  }
  return { pattern: ra.pattern, path: ra.path, name: ra.path.join('_'), get: (r) => ra.get(r) };
}

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * A copy of `record` without the keys at `paths`, copying only the maps along removed paths; the
 * original (shared with other outputs) is never changed. Returns the record itself when nothing
 * was removed.
 */
export function without(record: Record<string, unknown>, paths: ReadonlyArray<readonly PathPart[]>): Record<string, unknown> {
  let out = record;
  for (const path of paths) out = removePath(out, path, 0, out !== record) as Record<string, unknown>;
  return out;
}

function removePath(node: unknown, path: readonly PathPart[], i: number, owned: boolean): unknown {
  const key = path[i]!;
  if (node === null || typeof node !== 'object') return node;
  if (typeof key === 'number') {
    if (!Array.isArray(node) || key >= node.length) return node;
    const copy = owned ? node : node.slice();
    if (i === path.length - 1) copy.splice(key, 1);
    else copy[key] = removePath(node[key], path, i + 1, false);
    return copy;
  }
  if (Array.isArray(node) || !hasOwn.call(node, key)) return node;
  const obj = node as Record<string, unknown>;
  if (i === path.length - 1) {
    const copy: Record<string, unknown> = {};
    for (const k of Object.keys(obj)) if (k !== key) define(copy, k, obj[k]);
    return copy;
  }
  const child = removePath(obj[key], path, i + 1, false);
  if (child === obj[key]) return node;
  const copy = owned ? obj : shallow(obj);
  define(copy, key, child);
  return copy;
}

function shallow(obj: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const k of Object.keys(obj)) define(copy, k, obj[k]);
  return copy;
}

/** Assignment that stores `__proto__` as an own data property instead of changing the prototype. */
function define(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

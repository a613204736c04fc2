/**
 * Fluent Bit's record accessor, the subset out_loki uses: `$key`, `$key['sub']["sub2"][0]`.
 * Compiled once at load time into a path; lookups only walk own properties, so a record holding
 * `__proto__` as data never reaches Object.prototype.
 */

export type PathPart = string | number;

export interface Accessor {
  /** The pattern as written. */
  pattern: string;
  path: PathPart[];
  /** Fluent Bit's label name for the pattern: parts joined with `_` (`$a['b']` → `a_b`). */
  name: string;
}

const KEY = /^[^\s$[\]'"]+/;

/** Parses `$key[...]`; returns an error message for a malformed pattern. */
export function compileAccessor(pattern: string): Accessor | string {
  const s = pattern.trim();
  if (!s.startsWith('$')) return `record accessor '${pattern}' must start with '$'`;
  let rest = s.slice(1);
  const head = KEY.exec(rest);
  if (!head) return `record accessor '${pattern}' has no key after '$'`;
  if (/^\d/.test(head[0])) return `key name for record accessor cannot start with a number: ${pattern}`;
  const path: PathPart[] = [head[0]];
  rest = rest.slice(head[0].length);
  while (rest.length) {
    const m = /^\[\s*(?:'([^']*)'|"([^"]*)"|(\d+))\s*\]/.exec(rest);
    if (!m) return `record accessor '${pattern}': expected ['key'] or [index] at '${rest}'`;
    path.push(m[3] !== undefined ? Number(m[3]) : (m[1] ?? m[2])!);
    rest = rest.slice(m[0].length);
  }
  return { pattern: s, path, name: path.join('_') };
}

const hasOwn = Object.prototype.hasOwnProperty;

/** The value at the path, or undefined. */
export function lookup(record: unknown, path: readonly PathPart[]): unknown {
  let v = record;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    if (typeof p === 'number') {
      if (!Array.isArray(v)) return undefined;
      v = v[p];
    } else {
      if (Array.isArray(v) || !hasOwn.call(v, p)) return undefined;
      v = (v as Record<string, unknown>)[p];
    }
  }
  return v;
}

/**
 * A record accessor value as text, as Fluent Bit translates it into a label: strings as they are,
 * numbers and booleans printed; maps, arrays, null and missing keys give undefined.
 */
export function scalarText(v: unknown): string | undefined {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
    case 'bigint':
      return String(v);
    case 'boolean':
      return v ? 'true' : 'false';
    default:
      if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
      return undefined;
  }
}

/**
 * A copy of `record` without the keys at `paths`, copying only the maps along removed paths; the
 * original (shared with other outputs) is never changed. Returns the record itself when nothing
 * was removed.
 */
export function without(record: Record<string, unknown>, paths: readonly PathPart[][]): Record<string, unknown> {
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

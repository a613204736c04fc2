/**
 * The operators of the condition language on literal values, as libsinsp implements them:
 * string comparisons, glob/iglob (fnmatch), pmatch (path prefixes), bcontains/bstartswith (hex
 * bytes), regex (RE2, whole value), and numeric comparisons. Each compiles its literal once into
 * a test; a bad literal is a CompileError at its position.
 */
import { compileRegex, type SafeRegex } from '../core/safe-regex.js';
import { CompileError } from './compile.js';
import type { Pos } from './parser.js';

function asciiLower(s: string): string {
  let out = '';
  let changed = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) {
      if (!changed) {
        out = s.slice(0, i);
        changed = true;
      }
      out += String.fromCharCode(c + 32);
    } else if (changed) out += s[i];
  }
  return changed ? out : s;
}

type GlobTok = { t: 'lit'; c: string } | { t: 'any' } | { t: 'star' } | { t: 'set'; neg: boolean; ranges: Array<[string, string]> };

/** fnmatch(3) without flags, as libsinsp's glob operator: `*` `?` `[...]` (`!`/`^` negate) and `\` escapes. */
export function compileGlob(pattern: string, fold: boolean): (s: string) => boolean {
  const p = fold ? asciiLower(pattern) : pattern;
  const toks: GlobTok[] = [];
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') {
      if (toks.at(-1)?.t !== 'star') toks.push({ t: 'star' });
    } else if (c === '?') toks.push({ t: 'any' });
    else if (c === '\\' && i + 1 < p.length) toks.push({ t: 'lit', c: p[++i]! });
    else if (c === '[') {
      let j = i + 1;
      let neg = false;
      if (p[j] === '!' || p[j] === '^') {
        neg = true;
        j++;
      }
      const ranges: Array<[string, string]> = [];
      let first = true;
      let closed = false;
      while (j < p.length) {
        let a = p[j]!;
        if (a === ']' && !first) {
          closed = true;
          break;
        }
        first = false;
        if (a === '\\' && j + 1 < p.length) a = p[++j]!;
        if (p[j + 1] === '-' && j + 2 < p.length && p[j + 2] !== ']') {
          let b = p[j + 2]!;
          j += 2;
          if (b === '\\' && j + 1 < p.length) b = p[++j]!;
          ranges.push([a, b]);
        } else ranges.push([a, a]);
        j++;
      }
      if (closed) {
        toks.push({ t: 'set', neg, ranges });
        i = j;
      } else toks.push({ t: 'lit', c: '[' });
    } else toks.push({ t: 'lit', c });
  }
  const one = (t: GlobTok, ch: string): boolean => {
    switch (t.t) {
      case 'lit':
        return t.c === ch;
      case 'any':
        return true;
      case 'set': {
        let hit = false;
        for (const [a, b] of t.ranges) if (ch >= a && ch <= b) hit = true;
        return hit !== t.neg;
      }
      default:
        return false;
    }
  };
  // Classic linear backtracking over the last star: O(len(s) * len(pattern)), never exponential.
  return (input: string) => {
    const s = fold ? asciiLower(input) : input;
    let si = 0;
    let ti = 0;
    let starT = -1;
    let starS = 0;
    while (si < s.length) {
      const t = toks[ti];
      if (t && t.t === 'star') {
        starT = ti++;
        starS = si;
      } else if (t && one(t, s[si]!)) {
        si++;
        ti++;
      } else if (starT >= 0) {
        ti = starT + 1;
        si = ++starS;
      } else return false;
    }
    while (toks[ti]?.t === 'star') ti++;
    return ti === toks.length;
  };
}

function pathComponents(p: string): string[] {
  return p.split('/').filter((c) => c !== '');
}

interface Trie {
  end: boolean;
  next: Map<string, Trie>;
}

/** libsinsp's pmatch: the value is one of the paths or lies below one (component-wise). */
export function compilePmatch(paths: readonly string[]): (s: string) => boolean {
  const root: Trie = { end: false, next: new Map() };
  for (const p of paths) {
    let n = root;
    for (const c of pathComponents(p)) {
      let x = n.next.get(c);
      if (!x) n.next.set(c, (x = { end: false, next: new Map() }));
      n = x;
    }
    n.end = true;
  }
  return (s: string) => {
    let n: Trie | undefined = root;
    if (n.end) return true;
    for (const c of pathComponents(s)) {
      n = n.next.get(c);
      if (!n) return false;
      if (n.end) return true;
    }
    return false;
  };
}

function hexBytes(s: string, pos: Pos): Buffer {
  if (!/^([0-9a-fA-F]{2})*$/.test(s)) throw new CompileError(`invalid hex string '${s}' (expected pairs of hex digits)`, pos);
  return Buffer.from(s, 'hex');
}

/** A test of a string value against a literal, for every string operator. */
export function stringTest(op: string, lit: string, pos: Pos): (v: string) => boolean {
  switch (op) {
    case '=':
    case '==':
      return (v) => v === lit;
    case '!=':
      return (v) => v !== lit;
    case '<':
      return (v) => v < lit;
    case '<=':
      return (v) => v <= lit;
    case '>':
      return (v) => v > lit;
    case '>=':
      return (v) => v >= lit;
    case 'contains':
      return (v) => v.includes(lit);
    case 'icontains': {
      const l = asciiLower(lit);
      return (v) => asciiLower(v).includes(l);
    }
    case 'startswith':
      return (v) => v.startsWith(lit);
    case 'endswith':
      return (v) => v.endsWith(lit);
    case 'glob':
      return compileGlob(lit, false);
    case 'iglob':
      return compileGlob(lit, true);
    case 'bcontains': {
      const b = hexBytes(lit, pos);
      return (v) => Buffer.from(v, 'utf8').includes(b);
    }
    case 'bstartswith': {
      const b = hexBytes(lit, pos);
      return (v) => {
        const x = Buffer.from(v, 'utf8');
        return x.length >= b.length && x.subarray(0, b.length).equals(b);
      };
    }
    case 'regex': {
      // libsinsp compiles the value with RE2 and matches it with ANCHOR_BOTH: the whole value
      // must match. The pattern is checked alone first, so that one like `a)|(b` is an error
      // rather than a different regex once wrapped.
      let re: SafeRegex;
      try {
        compileRegex(lit, { syntax: 'plain' });
        re = compileRegex(`^(?:${lit})$`, { syntax: 'plain' });
      } catch (e) {
        throw new CompileError(`invalid regular expression '${lit}': ${(e as Error).message.replace(/^invalid regular expression: /, '')}`, pos);
      }
      return (v) => re.test(v);
    }
    default:
      throw new CompileError(`operator '${op}' is not supported here`, pos);
  }
}

export function parseNumber(s: string, pos: Pos): number {
  const n = /^0[xX][0-9a-fA-F]+$/.test(s) ? parseInt(s, 16) : Number(s);
  if (s.trim() === '' || !Number.isFinite(n)) throw new CompileError(`'${s}' is not a valid number`, pos);
  return n;
}

export function numTest(op: string, n: number, pos: Pos): (v: number) => boolean {
  switch (op) {
    case '=':
    case '==':
    case 'in':
    case 'intersects':
      return (v) => v === n;
    case '!=':
      return (v) => v !== n;
    case '<':
      return (v) => v < n;
    case '<=':
      return (v) => v <= n;
    case '>':
      return (v) => v > n;
    case '>=':
      return (v) => v >= n;
    default:
      throw new CompileError(`'${op}' operator not supported for numeric filters`, pos);
  }
}

export const NUMERIC_OK = new Set(['=', '==', '!=', '<', '<=', '>', '>=', 'in', 'intersects', 'exists']);
export const LIST_FIELD_OK = new Set(['in', 'intersects', 'exists']);

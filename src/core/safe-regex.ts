/**
 * Configured regular expressions, compiled once and run in linear time.
 *
 * Every regular expression that comes from configuration (parsers, grep, modify, rewrite_tag,
 * routing, rules) goes through `compileRegex`, which runs it on RE2 (the `re2` native binding):
 * RE2 matches in time linear in the input, so a pattern such as `(a+)+$` cannot freeze the
 * process the way a backtracking engine (V8's, or Fluent Bit's Onigmo) can on a hostile line.
 *
 * The price is RE2's syntax: constructs that need backtracking (backreferences `\1` `\k<n>`,
 * lookaround `(?=` `(?!` `(?<=` `(?<!`, atomic groups `(?>`, possessive quantifiers `a++`,
 * conditionals, `\G` `\K`) are rejected at load time with a message naming the construct.
 *
 * Two syntaxes:
 * - `ruby` (Fluent Bit's options): Onigmo's Ruby syntax as Fluent Bit compiles it. `/pattern/`
 *   and `/pattern/imx` are accepted (flb_regex.c), `^` and `$` match at line boundaries (Ruby),
 *   `(?m)` / `/m` make `.` match a newline (Ruby's meaning), `\h` is a hex digit, `\A` `\z` `\Z`
 *   anchor the text, `(?'name'...)` is a named group, `(?#...)` is a comment, `/x` and a leading
 *   `(?x)` allow spaces and `#` comments.
 * - `plain`: RE2 / JavaScript syntax as written; `^` `$` anchor the whole text.
 */
import RE2 from 're2';

export type RegexSyntax = 'ruby' | 'plain';

export interface CompileOptions {
  /** Default `ruby`, the syntax Fluent Bit users write. */
  syntax?: RegexSyntax;
  ignoreCase?: boolean;
}

/** A compiled configured regex. `exec` follows RegExp.prototype.exec (index, groups). */
export interface SafeRegex {
  /** The pattern as configured. */
  readonly source: string;
  /** The pattern as RE2 runs it. */
  readonly compiled: string;
  /** Named capture groups, in pattern order. */
  readonly groupNames: readonly string[];
  /** Number of capture groups (named or not). */
  readonly groupCount: number;
  test(text: string): boolean;
  exec(text: string): RegExpExecArray | null;
}

/** A pattern that cannot be compiled; the message says what and where, for a ConfigError. */
export class RegexError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegexError';
  }
}

interface Translated {
  source: string;
  flags: string;
  groupNames: string[];
  groupCount: number;
}

const UNSUPPORTED_GROUPS: Array<[string, string]> = [
  ['(?<=', 'lookbehind (?<=...)'],
  ['(?<!', 'negative lookbehind (?<!...)'],
  ['(?=', 'lookahead (?=...)'],
  ['(?!', 'negative lookahead (?!...)'],
  ['(?>', 'atomic group (?>...)'],
  ['(?~', 'absence operator (?~...)'],
  ['(?(', 'conditional (?(cond)...)'],
];

const UNSUPPORTED_ESCAPES: Record<string, string> = {
  k: 'backreference \\k<name>',
  g: 'subexpression call \\g<name>',
  G: 'anchor \\G',
  K: 'keep \\K',
  R: 'linebreak \\R',
  X: 'extended grapheme \\X',
};

function unsupported(what: string, at: number): never {
  throw new RegexError(
    `${what} at offset ${at} needs a backtracking engine; configured regexes run on RE2 (linear time, no catastrophic backtracking), ` + 'which does not support it: rewrite the pattern without it',
  );
}

/** Removes spaces and `#` comments outside classes (extended mode). */
function stripExtended(p: string): string {
  let out = '';
  let inClass = 0;
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '\\') {
      out += c + (p[i + 1] ?? '');
      i++;
    } else if (inClass > 0) {
      if (c === '[') inClass++;
      else if (c === ']') inClass--;
      out += c;
    } else if (c === '[') {
      inClass = 1;
      out += c;
    } else if (c === '#') {
      while (i < p.length && p[i] !== '\n') i++;
    } else if (!/\s/.test(c)) out += c;
  }
  return out;
}

function translate(pattern: string, syntax: RegexSyntax, ignoreCase: boolean): Translated {
  let p = pattern;
  let dotAll = false;
  let extended = false;
  let ci = ignoreCase;
  if (syntax === 'ruby') {
    // flb_regex.c: `/pattern/` and `/pattern/opts` with opts among m (dot matches newline),
    // i (ignore case), x (extended), o (ignored).
    const m = /^\/([\s\S]*)\/([mixo]*)$/.exec(p);
    if (m && p.length >= 2) {
      p = m[1]!;
      for (const o of m[2]!) {
        if (o === 'm') dotAll = true;
        else if (o === 'i') ci = true;
        else if (o === 'x') extended = true;
      }
    }
    const lead = /^\(\?([imx]+)\)/.exec(p);
    if (lead && lead[1]!.includes('x')) {
      extended = true;
      const rest = lead[1]!.replace(/x/g, '');
      p = (rest ? `(?${rest})` : '') + p.slice(lead[0].length);
    }
    if (extended) p = stripExtended(p);
  }

  let out = '';
  const groupNames: string[] = [];
  let groupCount = 0;
  let inClass = 0;
  let classStart = -1;
  let lastWasQuantifier = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '\\') {
      const n = p[i + 1];
      if (n === undefined) throw new RegexError('trailing backslash at the end of the pattern');
      lastWasQuantifier = false;
      if (n >= '1' && n <= '9' && inClass === 0) unsupported(`backreference \\${n}`, i);
      if (UNSUPPORTED_ESCAPES[n] && inClass === 0) unsupported(UNSUPPORTED_ESCAPES[n]!, i);
      if (syntax === 'ruby') {
        if (n === 'h') {
          out += inClass ? '0-9a-fA-F' : '[0-9a-fA-F]';
          i++;
          continue;
        }
        if (n === 'H') {
          if (inClass) throw new RegexError(`\\H inside a character class at offset ${i} is not supported; use [^0-9a-fA-F]`);
          out += '[^0-9a-fA-F]';
          i++;
          continue;
        }
        if (n === 'Z' && inClass === 0) {
          // Ruby \Z: end of text or before a final newline (the newline joins the match).
          out += '(?:\\n?\\z)';
          i++;
          continue;
        }
        if (n === 'e') {
          out += '\\x1B';
          i++;
          continue;
        }
      }
      out += c + n;
      i++;
      continue;
    }
    if (inClass > 0) {
      if (c === '[' && p[i + 1] === ':') {
        // POSIX bracket [:alpha:], which RE2 understands.
        const end = p.indexOf(':]', i + 2);
        if (end > 0) {
          out += p.slice(i, end + 2);
          i = end + 1;
          continue;
        }
      }
      if (c === '&' && p[i + 1] === '&') throw new RegexError(`character class intersection && at offset ${i} is not supported`);
      if (c === '[') throw new RegexError(`nested character class at offset ${i} is not supported`);
      if (c === ']' && i !== classStart) inClass = 0;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = 1;
      classStart = p[i + 1] === '^' ? i + 2 : i + 1;
      lastWasQuantifier = false;
      out += c;
      continue;
    }
    if (c === '(') {
      lastWasQuantifier = false;
      if (p[i + 1] !== '?') {
        groupCount++;
        out += c;
        continue;
      }
      for (const [prefix, what] of UNSUPPORTED_GROUPS) if (p.startsWith(prefix, i)) unsupported(what, i);
      if (p.startsWith('(?#', i)) {
        const end = p.indexOf(')', i);
        if (end < 0) throw new RegexError(`unterminated comment (?# at offset ${i}`);
        i = end;
        continue;
      }
      const named = /^\(\?(?:<([^>]*)>|'([^']*)'|P<([^>]*)>)/.exec(p.slice(i, i + 200));
      if (named) {
        const name = named[1] ?? named[2] ?? named[3]!;
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
          throw new RegexError(`group name '${name}' at offset ${i}: names are letters, digits and _ and do not start with a digit`);
        }
        if (groupNames.includes(name)) throw new RegexError(`duplicate group name '${name}' at offset ${i}`);
        groupNames.push(name);
        groupCount++;
        out += `(?P<${name}>`;
        i += named[0].length - 1;
        continue;
      }
      const flags = /^\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])/.exec(p.slice(i, i + 20));
      if (flags) {
        const map = (s: string): string => {
          let r = '';
          for (const f of s) {
            if (f === 'i') r += 'i';
            else if (f === 'm') r += syntax === 'ruby' ? 's' : 'm';
            else if (f === 's' && syntax === 'plain') r += 's';
            else if (f === 'x') throw new RegexError(`(?x) at offset ${i}: extended mode is supported only for the whole pattern (/.../x or a leading (?x))`);
            else throw new RegexError(`unknown group option '${f}' at offset ${i}`);
          }
          return r;
        };
        const on = map(flags[1]!);
        const off = map(flags[2] ?? '');
        out += `(?${on}${off ? `-${off}` : ''}${flags[3]}`;
        i += flags[0].length - 1;
        continue;
      }
      out += c;
      continue;
    }
    if (c === '{') {
      const rep = /^\{\d+(?:,\d*)?\}/.exec(p.slice(i, i + 24));
      if (rep) {
        out += rep[0];
        i += rep[0].length - 1;
        lastWasQuantifier = true;
        continue;
      }
    }
    if (c === '*' || c === '+' || c === '?') {
      if (c === '+' && lastWasQuantifier) unsupported('possessive quantifier', i);
      // `a+?` is lazy, not a new quantifier.
      lastWasQuantifier = !(c === '?' && lastWasQuantifier);
      out += c;
      continue;
    }
    lastWasQuantifier = false;
    out += c;
  }
  if (inClass) throw new RegexError('unterminated character class [');
  let flags = '';
  if (ci) flags += 'i';
  // Ruby: ^ and $ always match at line boundaries.
  if (syntax === 'ruby') flags += 'm';
  if (dotAll) flags += 's';
  return { source: out, flags, groupNames, groupCount };
}

class Re2Regex implements SafeRegex {
  constructor(
    readonly source: string,
    readonly compiled: string,
    readonly groupNames: readonly string[],
    readonly groupCount: number,
    private readonly re: RE2,
  ) {}

  test(text: string): boolean {
    return this.re.test(text);
  }

  exec(text: string): RegExpExecArray | null {
    return this.re.exec(text);
  }
}

/** Compiles a configured pattern; throws RegexError with a message fit for a ConfigError. */
export function compileRegex(pattern: string, options: CompileOptions = {}): SafeRegex {
  const t = translate(pattern, options.syntax ?? 'ruby', options.ignoreCase ?? false);
  let re: RE2;
  try {
    re = new RE2(t.source, t.flags);
  } catch (e) {
    throw new RegexError(`invalid regular expression: ${(e as Error).message}`);
  }
  return new Re2Regex(pattern, t.source, t.groupNames, t.groupCount, re);
}

/** compileRegex that returns the error message instead of throwing (for option `check`s). */
export function regexError(pattern: string, options?: CompileOptions): string | undefined {
  try {
    compileRegex(pattern, options);
    return undefined;
  } catch (e) {
    if (e instanceof RegexError) return e.message;
    throw e;
  }
}

/**
 * Scanners for the logfmt and LTSV formats, following Fluent Bit's flb_parser_logfmt.c and
 * flb_parser_ltsv.c byte for byte (on UTF-16 code units; every byte Fluent Bit treats as part of
 * a key or value, including UTF-8 sequences, is such a unit here). Both stop at a line break that directly follows a field.
 */

export interface Pair {
  key: string;
  /** The value text; `true` for a logfmt key without a value (`key` or `key=`). */
  value: string | true;
}

/**
 * logfmt (https://brandur.org/logfmt):
 *   ident_byte = any byte greater than ' ', excluding '=' and '"'
 *   value = ident | '"' { string_byte | '\' any } '"'
 *   pair = key '=' value | key '=' | key
 * Returns null when `noBareKeys` is set and a key has no `=`.
 */
export function scanLogfmt(text: string, noBareKeys: boolean): Pair[] | null {
  const pairs: Pair[] = [];
  const n = text.length;
  const ident = (c: number) => c > 32 && c !== 61 && c !== 34;
  let i = 0;
  while (i < n) {
    while (i < n && !ident(text.charCodeAt(i))) i++;
    if (i >= n) break;
    const ks = i;
    while (i < n && ident(text.charCodeAt(i))) i++;
    const key = text.slice(ks, i);
    let value: string | true = true;
    let valueSet = false;
    if (i < n && text.charCodeAt(i) === 61) {
      valueSet = true;
      i++;
      if (i < n && text.charCodeAt(i) === 34) {
        i++;
        const vs = i;
        let escaped = false;
        while (i < n) {
          const c = text.charCodeAt(i);
          if (c === 92) {
            escaped = true;
            i += 2;
          } else if (c === 34) break;
          else i++;
        }
        const raw = text.slice(vs, Math.min(i, n));
        value = escaped ? unescapeString(raw) : raw;
        if (i < n) i++;
      } else {
        const vs = i;
        while (i < n && ident(text.charCodeAt(i))) i++;
        if (i > vs) value = text.slice(vs, i);
      }
    }
    if (noBareKeys && !valueSet) return null;
    pairs.push({ key, value });
    // A line break right after a pair ends the record (garbage before it does not).
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) break;
  }
  return pairs;
}

/** LTSV label bytes: [0-9A-Za-z_.-]. */
function labelChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 46 || c === 45;
}

/**
 * LTSV (http://ltsv.org): `label:value` fields separated by TAB; a label is [0-9A-Za-z_.-]+ and
 * a value is any bytes but TAB, CR, LF and NUL.
 */
export function scanLtsv(text: string): Pair[] {
  const pairs: Pair[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const ls = i;
    while (i < n && labelChar(text.charCodeAt(i))) i++;
    if (i >= n || text.charCodeAt(i) !== 58) break;
    const label = text.slice(ls, i);
    i++;
    const fs = i;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 9 || c === 10 || c === 13 || c === 0) break;
    }
    if (label !== '') pairs.push({ key: label, value: text.slice(fs, i) });
    if (i >= n) break;
    const c = text.charCodeAt(i);
    if (c === 9) i++;
    else if (c === 10 || c === 13) break;
  }
  return pairs;
}

const SIMPLE_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', '"': '"', '\\': '\\', '/': '/', "'": "'", a: '\x07', v: '\v' };

/**
 * Backslash escapes as flb_unescape_string_utf8 reads them: \n \t \r \b \f \a \v \" \' \\ \/ and
 * \uXXXX (with surrogate pairs); an unknown escape keeps the escaped character.
 */
export function unescapeString(s: string): string {
  if (!s.includes('\\')) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\' || i + 1 >= s.length) {
      out += c;
      continue;
    }
    const e = s[++i]!;
    if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(s.slice(i + 1, i + 5))) {
      out += String.fromCharCode(Number.parseInt(s.slice(i + 1, i + 5), 16));
      i += 4;
    } else out += SIMPLE_ESCAPES[e] ?? e;
  }
  return out;
}

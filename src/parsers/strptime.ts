/**
 * Fluent Bit's time parsing (flb_parser_time_lookup + flb_strptime, the OpenBSD strptime):
 * `time_format` is compiled once into a list of steps; parsing a value walks them.
 *
 * Rules taken from Fluent Bit:
 * - `%L` is the fractional part of the seconds, up to nine digits (nanoseconds).
 * - A format without a year (`%Y`, `%y`, `%s`) gets the current year, and the month and day
 *   default to today (UTC), as for old syslog lines.
 * - Without `%z` / `%Z` in the format, the time is in UTC shifted by `time_offset`, or in the
 *   system timezone (TZ) with `time_system_timezone`.
 * - `time_strict: false` accepts a value that matches only a prefix of the format: the fields
 *   read so far are used.
 * - Text after the last directive is ignored (strptime stops there).
 * - A space in the format matches any amount of white space, including none; other characters
 *   must match exactly.
 */

export interface ParsedTime {
  sec: number;
  nsec: number;
}

export interface TimeFormatOptions {
  /** time_strict (default true). */
  strict?: boolean;
  /** Fixed offset in seconds east of UTC (time_offset), for formats without a zone. */
  offset?: number;
  /** time_system_timezone: formats without a zone are read in the process' timezone (TZ). */
  systemTimezone?: boolean;
}

export interface TimeFormat {
  readonly format: string;
  /** Parses a time value; null when it does not match (with time_strict). `now` is for tests. */
  parse(text: string, now?: Date): ParsedTime | null;
}

/** kind 0: literal text, 1: white space, 2: directive. */
interface Step {
  kind: 0 | 1 | 2;
  text: string;
}

const COMPOSITE: Record<string, string> = {
  D: '%m/%d/%y',
  T: '%H:%M:%S',
  R: '%H:%M',
  r: '%I:%M:%S %p',
  F: '%Y-%m-%d',
  c: '%a %b %e %H:%M:%S %Y',
  x: '%m/%d/%y',
  X: '%H:%M:%S',
};

const SIMPLE = new Set('aAbBhCdeHIjmMpSsuwUWVyYzZLGgk l'.replace(/ /g, '').split(''));

const MONTHS = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];
const DAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

export class TimeFormatError extends Error {}

function pushLit(out: Step[], c: string): void {
  const last = out[out.length - 1];
  if (last && last.kind === 0) last.text += c;
  else out.push({ kind: 0, text: c });
}

function pushWs(out: Step[]): void {
  if (out[out.length - 1]?.kind !== 1) out.push({ kind: 1, text: '' });
}

function compileSteps(fmt: string, out: Step[], depth = 0): void {
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i]!;
    if (c === '%') {
      let d = fmt[i + 1];
      if (d === undefined) throw new TimeFormatError(`time_format '${fmt}' ends with a lone %`);
      i++;
      // GNU/BSD E and O modifiers select alternative representations; the C locale has none.
      if ((d === 'E' || d === 'O') && fmt[i + 1] !== undefined) {
        d = fmt[i + 1]!;
        i++;
      }
      if (d === '%') pushLit(out, '%');
      else if (d === 'n' || d === 't') pushWs(out);
      else if (COMPOSITE[d] && depth === 0) compileSteps(COMPOSITE[d]!, out, 1);
      else if (SIMPLE.has(d)) out.push({ kind: 2, text: d === 'h' ? 'b' : d === 'e' ? 'd' : d === 'k' ? 'H' : d === 'l' ? 'I' : d });
      else throw new TimeFormatError(`unknown time_format directive %${d} in '${fmt}'`);
    } else if (/\s/.test(c)) pushWs(out);
    else pushLit(out, c);
  }
}

interface Fields {
  year?: number;
  century?: number;
  yy?: number;
  month?: number;
  day?: number;
  yday?: number;
  hour: number;
  hour12?: number;
  pm?: boolean;
  min: number;
  sec: number;
  epoch?: number;
  frac: number;
  offset?: number;
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';

export function compileTimeFormat(format: string, options: TimeFormatOptions = {}): TimeFormat {
  const steps: Step[] = [];
  compileSteps(format, steps);
  if (!steps.some((s) => s.kind === 2)) throw new TimeFormatError(`time_format '${format}' has no % directive`);
  const strict = options.strict ?? true;
  const fixedOffset = options.offset ?? 0;
  const systemTz = options.systemTimezone ?? false;
  const dirs = new Set(steps.filter((s) => s.kind === 2).map((s) => s.text));
  const hasYear = dirs.has('Y') || dirs.has('y') || dirs.has('s') || dirs.has('G');

  const parse = (text: string, now?: Date): ParsedTime | null => {
    const f: Fields = { hour: 0, min: 0, sec: 0, frac: 0 };
    let p = 0;
    const num = (min: number, max: number, maxDigits: number): number | undefined => {
      let q = p;
      let v = 0;
      while (q - p < maxDigits && isDigit(text[q])) v = v * 10 + (text.charCodeAt(q++) - 48);
      if (q === p || v < min || v > max) return undefined;
      p = q;
      return v;
    };
    const name = (list: string[]): number | undefined => {
      const rest = text.slice(p, p + 12).toLowerCase();
      for (let k = 0; k < list.length; k++) {
        if (rest.startsWith(list[k]!)) {
          p += list[k]!.length;
          return k;
        }
      }
      for (let k = 0; k < list.length; k++) {
        if (rest.startsWith(list[k]!.slice(0, 3))) {
          p += 3;
          return k;
        }
      }
      return undefined;
    };
    let ok = true;
    for (const s of steps) {
      if (s.kind === 1) {
        for (let c = text.charCodeAt(p); c === 32 || (c >= 9 && c <= 13); c = text.charCodeAt(++p));
        continue;
      }
      if (s.kind === 0) {
        if (!text.startsWith(s.text, p)) {
          ok = false;
          break;
        }
        p += s.text.length;
        continue;
      }
      let v: number | undefined;
      switch (s.text) {
        case 'a':
        case 'A':
          v = name(DAYS);
          break;
        case 'b':
        case 'B':
          v = name(MONTHS);
          if (v !== undefined) f.month = v + 1;
          break;
        case 'C':
          v = num(0, 99, 2);
          f.century = v;
          break;
        case 'd':
          while (text[p] === ' ') p++;
          v = num(1, 31, 2);
          f.day = v;
          break;
        case 'H':
          // %k (space-padded hour) reads as %H.
          while (text[p] === ' ') p++;
          v = num(0, 23, 2);
          if (v !== undefined) f.hour = v;
          break;
        case 'I':
          v = num(1, 12, 2);
          f.hour12 = v;
          break;
        case 'j':
          v = num(1, 366, 3);
          f.yday = v;
          break;
        case 'm':
          v = num(1, 12, 2);
          f.month = v;
          break;
        case 'M':
          v = num(0, 59, 2);
          if (v !== undefined) f.min = v;
          break;
        case 'p': {
          const t = text.slice(p, p + 2).toUpperCase();
          if (t === 'AM' || t === 'PM') {
            f.pm = t === 'PM';
            p += 2;
            v = 0;
          }
          break;
        }
        case 'S':
          v = num(0, 61, 2);
          if (v !== undefined) f.sec = v;
          break;
        case 's': {
          const m = /^-?\d+/.exec(text.slice(p, p + 24));
          if (m) {
            v = Number(m[0]);
            f.epoch = v;
            p += m[0].length;
          }
          break;
        }
        case 'u':
        case 'w':
          v = num(0, 7, 1);
          break;
        case 'U':
        case 'W':
        case 'V':
          v = num(0, 53, 2);
          break;
        case 'g':
          v = num(0, 99, 2);
          break;
        case 'G':
        case 'Y': {
          const neg = text[p] === '-';
          if (neg) p++;
          v = num(0, 9999, 4);
          if (v !== undefined) f.year = neg ? -v : v;
          break;
        }
        case 'y':
          v = num(0, 99, 2);
          f.yy = v;
          break;
        case 'L': {
          let q = p;
          while (q - p < 9 && isDigit(text[q])) q++;
          if (q > p) {
            f.frac = Number(text.slice(p, q).padEnd(9, '0'));
            // More than nine digits: the rest is below a nanosecond.
            while (isDigit(text[q])) q++;
            p = q;
            v = 0;
          }
          break;
        }
        case 'z': {
          if (text[p] === 'Z' || text[p] === 'z') {
            f.offset = 0;
            p++;
            v = 0;
            break;
          }
          const m = /^([+-])(\d{2})(?::?(\d{2}))?/.exec(text.slice(p, p + 6));
          if (m && Number(m[2]) <= 24 && Number(m[3] ?? 0) <= 59) {
            f.offset = (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 3600 + Number(m[3] ?? 0) * 60);
            p += m[0].length;
            v = 0;
          }
          break;
        }
        case 'Z': {
          const m = /^(UTC|GMT|UT|Z)\b/i.exec(text.slice(p, p + 4));
          if (m) {
            f.offset = 0;
            p += m[0].length;
            v = 0;
          }
          break;
        }
      }
      if (v === undefined) {
        ok = false;
        break;
      }
    }
    if (!ok && strict) return null;

    if (f.epoch !== undefined) return { sec: f.epoch, nsec: f.frac };
    let year: number;
    let month: number;
    let day: number;
    if (hasYear) {
      if (f.year !== undefined) year = f.year;
      else if (f.yy !== undefined) year = f.century !== undefined ? f.century * 100 + f.yy : f.yy < 69 ? 2000 + f.yy : 1900 + f.yy;
      else year = f.century !== undefined ? f.century * 100 : (now ?? new Date()).getUTCFullYear();
      month = f.month ?? 1;
      day = f.day ?? 1;
    } else {
      const today = now ?? new Date();
      year = today.getUTCFullYear();
      month = f.month ?? today.getUTCMonth() + 1;
      day = f.day ?? today.getUTCDate();
    }
    if (f.yday !== undefined && f.month === undefined && f.day === undefined) {
      month = 1;
      day = f.yday;
    }
    let hour = f.hour;
    if (f.hour12 !== undefined) hour = (f.hour12 % 12) + (f.pm ? 12 : 0);
    else if (f.pm && hour < 12) hour += 12;

    let ms: number;
    if (f.offset === undefined && systemTz) {
      const d = new Date(2000, 0, 1, 0, 0, 0);
      d.setFullYear(year, month - 1, day);
      d.setHours(hour, f.min, f.sec, 0);
      ms = d.getTime();
    } else {
      if (year >= 100) ms = Date.UTC(year, month - 1, day, hour, f.min, f.sec);
      else {
        // Date.UTC reads years 0-99 as 1900-1999; setUTCFullYear keeps them.
        const d = new Date(0);
        d.setUTCFullYear(year, month - 1, day);
        d.setUTCHours(hour, f.min, f.sec, 0);
        ms = d.getTime();
      }
      ms -= (f.offset ?? fixedOffset) * 1000;
    }
    if (!Number.isFinite(ms)) return null;
    return { sec: Math.floor(ms / 1000), nsec: f.frac };
  };
  return { format, parse };
}

/** time_offset (flb_parser_tzone_offset): `Z`, `+HHMM`, `-HHMM`, `+HH:MM`; seconds east of UTC. */
export function parseTimeOffset(s: string): number | undefined {
  const t = s.trim();
  if (t === 'Z') return 0;
  const m = /^([+-])(\d{2}):?(\d{2})$/.exec(t);
  if (!m) return undefined;
  const h = Number(m[2]);
  const min = Number(m[3]);
  if (h > 59 || min > 59) return undefined;
  return (m[1] === '-' ? -1 : 1) * (h * 3600 + min * 60);
}

/**
 * Helpers shared by the Fluent Bit-style filters: splitting a rule value into arguments, finding
 * where an option was written (option names are case-insensitive), rate-limited warnings.
 */
import type { SourcePos } from '../../config/errors.js';
import type { RawSection } from '../../config/schema.js';

/**
 * Splits `value` on white space into at most `max` arguments; the last one takes the rest of the
 * line. A double-quoted argument may hold spaces (`\"` and `\\` inside), as Fluent Bit's
 * flb_utils_split_quoted reads rule values.
 */
export function splitArgs(value: string, max = Infinity): string[] | string {
  const out: string[] = [];
  let i = 0;
  const n = value.length;
  while (i < n) {
    while (i < n && /\s/.test(value[i]!)) i++;
    if (i >= n) break;
    if (out.length === max - 1) {
      const rest = value.slice(i).trimEnd();
      out.push(rest.length >= 2 && rest.startsWith('"') && rest.endsWith('"') && !rest.slice(1, -1).includes('"') ? rest.slice(1, -1) : rest);
      break;
    }
    if (value[i] === '"') {
      let s = '';
      i++;
      for (;;) {
        if (i >= n) return `unterminated quote in '${value}'`;
        const c = value[i]!;
        if (c === '\\' && (value[i + 1] === '"' || value[i + 1] === '\\')) {
          s += value[i + 1];
          i += 2;
        } else if (c === '"') {
          i++;
          break;
        } else {
          s += c;
          i++;
        }
      }
      out.push(s);
      continue;
    }
    const start = i;
    while (i < n && !/\s/.test(value[i]!)) i++;
    out.push(value.slice(start, i));
  }
  return out;
}

/** The raw key a user wrote for option `name`, if any. */
export function rawOption(section: RawSection, name: string): string | undefined {
  const lower = name.toLowerCase();
  return Object.keys(section.values).find((k) => k.toLowerCase() === lower);
}

/** Where option `name`'s value was written (or the section, when it was not). */
export function optionPos(section: RawSection, name: string): SourcePos {
  const k = rawOption(section, name);
  return (k && (section.valuePos[k] ?? section.keyPos[k])) || section.pos;
}

/** The values of multi options in the order the user wrote them: [option, value][]. */
export function orderedEntries(section: RawSection, names: ReadonlySet<string>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(section.values)) {
    const lower = k.toLowerCase();
    if (!names.has(lower)) continue;
    const list = Array.isArray(v) ? v : [v];
    for (const item of list) out.push([lower, String(item)]);
  }
  return out;
}

/** Logs a warning at most once per `everyMs`, telling how many were suppressed in between. */
export class WarnLimiter {
  private last = -Infinity;
  private suppressed = 0;

  constructor(
    private readonly logger: { warn(obj: object, msg: string): void },
    private readonly everyMs = 60_000,
  ) {}

  warn(obj: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if (now - this.last < this.everyMs) {
      this.suppressed++;
      return;
    }
    this.logger.warn({ ...obj, suppressed: this.suppressed }, msg);
    this.last = now;
    this.suppressed = 0;
  }
}

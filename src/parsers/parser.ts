/**
 * One named parser: its option table (Fluent Bit's parser keys) and the compiled parser for the
 * json, regex, logfmt and ltsv formats (flb_parser_json.c, flb_parser_regex.c,
 * flb_parser_logfmt.c, flb_parser_ltsv.c).
 */
import { nestedDeeperThan } from '../core/json.js';
import { MAX_DEPTH } from '../core/msgpack-scan.js';
import { ConfigError, type SourcePos } from '../config/errors.js';
import type { ConfigOf, OptionTable, RawSection } from '../config/schema.js';
import { EventTime, type LogRecord } from '../core/event.js';
import type { LogParser, ParsedRecord } from '../core/plugin.js';
import { hasField, isMap, setField } from '../core/record-accessor.js';
import { compileRegex, RegexError, type SafeRegex } from '../core/safe-regex.js';
import { scanLogfmt, scanLtsv, type Pair } from './formats.js';
import { compileTimeFormat, parseTimeOffset, TimeFormatError, type TimeFormat } from './strptime.js';
import { castValue, parseTypes, type FieldType } from './types.js';

export const FORMATS = ['json', 'regex', 'logfmt', 'ltsv'] as const;
export type ParserFormat = (typeof FORMATS)[number];

export const parserOptions = {
  name: { type: 'string', required: true, description: 'Name the parser is referred to by (parser filter, other plugins)' },
  format: { type: 'enum', values: FORMATS, required: true, description: 'json, regex, logfmt or ltsv' },
  regex: {
    type: 'string',
    description: 'format regex: a Ruby (Onigmo) regular expression with named groups (?<name>...); each group becomes a field. Runs on RE2: no backreferences or lookaround',
  },
  time_key: { type: 'string', description: "Field holding the record's time (default: time); needs time_format" },
  time_format: {
    type: 'string',
    description: 'strptime format of time_key, e.g. %d/%b/%Y:%H:%M:%S %z; %L reads fractional seconds (up to nanoseconds), %s epoch seconds',
  },
  time_offset: { type: 'string', description: 'Fixed UTC offset (e.g. +0200, -0600) for times without a zone' },
  time_keep: { type: 'bool', default: false, description: 'Keep time_key in the record after reading the time from it' },
  time_strict: {
    type: 'bool',
    default: true,
    description: 'false: a time that matches only the start of time_format is accepted with the fields read so far',
  },
  time_system_timezone: {
    type: 'bool',
    default: false,
    description: 'Read times without a zone in the system timezone (TZ) instead of UTC / time_offset',
  },
  types: {
    type: 'string',
    description: 'Casts of parsed fields (regex, logfmt, ltsv): space-separated KEY:TYPE with TYPE integer, float, bool, hex or string',
  },
  skip_empty_values: { type: 'bool', description: 'format regex: leave out groups that matched nothing or an empty string (default true)' },
  logfmt_no_bare_keys: { type: 'bool', description: 'format logfmt: a key without =value makes the line not match (default false)' },
} as const satisfies OptionTable;

/** A parser section's config, as its option table gives it. */
export type ParserConfig = ConfigOf<typeof parserOptions>;

function at(section: RawSection, key: string): SourcePos {
  return section.valuePos[key] ?? section.keyPos[key] ?? section.pos;
}

/** The raw key as written (option names are case-insensitive). */
function rawKey(section: RawSection, name: string): string {
  return Object.keys(section.values).find((k) => k.toLowerCase() === name) ?? name;
}

class Parser implements LogParser {
  private readonly timeKey: string;
  private readonly time?: TimeFormat;
  private readonly regex?: SafeRegex;
  private readonly types?: Map<string, FieldType>;
  private readonly skipEmpty: boolean;
  private readonly noBareKeys: boolean;
  private readonly timeKeep: boolean;

  readonly name: string;
  readonly format: ParserFormat;

  constructor(c: ParserConfig, section: RawSection) {
    this.name = c.name;
    this.format = c.format;
    this.timeKey = c.time_key ?? 'time';
    this.timeKeep = c.time_keep;
    this.skipEmpty = c.skip_empty_values ?? true;
    this.noBareKeys = c.logfmt_no_bare_keys ?? false;
    const err = (option: string, message: string) => new ConfigError(`parser '${c.name}': ${message}`, at(section, rawKey(section, option)), option);
    const onlyFor = (option: keyof ParserConfig, formats: ParserFormat[], why = '') => {
      if (c[option] !== undefined && !formats.includes(c.format)) {
        throw err(option, `${option} applies to format ${formats.join(', ')}, not ${c.format}${why}`);
      }
    };

    if (c.format === 'regex') {
      if (c.regex === undefined) throw new ConfigError(`parser '${c.name}': format regex needs the regex option`, section.pos, 'regex');
      try {
        this.regex = compileRegex(c.regex);
      } catch (e) {
        if (e instanceof RegexError) throw err('regex', e.message);
        throw e;
      }
      if (this.regex.groupNames.length === 0) throw err('regex', 'the regex has no named group (?<name>...), so it would produce no field');
    }
    onlyFor('regex', ['regex']);
    onlyFor('skip_empty_values', ['regex']);
    onlyFor('logfmt_no_bare_keys', ['logfmt']);
    onlyFor('types', ['regex', 'logfmt', 'ltsv'], ' (Fluent Bit ignores types for json)');
    if (c.types !== undefined) {
      const t = parseTypes(c.types);
      if (typeof t === 'string') throw err('types', t);
      this.types = t;
    }

    if (c.time_format === undefined) {
      for (const o of ['time_key', 'time_offset', 'time_system_timezone'] as const) {
        if (section.values[rawKey(section, o)] !== undefined) {
          throw err(o, `${o} needs time_format: without it no time is read from the record`);
        }
      }
    } else {
      let offset: number | undefined;
      if (c.time_offset !== undefined) {
        if (c.time_system_timezone) throw err('time_offset', 'set time_offset or time_system_timezone, not both');
        offset = parseTimeOffset(c.time_offset);
        if (offset === undefined) throw err('time_offset', `'${c.time_offset}' is not an offset such as +0200, -06:00 or Z`);
      }
      try {
        this.time = compileTimeFormat(c.time_format, { strict: c.time_strict, offset, systemTimezone: c.time_system_timezone });
      } catch (e) {
        if (e instanceof TimeFormatError) throw err('time_format', e.message);
        throw e;
      }
    }
  }

  parse(text: string): ParsedRecord | null {
    switch (this.format) {
      case 'json':
        return this.parseJson(text);
      case 'regex':
        return this.parseRegex(text);
      case 'logfmt': {
        const pairs = scanLogfmt(text, this.noBareKeys);
        return pairs?.length ? this.fromPairs(pairs) : null;
      }
      case 'ltsv': {
        const pairs = scanLtsv(text);
        return pairs.length ? this.fromPairs(pairs) : null;
      }
    }
  }

  private readTime(value: string, out: ParsedRecord): boolean {
    const t = this.time!.parse(value);
    if (!t) {
      out.timeError = `time '${value.length > 64 ? `${value.slice(0, 61)}...` : value}' does not match time_format '${this.time!.format}'`;
      return false;
    }
    out.time = new EventTime(t.sec, t.nsec);
    return true;
  }

  private put(out: ParsedRecord, key: string, value: string | true): void {
    // Every occurrence of time_key is read (a logfmt or LTSV line may repeat it): the last
    // readable one is the time, as in Fluent Bit.
    if (this.time && key === this.timeKey && typeof value === 'string' && value !== '') {
      if (this.readTime(value, out) && !this.timeKeep) return;
    }
    // A key written twice (logfmt `a=1 b=2 a=3`, LTSV) keeps its last value where it last
    // occurs, as Fluent Bit's JSON shows the duplicate it packs.
    if (hasField(out.record, key)) delete out.record[key];
    const type = this.types?.get(key);
    if (type && typeof value === 'string') {
      const cast = castValue(type, value);
      if (!cast.ok) (out.castErrors ??= []).push(`${key}: '${value}' is not ${type === 'integer' ? 'an' : 'a'} ${type}`);
      setField(out.record, key, cast.value);
      return;
    }
    setField(out.record, key, value);
  }

  private parseRegex(text: string): ParsedRecord | null {
    const m = this.regex!.exec(text);
    if (!m) return null;
    const out: ParsedRecord = { record: {} };
    const groups = m.groups!;
    for (const name of this.regex!.groupNames) {
      const v = groups[name];
      if ((v === undefined || v === '') && this.skipEmpty) continue;
      this.put(out, name, v ?? '');
    }
    return out;
  }

  private fromPairs(pairs: Pair[]): ParsedRecord {
    const out: ParsedRecord = { record: {} };
    for (const p of pairs) this.put(out, p.key, p.value);
    return out;
  }

  private parseJson(text: string): ParsedRecord | null {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      return null;
    }
    // Kept as the text it is: a value nested deeper than the inputs accept could not be
    // serialised or evaluated without overflowing the stack.
    if (!isMap(v) || nestedDeeperThan(v, MAX_DEPTH)) return null;
    const out: ParsedRecord = { record: v as LogRecord };
    if (!this.time || !hasField(v, this.timeKey)) return out;
    const t = v[this.timeKey];
    if (typeof t === 'string') {
      if (this.readTime(t, out) && !this.timeKeep) delete v[this.timeKey];
    } else if (typeof t === 'number' && this.time.format.trim() === '%s') {
      out.time = EventTime.fromSeconds(t);
      if (!this.timeKeep) delete v[this.timeKey];
    } else out.timeError = `time_key '${this.timeKey}' holds ${t === null ? 'null' : typeof t}, not a string time_format can read`;
    return out;
  }
}

/** Builds a parser from a validated definition; throws ConfigError with the option's position. */
export function createParser(config: ParserConfig, section: RawSection): LogParser {
  return new Parser(config, section);
}

/**
 * The declarative option table every plugin exports. It is the only place an option is declared:
 * validation, defaults, `--help` and docs/configuration.md are derived from it.
 */
import { ConfigError, type SourcePos } from './errors.js';

export type OptionType =
  | 'string'
  | 'int'
  | 'float'
  | 'bool'
  | 'size' // bytes: 1024, 64k (64000), 6M, 1G as Fluent Bit (x1000); 512Mi, 4Ki (x1024)
  | 'duration' // seconds: 5, 1.5, 10s, 5m, 1h; 500ms unless Fluent Bit has the option
  | 'enum'
  | 'list' // comma/space separated string or YAML sequence -> string[]
  | 'multi' // option that may be given several times (YAML sequence) -> string[] of entries
  | 'any'; // structured YAML value (maps, lists), validated by the plugin

export interface OptionSpec {
  type: OptionType;
  description: string;
  default?: unknown;
  /** How the reference shows the default when it depends on where the process runs. */
  docDefault?: string;
  required?: boolean;
  /** For `enum`: accepted values (compared case-insensitively). */
  values?: readonly string[];
  /**
   * For a `duration` that Fluent Bit 5.1 also has: how Fluent Bit reads it (see FluentBitDuration).
   * A written form whose whole seconds differ there is refused rather than read another way.
   */
  fluentBit?: FluentBitDuration;
  /**
   * For a `size` limit: `off`, `false`, `no` and any size of 0 bytes (`0`, `0k`) mean no limit, and
   * the option reads as unset, as Fluent Bit 5.1 reads storage.total_limit_size.
   */
  unlimited?: boolean;
  /** Integer/float/size/duration bounds. */
  min?: number;
  max?: number;
  /** Extra validation; return an error message or undefined. */
  check?: (value: unknown) => string | undefined;
}

export type OptionTable = Record<string, OptionSpec>;

/** The value an option of this spec has in the config, once its table was applied. */
type ValueOf<S> = S extends { type: 'string' }
  ? string
  : S extends { type: 'int' | 'float' | 'size' | 'duration' }
    ? number
    : S extends { type: 'bool' }
      ? boolean
      : S extends { type: 'enum'; values: readonly (infer V extends string)[] }
        ? V
        : S extends { type: 'list' | 'multi' }
          ? string[]
          : unknown;

/** Whether the config always holds the option: it is required or has a default (and no "unlimited" reading). */
type AlwaysSet<S> = S extends { unlimited: true } ? false : S extends { required: true } ? true : S extends { default: infer D } ? ([D] extends [undefined] ? false : true) : false;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/**
 * The config a plugin gets, inferred from its option table: `string` options are strings, `int`,
 * `float`, `size` and `duration` numbers, `bool` booleans, an `enum` the union of its values
 * (declared `as const`), `list` and `multi` string arrays, `any` unknown. An option that is
 * required or has a default is always there; the others may be absent.
 */
export type ConfigOf<T> = Simplify<
  { -readonly [K in keyof T as AlwaysSet<T[K]> extends true ? K : never]: ValueOf<T[K]> } & {
    -readonly [K in keyof T as AlwaysSet<T[K]> extends true ? never : K]?: ValueOf<T[K]>;
  }
>;

/** A configuration section as read from YAML: raw values plus where each key was written. */
export interface RawSection {
  values: Record<string, unknown>;
  keyPos: Record<string, SourcePos>;
  valuePos: Record<string, SourcePos>;
  pos: SourcePos;
  /** Directory that relative paths in this section are resolved against. */
  baseDir: string;
}

const TRUE = new Set(['true', 'on', 'yes', '1']);
const FALSE = new Set(['false', 'off', 'no', '0']);

export function parseBool(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v === 1 ? true : v === 0 ? false : undefined;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (TRUE.has(s)) return true;
    if (FALSE.has(s)) return false;
  }
  return undefined;
}

/**
 * Size units. Fluent Bit 5.1 (flb_utils_size_to_bytes, behind every FLB_CONFIG_MAP_SIZE option,
 * mem_buf_limit, storage.total_limit_size and storage.backlog.mem_limit) reads K, M and G, with an
 * optional B, in any case, as powers of 1000: `2k` = `2KB` = 2000, `100M` = 100000000. So does
 * logwarden, for every size option. `Ki`, `Mi`, `Gi` (Kubernetes quantities) and `KiB`, `MiB`,
 * `GiB` are powers of 1024 — Fluent Bit 5.1 refuses them there (its binary variant, used only for
 * multiline_buffer_limit, takes `KiB`), so they cannot mean anything else.
 */
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  ki: 1024,
  kib: 1024,
  mi: 1024 ** 2,
  mib: 1024 ** 2,
  gi: 1024 ** 3,
  gib: 1024 ** 3,
};

/** What a size may look like, for error messages. */
export const SIZE_FORMS = 'bytes with an optional k/M/G (x1000, as Fluent Bit) or Ki/Mi/Gi (x1024) suffix, e.g. 1024, 64k, 1.5M, 512Mi';

/**
 * A size in bytes, or undefined when `v` is not one. A number with an optional fraction and unit,
 * nothing between them; the product is truncated to whole bytes as Fluent Bit does (`1.9999k` =
 * 1999). `false` is 0, as in Fluent Bit. Refused, where Fluent Bit returns its -1 error value
 * (then a limit of 2^64-1 or a config error): `100B`, `1 M`, `2T`, negatives, text; also sizes
 * above 2^53 and the forms its atof() lets through by accident (`1e3`, `0x10`).
 */
export function parseSize(v: unknown): number | undefined {
  if (v === false) return 0;
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER ? Math.trunc(v) : undefined;
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  if (s.toLowerCase() === 'false') return 0;
  const m = /^\+?(\d+(?:\.\d+)?|\.\d+)([a-z]*)$/i.exec(s);
  if (!m) return undefined;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  // The same double arithmetic as Fluent Bit's (int64_t)(atof(s) * 1000000): 4.1M is 4099999.
  const n = Math.trunc(Number(m[1]) * unit);
  return n <= Number.MAX_SAFE_INTEGER ? n : undefined;
}

const DURATION_UNITS: Record<string, number> = { '': 1, ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** What a duration may look like, for error messages. */
export const DURATION_FORMS = 'seconds with an optional fraction and unit s, m, h or d, e.g. 5, 1.5, 10s, 5m, 1h';

/**
 * How Fluent Bit 5.1 turns the text of a duration option into seconds:
 * - `time`: flb_utils_time_to_seconds (every FLB_CONFIG_MAP_TIME option: net.connect_timeout,
 *   net.io_timeout, net.keepalive_idle_timeout, net.accept_timeout, ...): atoi() of the text, times
 *   86400, 3600 or 60 when its last character is d, h or m in either case; any other last character
 *   is ignored, so `1.5h` is 3600 and `500ms` 500.
 * - `atof`: the service option `flush`, a plain number (atof): `1.5` is 1.5, `5m` is 5.
 * - `atoi`: the service options `grace`, `scheduler.base`, `scheduler.cap` (atoi): `5m` is 5.
 * - `throttle`: the throttle filter's `interval` (strtod, then one lowercase s, m, h or d; the product
 *   cut to whole seconds): `1.5m` is 90; another suffix is ignored with a warning (`1H` is 1).
 */
export type FluentBitDuration = 'time' | 'atof' | 'atoi' | 'throttle';

const THROTTLE_UNITS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds Fluent Bit 5.1 reads from the text of a duration option, as `how` describes (0 for text). */
export function fluentBitSeconds(how: FluentBitDuration, text: string): number {
  const m = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(.*)$/s.exec(text.trim());
  if (!m) return 0;
  const num = Number(m[1]);
  const rest = m[2]!;
  switch (how) {
    case 'atof':
      return num;
    case 'atoi':
      return Math.trunc(num);
    case 'time': {
      const last = text.trim().slice(-1).toLowerCase();
      return Math.trunc(num) * (last === 'd' ? 86400 : last === 'h' ? 3600 : last === 'm' ? 60 : 1);
    }
    case 'throttle':
      return Math.trunc(num * (THROTTLE_UNITS[rest] ?? 1));
  }
}

/**
 * Duration in seconds, or undefined when `v` is not one: a number with an optional fraction and an
 * optional unit ms, s, m, h or d in any case (a space between them is allowed).
 */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$/i.exec(v);
  if (!m) return undefined;
  return Number(m[1]) * DURATION_UNITS[(m[2] ?? '').toLowerCase()]!;
}

/**
 * Why a duration written for an option Fluent Bit also has is ambiguous, or undefined when it is
 * not: `ms` (Fluent Bit reads `500ms` as 500 seconds) and any form whose whole seconds differ
 * there (`5m` for flush, `1.5h` for a net.* timeout). A fraction Fluent Bit only cuts off (`1.5`,
 * `0.5s` where it reads 1 and 0) keeps its sub-second meaning in logwarden.
 */
export function fluentBitDurationConflict(how: FluentBitDuration, v: unknown, seconds: number): string | undefined {
  if (typeof v !== 'string') return undefined;
  const theirs = fluentBitSeconds(how, v);
  if (!/ms\s*$/i.test(v) && Math.trunc(theirs) === Math.trunc(seconds)) return undefined;
  return `Fluent Bit reads it as ${theirs} s here, not ${seconds} s; write ${seconds} for ${seconds} s`;
}

export function parseList(v: unknown): string[] | undefined {
  if (Array.isArray(v)) return v.map((x) => String(x).trim()).filter((x) => x !== '');
  if (typeof v === 'string') return v.split(/[\s,]+/).filter((x) => x !== '');
  if (typeof v === 'number' || typeof v === 'boolean') return [String(v)];
  return undefined;
}

function describeType(spec: OptionSpec): string {
  switch (spec.type) {
    case 'enum':
      return `one of ${spec.values!.join(', ')}`;
    case 'bool':
      return 'a boolean (on/off, true/false, yes/no)';
    case 'size':
      return `a size (${SIZE_FORMS}${spec.unlimited ? '; off or 0: no limit' : ''})`;
    case 'duration':
      return spec.fluentBit ? `a duration (${DURATION_FORMS}, as Fluent Bit reads this option)` : `a duration (${DURATION_FORMS}; also ms: 500ms)`;
    case 'int':
      return 'an integer';
    case 'float':
      return 'a number';
    case 'list':
      return 'a list (YAML sequence or comma-separated string)';
    case 'multi':
      return 'a string or a YAML sequence of strings';
    case 'any':
      return 'a value';
    default:
      return 'a string';
  }
}

function show(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v));
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Converts one raw value to the option's type; throws ConfigError with the position. */
export function coerceOption(name: string, spec: OptionSpec, raw: unknown, pos?: SourcePos): unknown {
  const bad = (extra = ''): never => {
    throw new ConfigError(`found ${show(raw)}, expected ${describeType(spec)}${extra}`, pos, name);
  };
  let value: unknown;
  switch (spec.type) {
    case 'string':
      if (raw === null || typeof raw === 'object') bad();
      value = String(raw);
      break;
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isInteger(n)) bad();
      value = n;
      break;
    }
    case 'float': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(n)) bad();
      value = n;
      break;
    }
    case 'bool':
      value = parseBool(raw);
      if (value === undefined) bad();
      break;
    case 'size':
      if (spec.unlimited && (raw === false || (typeof raw === 'string' && /^\s*(off|false|no)\s*$/i.test(raw)))) {
        value = undefined;
        break;
      }
      value = parseSize(raw);
      if (value === undefined) bad();
      if (spec.unlimited && value === 0) value = undefined;
      break;
    case 'duration':
      value = parseDuration(raw);
      if (value === undefined) bad();
      if (spec.fluentBit) {
        const why = fluentBitDurationConflict(spec.fluentBit, raw, value as number);
        if (why) throw new ConfigError(`found ${show(raw)}: ${why}`, pos, name);
      }
      break;
    case 'enum': {
      const s = String(raw).toLowerCase();
      const hit = spec.values!.find((x) => x.toLowerCase() === s);
      if (hit === undefined || raw === null || typeof raw === 'object') bad();
      value = hit;
      break;
    }
    case 'list':
      value = parseList(raw);
      if (value === undefined) bad();
      break;
    case 'multi':
      if (Array.isArray(raw)) {
        if (raw.some((x) => x === null || typeof x === 'object')) bad();
        value = raw.map(String);
      } else if (raw === null || typeof raw === 'object') bad();
      else value = [String(raw)];
      break;
    case 'any':
      value = raw;
      break;
  }
  if (typeof value === 'number') {
    if (spec.min !== undefined && value < spec.min) bad(` (at least ${spec.min})`);
    if (spec.max !== undefined && value > spec.max) bad(` (at most ${spec.max})`);
  }
  if (spec.check) {
    const msg = spec.check(value);
    if (msg) throw new ConfigError(`found ${show(raw)}: ${msg}`, pos, name);
  }
  return value;
}

/** Levenshtein distance, for "did you mean" hints on unknown options. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

export function suggest(name: string, candidates: Iterable<string>): string {
  let best = '';
  let bestD = Infinity;
  for (const c of candidates) {
    const dd = distance(name.toLowerCase(), c.toLowerCase());
    if (dd < bestD) {
      bestD = dd;
      best = c;
    }
  }
  return bestD <= Math.max(2, Math.floor(name.length / 3)) ? ` (did you mean '${best}'?)` : '';
}

/**
 * Validates a section against a table: unknown options, types, required options; fills defaults.
 * Option names are matched case-insensitively, as Fluent Bit does. Returns errors, never throws.
 */
export function applySchema(table: OptionTable, section: RawSection, what: string, errors: ConfigError[], ignore: ReadonlySet<string> = new Set()): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  const byLower = new Map<string, string>();
  for (const k of Object.keys(table)) byLower.set(k.toLowerCase(), k);
  for (const [key, raw] of Object.entries(section.values)) {
    const lower = key.toLowerCase();
    if (ignore.has(lower)) continue;
    const name = byLower.get(lower);
    if (name === undefined) {
      errors.push(new ConfigError(`unknown option for ${what}${suggest(key, Object.keys(table))}; known options: ${Object.keys(table).join(', ')}`, section.keyPos[key] ?? section.pos, key));
      continue;
    }
    try {
      out[name] = coerceOption(name, table[name]!, raw, section.valuePos[key] ?? section.keyPos[key] ?? section.pos);
    } catch (e) {
      if (e instanceof ConfigError) errors.push(e);
      else throw e;
    }
  }
  for (const [name, spec] of Object.entries(table)) {
    if (name in out) continue;
    if (spec.required) {
      errors.push(new ConfigError(`missing required option '${name}' for ${what} (${spec.description})`, section.pos, name));
    } else if (spec.default !== undefined) {
      out[name] = coerceOption(name, spec, spec.default);
    }
  }
  return out;
}

/** applySchema with the config typed after its table (the values are coerced by the same specs). */
export function applyOptions<T extends OptionTable>(table: T, section: RawSection, what: string, errors: ConfigError[]): ConfigOf<T> {
  return applySchema(table, section, what, errors) as ConfigOf<T>;
}

/**
 * The section with its keys spelled as the table spells them (option names are case-insensitive):
 * what a plugin reads of the section itself — whether an option was written, where — is then
 * found however the user wrote the name. Keys the table does not know stay as written.
 */
export function canonicalSection(table: OptionTable, section: RawSection): RawSection {
  const byLower = new Map<string, string>();
  for (const k of Object.keys(table)) byLower.set(k.toLowerCase(), k);
  const values: Record<string, unknown> = {};
  const keyPos: Record<string, SourcePos> = {};
  const valuePos: Record<string, SourcePos> = {};
  for (const [key, v] of Object.entries(section.values)) {
    const name = byLower.get(key.toLowerCase()) ?? key;
    values[name] = v;
    const kp = section.keyPos[key];
    const vp = section.valuePos[key];
    if (kp) keyPos[name] = kp;
    if (vp) valuePos[name] = vp;
  }
  return { ...section, values, keyPos, valuePos };
}

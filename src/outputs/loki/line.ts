/**
 * The log line of an entry, as Fluent Bit's out_loki writes it (pack_record,
 * pack_format_line_value): `line_format json` is the record as JSON; `key_value` is
 * `key=value` pairs separated by spaces, strings in double quotes, arrays as "[a b]", maps as
 * "map[k:v]". `drop_single_key` sends only the value when a single key is left.
 */
import { toJSONLine } from '../../core/json.js';
import { RawMsgpack } from '../../core/msgpack.js';

export type LineFormat = 'json' | 'key_value';
export type DropSingleKey = 'off' | 'on' | 'raw';

/** C's printf("%.16g"): up to 16 significant digits, trailing zeros removed. */
function g16(v: number): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  const exp = Math.floor(Math.log10(Math.abs(v)));
  if (exp < -4 || exp >= 16) {
    const [m, e] = v.toExponential(15).split('e') as [string, string];
    const mant = m.includes('.') ? m.replace(/0+$/, '').replace(/\.$/, '') : m;
    const n = Number(e);
    return `${mant}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  const s = v.toFixed(Math.max(0, 15 - exp));
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

function kvValue(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'string':
      return `"${v}"`;
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return v.toString();
    case 'number':
      if (Number.isInteger(v)) return Math.abs(v) < 2 ** 63 ? String(v) : g16(v);
      return g16(v);
    case 'object': {
      if (v instanceof Uint8Array) return `"${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8')}"`;
      if (Array.isArray(v)) return `"[${v.map(kvValue).join(' ')}]"`;
      if (v instanceof RawMsgpack) return kvValue(v.value);
      let s = '"map[';
      let first = true;
      for (const k of Object.keys(v)) {
        s += `${first ? '' : ' '}${k}:${kvValue((v as Record<string, unknown>)[k])}`;
        first = false;
      }
      return `${s}]"`;
    }
    default:
      return '';
  }
}

/**
 * Fluent Bit prints a float that holds an integer with "%.1f" (`1.0`); JavaScript numbers do not
 * keep that distinction, so integral numbers print as integers.
 */
export function keyValueLine(record: Record<string, unknown>): string {
  let s = '';
  for (const k of Object.keys(record)) s += `${s ? ' ' : ''}${k}=${kvValue(record[k])}`;
  return s;
}

export function formatLine(record: Record<string, unknown>, format: LineFormat, drop: DropSingleKey): string {
  if (drop !== 'off') {
    const keys = Object.keys(record);
    if (keys.length === 1) {
      const v = record[keys[0]!];
      if (typeof v === 'string' && (format === 'key_value' || drop === 'raw')) return v;
      if (format === 'key_value') return kvValue(v);
      return toJSONLine(v);
    }
  }
  return format === 'json' ? toJSONLine(record) : keyValueLine(record);
}

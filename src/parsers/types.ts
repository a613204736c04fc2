/**
 * A parser's `types` option (`key:integer other:bool ...`) and the casts, as Fluent Bit's
 * flb_parser_typecast does them: integer like atoll (leading digits), float like atof, hex like
 * strtoull base 16, bool from a leading `true` / `false` (any case), string unchanged.
 *
 * Where Fluent Bit silently reads an unknown type name as string, or casts text with no number
 * to 0, logwarden rejects the unknown name at load time and keeps such a value as the string it
 * was (the caller counts the cast error).
 */

export type FieldType = 'string' | 'integer' | 'float' | 'bool' | 'hex';

const TYPES: readonly FieldType[] = ['string', 'integer', 'float', 'bool', 'hex'];

/** Parses the spec; returns the map, or an error message. */
export function parseTypes(spec: string): Map<string, FieldType> | string {
  const out = new Map<string, FieldType>();
  for (const entry of spec.split(/\s+/).filter((s) => s !== '')) {
    const colon = entry.lastIndexOf(':');
    if (colon <= 0) return `'${entry}' is not KEY:TYPE (types is a space-separated list such as 'pid:integer took:float')`;
    const key = entry.slice(0, colon);
    const type = entry.slice(colon + 1).toLowerCase() as FieldType;
    if (!TYPES.includes(type)) return `unknown type '${entry.slice(colon + 1)}' for '${key}'; expected one of ${TYPES.join(', ')}`;
    out.set(key, type);
  }
  if (out.size === 0) return 'empty types list';
  return out;
}

const INT = /^\s*[+-]?\d+/;
const FLOAT = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/;
const HEX = /^\s*(?:0[xX])?([0-9a-fA-F]+)/;

/** Casts one value; `ok` false means the value was kept as a string. */
export function castValue(type: FieldType, value: string): { value: unknown; ok: boolean } {
  switch (type) {
    case 'string':
      return { value, ok: true };
    case 'integer': {
      const m = INT.exec(value);
      return m ? { value: Number(m[0]), ok: true } : { value, ok: false };
    }
    case 'float': {
      const m = FLOAT.exec(value);
      return m ? { value: Number(m[0]), ok: true } : { value, ok: false };
    }
    case 'hex': {
      const m = HEX.exec(value);
      return m ? { value: Number.parseInt(m[1]!, 16), ok: true } : { value, ok: false };
    }
    case 'bool': {
      const l = value.slice(0, 5).toLowerCase();
      if (l.startsWith('true')) return { value: true, ok: true };
      if (l === 'false') return { value: false, ok: true };
      return { value, ok: false };
    }
  }
}

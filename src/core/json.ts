/**
 * JSON for records decoded from msgpack. JSON.stringify is the fast path; records holding a
 * 64-bit integer beyond 2^53 (a BigInt, which JSON.stringify refuses) or binary values (Buffers)
 * take a slower exact path: BigInts are written as their exact digits, binary as UTF-8 text.
 */

function slow(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'string':
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v instanceof Uint8Array) return JSON.stringify(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8'));
      if (Array.isArray(v)) return `[${v.map((x) => (x === undefined || typeof x === 'function' ? 'null' : slow(x))).join(',')}]`;
      if (v instanceof Date) return JSON.stringify(v.toISOString());
      if (typeof (v as { toJSON?: unknown }).toJSON === 'function' && !(v instanceof Uint8Array)) {
        return slow((v as { toJSON: () => unknown }).toJSON());
      }
      let out = '{';
      let first = true;
      for (const k of Object.keys(v)) {
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined || typeof x === 'function') continue;
        out += `${first ? '' : ','}${JSON.stringify(k)}:${slow(x)}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      return 'null';
  }
}

/** Serialises a value to one line of JSON without losing 64-bit integers or mangling binary. */
export function toJSONLine(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v);
  } catch {
    return slow(v);
  }
  // Buffer#toJSON yields {"type":"Buffer","data":[...]}; write the bytes as text instead.
  return s.includes('"type":"Buffer"') ? slow(v) : s;
}

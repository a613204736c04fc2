/**
 * The part of Fluent Bit's record accessor syntax the lookup filter needs: `$key`,
 * `$key['sub']["sub2"][0]`, or a plain top-level key name without `$` (as Fluent Bit's
 * checklist and lookup filters accept). Compiled once into a list of steps.
 */

export type Accessor = (record: Record<string, unknown>) => unknown;

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** Parses an accessor; throws Error with a message saying what is wrong and where. */
export function parseAccessor(pattern: string): Array<string | number> {
  if (!pattern.startsWith('$')) {
    if (pattern === '') throw new Error('empty key');
    return [pattern];
  }
  const steps: Array<string | number> = [];
  let i = 1;
  const first = /^[^[\]\s'"]+/.exec(pattern.slice(i));
  if (!first) throw new Error(`expected a key name after '$' at character ${i + 1}`);
  steps.push(first[0]);
  i += first[0].length;
  while (i < pattern.length) {
    if (pattern[i] !== '[') throw new Error(`expected '[' at character ${i + 1}, found '${pattern[i]}'`);
    const q = pattern[i + 1];
    if (q === "'" || q === '"') {
      const end = pattern.indexOf(q, i + 2);
      if (end < 0) throw new Error(`unterminated ${q} quote at character ${i + 2}`);
      if (pattern[end + 1] !== ']') throw new Error(`expected ']' at character ${end + 2}`);
      steps.push(pattern.slice(i + 2, end));
      i = end + 2;
    } else {
      const m = /^(\d+)\]/.exec(pattern.slice(i + 1));
      if (!m) throw new Error(`expected a quoted key or an array index at character ${i + 2}`);
      steps.push(Number(m[1]));
      i += m[0].length + 1;
    }
  }
  return steps;
}

export function compileAccessor(pattern: string): Accessor {
  const steps = parseAccessor(pattern);
  if (steps.length === 1) {
    const key = steps[0] as string;
    return (record) => (hasOwn(record, key) ? record[key] : undefined);
  }
  return (record) => {
    let v: unknown = record;
    for (const s of steps) {
      if (typeof s === 'number') {
        if (!Array.isArray(v)) return undefined;
        v = v[s];
      } else {
        if (v === null || typeof v !== 'object' || Array.isArray(v) || !hasOwn(v, s)) return undefined;
        v = (v as Record<string, unknown>)[s];
      }
    }
    return v;
  };
}

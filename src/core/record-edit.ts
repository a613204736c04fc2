/**
 * Edits applied to a decoded record: the reference for what the copy pass (record-splice.ts)
 * does to the bytes, and what a record already decoded gets.
 */
import { indexPart } from './record-bytes.js';
import type { Edit } from './record-view.js';

const hasOwn = (o: object, k: string) => Object.hasOwn(o, k);

function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Applies one edit to a decoded record (changing it) and returns the record; the reference for
 * what `applyEdits` does to the bytes.
 */
export function applyEdit(r: Record<string, unknown>, e: Edit): Record<string, unknown> {
  switch (e.op) {
    case 'put':
      if (e.move && hasOwn(r, e.key)) delete r[e.key];
      setOwn(r, e.key, e.value);
      return r;
    case 'remove': {
      let cur: unknown = r;
      const last = e.path.length - 1;
      for (let i = 0; i < last; i++) {
        const part = e.path[i]!;
        if (Array.isArray(cur)) {
          const idx = indexPart(part);
          if (idx < 0 || idx >= cur.length) return r;
          cur = cur[idx];
        } else if (isObj(cur) && typeof part === 'string' && hasOwn(cur, part)) cur = cur[part];
        else return r;
      }
      const end = e.path[last]!;
      if (isObj(cur) && typeof end === 'string' && hasOwn(cur, end)) delete cur[end];
      return r;
    }
    case 'rename': {
      if (!hasOwn(r, e.key) || e.key === e.to) return r;
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(r)) {
        if (k === e.to) continue;
        setOwn(out, k === e.key ? e.to : k, r[k]);
      }
      return out;
    }
    case 'nest': {
      let nested: Record<string, unknown> | undefined;
      for (const k of Object.keys(r)) {
        if (!e.match(k)) continue;
        nested ??= {};
        setOwn(nested, e.name(k), r[k]);
        delete r[k];
      }
      if (nested === undefined) return r;
      if (hasOwn(r, e.under)) delete r[e.under];
      setOwn(r, e.under, nested);
      return r;
    }
    case 'lift': {
      const inner = hasOwn(r, e.under) ? r[e.under] : undefined;
      if (!isObj(inner)) return r;
      delete r[e.under];
      for (const k of Object.keys(inner)) {
        const name = e.name(k);
        if (hasOwn(r, name)) delete r[name];
        setOwn(r, name, inner[k]);
      }
      return r;
    }
    case 'removeKeys':
      for (const k of Object.keys(r)) if (e.match(k)) delete r[k];
      return r;
    case 'copy': {
      if (!hasOwn(r, e.key) || e.key === e.to) return r;
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(r)) {
        if (k === e.to) continue;
        setOwn(out, k, r[k]);
        if (k === e.key) setOwn(out, e.to, r[k]);
      }
      return out;
    }
    case 'move': {
      const moved: string[] = [];
      const rest: string[] = [];
      for (const k of Object.keys(r)) (e.match(k) ? moved : rest).push(k);
      if (moved.length === 0) return r;
      const out: Record<string, unknown> = {};
      for (const k of e.toStart ? moved : rest) setOwn(out, k, r[k]);
      for (const k of e.toStart ? rest : moved) setOwn(out, k, r[k]);
      return out;
    }
  }
}

/**
 * Falco output format strings (libsinsp sinsp_evt_formatter): `%field` and `%field[arg]` are
 * replaced by the field's value, `<NA>` when absent; list fields print as `(a,b)`. A field name
 * is the longest known field name at that point (so `%ka.target.name/%ka.target.resource` works);
 * an optional number after `%` pads the value to that width.
 *
 * Values come from the same per-event field cache the conditions use, so a field a rule already
 * tested is not extracted again for its alert.
 */
import { CompileError, type EvalContext } from './compile.js';
import type { Program } from './program.js';
import { FIELDS, FIELD_NAMES_LONGEST_FIRST, checkFieldArg, type FieldValue } from './fields.js';
import type { MsgpackWriter } from '../core/msgpack-writer.js';
import { encode } from '../core/msgpack.js';

type Part = string | { name: string; get: (c: EvalContext) => FieldValue; width: number; raw: 'time' | undefined };

export interface CompiledOutput {
  /** The formatted text. */
  text(c: EvalContext): string;
  /** `output_fields`: every field of the format (absent ones as null), keys sorted as Falco's JSON. */
  fields(c: EvalContext): Record<string, unknown>;
  /**
   * `output_fields` with `evt.time` as msgpack, straight into `w`: the map fields() gives with
   * evt.time added, in the same (sorted) key order.
   */
  writeFields(c: EvalContext, w: MsgpackWriter): void;
  /** Field names used (`name` or `name[arg]`), sorted. */
  readonly fieldNames: readonly string[];
}

/** A field value in msgpack, as the codec writes the value fields() gives (absent: nil). */
function writeValue(w: MsgpackWriter, v: FieldValue): void {
  if (v === undefined) w.nil();
  else if (typeof v === 'string') w.str(v);
  else if (typeof v === 'number') w.num(v);
  else {
    w.array(v.length);
    for (const x of v) w.str(x);
  }
}

/** Nanoseconds since the epoch, exact (beyond 2^53), as Falco writes time fields in JSON. */
export function rawNanos(sec: number, nsec: number): bigint {
  return BigInt(sec) * 1_000_000_000n + BigInt(nsec);
}

function render(v: FieldValue): string {
  if (v === undefined) return '<NA>';
  if (Array.isArray(v)) return `(${v.join(',')})`;
  return typeof v === 'number' ? String(v) : v;
}

/** Compiles an output format; throws CompileError (offset in `pos.idx`) on an unknown field. */
export function compileOutput(fmt: string, prog: Program): CompiledOutput {
  const parts: Part[] = [];
  let lit = '';
  let i = 0;
  while (i < fmt.length) {
    const ch = fmt[i]!;
    if (ch !== '%') {
      lit += ch;
      i++;
      continue;
    }
    const at = i;
    if (i === fmt.length - 1) throw new CompileError('invalid formatting syntax: formatting cannot end with a %', { idx: at, line: 1, col: at + 1 });
    i++;
    let width = 0;
    while (i < fmt.length && fmt[i]! >= '0' && fmt[i]! <= '9') width = width * 10 + Number(fmt[i++]);
    const rest = fmt.slice(i);
    const name = FIELD_NAMES_LONGEST_FIRST.find((n) => rest.startsWith(n));
    if (!name) throw new CompileError(`invalid formatting token ${rest}`, { idx: at, line: 1, col: at + 1 });
    i += name.length;
    const info = FIELDS.get(name)!;
    let arg: string | undefined;
    if (info.arg !== 'none' && fmt[i] === '[') {
      const end = fmt.indexOf(']', i);
      if (end < 0) throw new CompileError(`missing ']' after the argument of field '${name}'`, { idx: at, line: 1, col: at + 1 });
      arg = fmt.slice(i + 1, end);
      i = end + 1;
    }
    const err = checkFieldArg(info, arg);
    if (err) throw new CompileError(err, { idx: at, line: 1, col: at + 1 });
    if (lit) parts.push(lit);
    lit = '';
    const slot = prog.fieldSlot({ kind: 'field', name, arg, pos: { idx: at, line: 1, col: at + 1 } });
    const raw = name === 'evt.time' || name === 'evt.rawtime' ? 'time' : undefined;
    parts.push({ name: arg === undefined ? name : `${name}[${arg}]`, get: prog.slotGetter(slot.id), width, raw });
  }
  if (lit) parts.push(lit);
  const fieldParts = parts.filter((p): p is Exclude<Part, string> => typeof p !== 'string');
  const byName = new Map<string, Exclude<Part, string>>();
  for (const p of fieldParts) if (!byName.has(p.name)) byName.set(p.name, p);
  const names = [...byName.keys()].sort();
  const ordered = names.map((n) => byName.get(n)!);
  // output_fields as alerts carry it: the fields and evt.time, sorted; time fields as nanoseconds.
  const withTime = [...new Set([...names, 'evt.time'])].sort().map((n) => ({ key: encode(n), part: byName.get(n), time: n === 'evt.time' || byName.get(n)?.raw === 'time' }));
  return {
    fieldNames: names,
    writeFields(c, w) {
      w.map(withTime.length);
      for (const f of withTime) {
        w.raw(f.key);
        if (f.time) w.big(rawNanos(c.ev.sec, c.ev.nsec));
        else writeValue(w, f.part!.get(c));
      }
    },
    text(c) {
      let s = '';
      for (const p of parts) {
        if (typeof p === 'string') s += p;
        else {
          const v = render(p.get(c));
          s += p.width > v.length ? v.padEnd(p.width) : v;
        }
      }
      return s;
    },
    fields(c) {
      const out: Record<string, unknown> = {};
      for (const p of ordered) {
        // Falco's JSON output gives time fields as the raw integer nanoseconds.
        if (p.raw === 'time') {
          out[p.name] = rawNanos(c.ev.sec, c.ev.nsec);
          continue;
        }
        const v = p.get(c);
        out[p.name] = v === undefined ? null : v;
      }
      return out;
    },
  };
}

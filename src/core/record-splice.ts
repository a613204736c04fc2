/**
 * Edits applied to a record's msgpack bytes in one copy pass (`applyEdits`): the top-level
 * entries become slots (original key and value bytes, or new ones), edits change the slots, and
 * the record is written again with the bytes it does not touch copied as they are. The result
 * is a slice of a shared buffer, with its top-level index (editedIndex) so the next reader does
 * not scan it again. Answers as applyEdit on the decoded record would (record-edit.ts).
 */
import { encode } from './msgpack.js';
import { MsgpackWriter } from './msgpack-writer.js';
import { arrayAt, asBuffer, E, eq, INDEX, indexPart, isBinOrExt, keyBytes, keyText, mapAt, S, same, skip, strAt, UNSUPPORTED } from './record-bytes.js';
import type { Edit, PathPart } from './record-view.js';

/** The output of spliced records: msgpack written in place, plus byte ranges copied from the input. */
class Out extends MsgpackWriter {
  copy(b: Buffer, s: number, e: number): void {
    const n = e - s;
    this.ensure(n);
    if (n < 64) {
      // Buffer#copy's fixed cost (a view object per call) is more than a short loop.
      const o = this.buf;
      let p = this.len;
      for (let i = s; i < e; i++) o[p++] = b[i]!;
      this.len = p;
    } else this.len += b.copy(this.buf, this.len, s, e);
  }
  value(v: unknown): void {
    if (typeof v === 'string') this.str(v);
    else {
      const enc = encode(v);
      this.copy(enc, 0, enc.length);
    }
  }
}

const out = new Out(64 * 1024);

// Top-level slots of the record being spliced (reused: applyEdits is synchronous).
let slotHead = new Int32Array(64); // offset of the key's header (original keys)
let slotKs = new Int32Array(64);
let slotKe = new Int32Array(64);
let slotVs = new Int32Array(64); // original value bytes, -1 when the value is new, -2 a nested map (nest)
let slotVe = new Int32Array(64);
const slotKey: Array<string | null> = []; // key text when the key is new (put, rename)
const slotKeyText: Array<string | null> = []; // the text of an original key, once read (edits that match keys)
const slotVal: unknown[] = [];
const slotNested: Array<PathPart[][] | null> = [];
// A nested map a nest edit built (slotVs -2): the slots of its entries and their names.
const slotMoved: Array<number[] | null> = [];
const slotNames: Array<string[] | null> = [];
const slotLive: boolean[] = [];
let slots = 0;
// The record's order: slot numbers as the entries are written (copy and move change it; a slot
// keeps its number, which nested maps refer to).
let slotOrder = new Int32Array(64);
let ordered = 0;
let orderScratch = new Int32Array(64);
/**
 * The records applyEdits produces are slices of one larger buffer at a time, not a buffer each:
 * a record's bytes never change once produced, and the slices of one buffer belong to records
 * of the same few chunks.
 */
const RESULT_BYTES = 1 << 20;
let results = Buffer.allocUnsafeSlow(RESULT_BYTES);
let resultsUsed = 0;

function resultBytes(n: number): Buffer {
  if (n > RESULT_BYTES >> 3) return Buffer.allocUnsafe(n);
  if (resultsUsed + n > results.length) {
    results = Buffer.allocUnsafeSlow(RESULT_BYTES);
    resultsUsed = 0;
  }
  const r = results.subarray(resultsUsed, resultsUsed + n);
  resultsUsed += n;
  return r;
}

// Where applyEdits wrote each entry (key bytes, value bytes) in its output.
/**
 * The top-level index of the bytes the last applyEdits returned (RecordView#idx's form):
 * `editedIndexN` entries from `editedIndex[editedIndexAt]`, in an array shared by many records.
 */
export let editedIndex: Int32Array = new Int32Array(1 << 16);
export let editedIndexAt = 0;
export let editedIndexN = 0;
let editedUsed = 0;

function growSlots(): void {
  const g = (a: Int32Array) => {
    const x = new Int32Array(a.length * 2);
    x.set(a);
    return x;
  };
  slotHead = g(slotHead);
  slotKs = g(slotKs);
  slotKe = g(slotKe);
  slotVs = g(slotVs);
  slotVe = g(slotVe);
  slotOrder = g(slotOrder);
  orderScratch = g(orderScratch);
}

/**
 * The slot from `from` on whose key is the bytes ks..ke of `b`, or a new one for that key (its
 * head at `head`, live as given): a duplicate key keeps its first place.
 */
function keySlot(b: Buffer, from: number, head: number, ks: number, ke: number, live: boolean): number {
  for (let j = from; j < slots; j++) {
    if (slotKe[j]! - slotKs[j]! === ke - ks && same(b, ks, slotKs[j]!, ke - ks)) return j;
  }
  const s = newSlot();
  slotHead[s] = head;
  slotKs[s] = ks;
  slotKe[s] = ke;
  slotLive[s] = live;
  return s;
}

function newSlot(): number {
  if (slots >= slotKs.length) growSlots();
  const i = slots++;
  slotOrder[ordered++] = i;
  slotKey[i] = null;
  slotKeyText[i] = null;
  slotVal[i] = undefined;
  slotNested[i] = null;
  slotMoved[i] = null;
  slotNames[i] = null;
  slotLive[i] = true;
  return i;
}

/** The key of slot `i` as it stands (renamed or not). */
function slotText(b: Buffer, i: number): string {
  return slotKey[i] ?? (slotKeyText[i] ??= keyText(b, slotKs[i]!, slotKe[i]!));
}

/**
 * Two keys moved to the same name: the one decoding's object order gives last wins. That order is
 * the bytes' order except for keys that are array indexes (an object lists them first): those
 * are left to the object.
 */
function collides(x: string, y: string): void {
  if (INDEX.test(x) || INDEX.test(y)) throw UNSUPPORTED;
}

/** A new slot holding what slot `m` holds (its key, value and pending changes). */
function copySlot(m: number): number {
  const s = newSlot();
  slotHead[s] = slotHead[m]!;
  slotKs[s] = slotKs[m]!;
  slotKe[s] = slotKe[m]!;
  slotVs[s] = slotVs[m]!;
  slotVe[s] = slotVe[m]!;
  slotKey[s] = slotKey[m]!;
  slotVal[s] = slotVal[m];
  slotNested[s] = slotNested[m]!;
  slotMoved[s] = slotMoved[m]!;
  slotNames[s] = slotNames[m]!;
  return s;
}

function slotIs(b: Buffer, i: number, key: string, kb: Buffer): boolean {
  const k = slotKey[i];
  return k !== null ? k === key : eq(b, slotKs[i]!, slotKe[i]!, kb);
}

function findSlot(b: Buffer, key: string): number {
  const kb = keyBytes(key);
  for (let i = 0; i < slots; i++) if (slotLive[i] && slotIs(b, i, key, kb)) return i;
  return -1;
}

/**
 * The record `bytes` (a msgpack map) with `edits` applied, as new msgpack bytes: the same record
 * as decoding, applying each edit (applyEdit) and encoding would give. Values the edits do not
 * touch are copied byte for byte. Throws UNSUPPORTED where that cannot be done byte for byte.
 */
export function applyEdits(bytes: Uint8Array, edits: readonly Edit[], index?: Int32Array, at = 0, indexN = index === undefined ? 0 : index.length / 5): Buffer {
  const b = asBuffer(bytes);
  const count = mapAt(b, 0);
  if (count < 0) throw UNSUPPORTED;
  slots = 0;
  ordered = 0;
  let copied = false;
  let p = S;
  // The bytes' index, when a filter read them already: no scan then.
  const v = index !== undefined && indexN === count ? index : null;
  for (let i = 0; i < count; i++) {
    let head: number;
    let ks: number;
    let ke: number;
    let ve: number;
    if (v !== null) {
      head = v[at + i * 5]!;
      ks = v[at + i * 5 + 1]!;
      ke = v[at + i * 5 + 2]!;
      ve = v[at + i * 5 + 4]!;
    } else {
      if (p >= b.length) throw UNSUPPORTED;
      head = p;
      if (!strAt(b, p)) throw UNSUPPORTED;
      ks = S;
      ke = E;
      ve = skip(b, ke);
    }
    const vs = ke;
    p = ve;
    // A duplicate key keeps its first place and takes the last value, as decoding.
    const s = keySlot(b, 0, head, ks, ke, true);
    slotVs[s] = vs;
    slotVe[s] = ve;
  }
  if (p !== b.length) throw UNSUPPORTED;
  for (const e of edits) {
    switch (e.op) {
      case 'put': {
        let s = findSlot(b, e.key);
        if (s >= 0 && e.move) {
          slotLive[s] = false;
          s = -1;
        }
        if (s < 0) {
          s = newSlot();
          slotKey[s] = e.key;
        }
        slotVs[s] = -1;
        slotVal[s] = e.value;
        slotNested[s] = null;
        break;
      }
      case 'remove': {
        const first = e.path[0];
        if (typeof first !== 'string') break;
        const s = findSlot(b, first);
        if (s < 0) break;
        if (e.path.length === 1) slotLive[s] = false;
        else {
          if (slotVs[s]! < 0) throw UNSUPPORTED; // inside a value an edit made: leave it to the object
          // A copy shares its value with the source in the object, where removing inside one
          // removes inside both: leave that to the object.
          if (copied) throw UNSUPPORTED;
          (slotNested[s] ??= []).push(e.path.slice(1) as PathPart[]);
        }
        break;
      }
      case 'rename': {
        if (e.key === e.to) break;
        const s = findSlot(b, e.key);
        if (s < 0) break;
        const t = findSlot(b, e.to);
        if (t >= 0) slotLive[t] = false;
        slotKey[s] = e.to;
        break;
      }
      case 'nest': {
        let moved: number[] | null = null;
        let names: string[] | null = null;
        for (let j = 0; j < ordered; j++) {
          const i = slotOrder[j]!;
          if (!slotLive[i]) continue;
          const key = slotText(b, i);
          if (!e.match(key)) continue;
          const name = e.name(key);
          moved ??= [];
          names ??= [];
          const at = names.indexOf(name);
          if (at >= 0) {
            // A name given twice: its first place, the last value.
            collides(slotText(b, moved[at]!), key);
            moved[at] = i;
          } else {
            moved.push(i);
            names.push(name);
          }
          slotLive[i] = false;
        }
        if (moved === null) break;
        const u = findSlot(b, e.under);
        if (u >= 0) slotLive[u] = false;
        const s = newSlot();
        slotKey[s] = e.under;
        slotVs[s] = -2;
        slotMoved[s] = moved;
        slotNames[s] = names;
        break;
      }
      case 'lift': {
        const u = findSlot(b, e.under);
        if (u < 0) break;
        const vs = slotVs[u]!;
        if (vs === -2) {
          // The map a nest edit built: its entries move up as they are.
          slotLive[u] = false;
          const moved = slotMoved[u]!;
          const names = slotNames[u]!;
          const first = slots;
          for (let j = 0; j < moved.length; j++) {
            const name = e.name(names[j]!);
            const t = findSlot(b, name);
            if (t >= 0) {
              if (t >= first) collides(names[t - first]!, names[j]!);
              slotLive[t] = false;
            }
            const s = copySlot(moved[j]!);
            if (slotKey[s] !== null || name !== keyText(b, slotKs[s]!, slotKe[s]!)) slotKey[s] = name;
          }
          break;
        }
        if (vs < 0 || slotNested[u] !== null) throw UNSUPPORTED; // a value an edit put: the object
        const entries = mapAt(b, vs);
        if (entries < 0) {
          // An ext decodes to an object (EventTime, Date) the lift would read: the object. A bin
          // (a Buffer) and anything else is no map: unchanged.
          if (isBinOrExt(b[vs]!) && !(b[vs]! >= 0xc4 && b[vs]! <= 0xc6)) throw UNSUPPORTED;
          break;
        }
        slotLive[u] = false;
        // The map's entries as decoding gives them (a duplicate key: first place, last value),
        // staged as slots that are not live yet.
        const first = slots;
        let q = S;
        for (let m = 0; m < entries; m++) {
          if (q >= b.length || !strAt(b, q)) throw UNSUPPORTED;
          const head = q;
          const ks = S;
          const ke = E;
          const ve = skip(b, ke);
          q = ve;
          const s = keySlot(b, first, head, ks, ke, false);
          slotVs[s] = ke;
          slotVe[s] = ve;
        }
        // Each goes to the end under its name, replacing a key of that name.
        const last = slots;
        for (let j = first; j < last; j++) {
          const key = keyText(b, slotKs[j]!, slotKe[j]!);
          const name = e.name(key);
          const t = findSlot(b, name);
          if (t >= 0) {
            if (t >= first) collides(keyText(b, slotKs[t]!, slotKe[t]!), key);
            slotLive[t] = false;
          }
          if (name !== key) slotKey[j] = name;
          slotLive[j] = true;
        }
        break;
      }
      case 'removeKeys': {
        for (let j = 0; j < ordered; j++) {
          const i = slotOrder[j]!;
          if (slotLive[i] && e.match(slotText(b, i))) slotLive[i] = false;
        }
        break;
      }
      case 'copy': {
        if (e.key === e.to) break;
        const s = findSlot(b, e.key);
        if (s < 0) break;
        // An object lists keys that are array indexes first: the place after one is the object's.
        if (INDEX.test(e.key)) throw UNSUPPORTED;
        const t = findSlot(b, e.to);
        if (t >= 0) slotLive[t] = false;
        const c = copySlot(s);
        slotKey[c] = e.to;
        if (slotNested[c] !== null) slotNested[c] = slotNested[c]!.slice();
        // newSlot put the copy last: it goes right after the source.
        let at = 0;
        while (slotOrder[at] !== s) at++;
        for (let j = ordered - 1; j > at + 1; j--) slotOrder[j] = slotOrder[j - 1]!;
        slotOrder[at + 1] = c;
        copied = true;
        break;
      }
      case 'move': {
        // The matching live slots aside, the others kept in order in place; then both joined.
        const moved = orderScratch;
        let m = 0;
        let rest = 0;
        for (let j = 0; j < ordered; j++) {
          const i = slotOrder[j]!;
          if (!slotLive[i]) continue;
          if (e.match(slotText(b, i))) moved[m++] = i;
          else slotOrder[rest++] = i;
        }
        if (e.toStart) {
          for (let j = rest - 1; j >= 0; j--) slotOrder[j + m] = slotOrder[j]!;
          for (let j = 0; j < m; j++) slotOrder[j] = moved[j]!;
        } else for (let j = 0; j < m; j++) slotOrder[rest + j] = moved[j]!;
        ordered = rest + m;
        break;
      }
    }
  }
  let live = 0;
  for (let i = 0; i < slots; i++) if (slotLive[i]) live++;
  out.len = 0;
  out.map(live);
  if (editedUsed + live * 5 > editedIndex.length) {
    editedIndex = new Int32Array(Math.max(1 << 16, live * 5));
    editedUsed = 0;
  }
  const o = editedIndex;
  const ob = editedUsed;
  let n = 0;
  // Entries that stay as they are and follow each other in the bytes are copied as one run.
  let runStart = -1;
  let runEnd = -1;
  let runOut = 0; // where the run starts in the output
  for (let j = 0; j < ordered; j++) {
    const i = slotOrder[j]!;
    if (!slotLive[i]) continue;
    const k = slotKey[i] ?? null;
    if (k === null && slotNested[i] === null && slotVs[i] === slotKe[i]) {
      const head = slotHead[i]!;
      if (head !== runEnd) {
        if (runStart >= 0) out.copy(b, runStart, runEnd);
        runStart = head;
        runOut = out.len;
      }
      runEnd = slotVe[i]!;
      const d = runOut - runStart;
      o[ob + n * 5] = head + d;
      o[ob + n * 5 + 1] = slotKs[i]! + d;
      o[ob + n * 5 + 2] = slotKe[i]! + d;
      o[ob + n * 5 + 3] = slotVs[i]! + d;
      o[ob + n * 5 + 4] = slotVe[i]! + d;
      n++;
      continue;
    }
    if (runStart >= 0) out.copy(b, runStart, runEnd);
    runStart = runEnd = -1;
    o[ob + n * 5] = out.len;
    if (k === null) {
      const d = out.len - slotHead[i]!;
      out.copy(b, slotHead[i]!, slotKe[i]!);
      o[ob + n * 5 + 1] = slotKs[i]! + d;
      o[ob + n * 5 + 2] = slotKe[i]! + d;
    } else {
      out.str(k);
      o[ob + n * 5 + 2] = out.len;
      o[ob + n * 5 + 1] = out.len - Buffer.byteLength(k, 'utf8');
    }
    o[ob + n * 5 + 3] = out.len;
    writeValue(b, i);
    o[ob + n * 5 + 4] = out.len;
    n++;
  }
  if (runStart >= 0) out.copy(b, runStart, runEnd);
  for (let i = 0; i < slots; i++) {
    slotVal[i] = undefined;
    slotKeyText[i] = null;
    slotNested[i] = null;
    slotMoved[i] = null;
    slotNames[i] = null;
  }
  const result = resultBytes(out.len);
  out.buf.copy(result, 0, 0, out.len);
  editedIndexAt = ob;
  editedIndexN = n;
  editedUsed = ob + n * 5;
  return result;
}

/** Writes the value of slot `i`: its bytes (less what removes name), a put value or a nested map. */
function writeValue(b: Buffer, i: number): void {
  const vs = slotVs[i]!;
  if (vs === -1) out.value(slotVal[i]);
  else if (vs === -2) {
    const moved = slotMoved[i]!;
    const names = slotNames[i]!;
    out.map(moved.length);
    for (let j = 0; j < moved.length; j++) {
      const m = moved[j]!;
      const name = names[j]!;
      if (slotKey[m] === null && name === keyText(b, slotKs[m]!, slotKe[m]!)) out.copy(b, slotHead[m]!, slotKe[m]!);
      else out.str(name);
      writeValue(b, m);
    }
  } else {
    const nested = slotNested[i] ?? null;
    if (nested === null) out.copy(b, vs, slotVe[i]!);
    else writeWithout(b, vs, slotVe[i]!, nested);
  }
}

/** Writes the value at `b[s, e)` without the values at `paths` (relative to it). */
function writeWithout(b: Buffer, s: number, e: number, paths: PathPart[][]): void {
  const items = arrayAt(b, s);
  if (items >= 0) {
    // Array items are never removed (the last part of a path is a map key): recurse into the
    // items the paths name, copy the rest.
    let q = S;
    out.copy(b, s, q);
    for (let i = 0; i < items; i++) {
      const end = skip(b, q);
      let sub: PathPart[][] | null = null;
      for (const path of paths) {
        if (path.length > 1 && indexPart(path[0]!) === i) (sub ??= []).push(path.slice(1));
      }
      if (sub === null) out.copy(b, q, end);
      else writeWithout(b, q, end, sub);
      q = end;
    }
    return;
  }
  const entries = mapAt(b, s);
  if (entries < 0) {
    if (isBinOrExt(b[s]!)) throw UNSUPPORTED;
    out.copy(b, s, e); // not a container: the path is missing, nothing to remove
    return;
  }
  const first = S;
  // First pass: how many entries stay.
  let q = first;
  let kept = 0;
  const hits = new Int32Array(paths.length);
  for (let m = 0; m < entries; m++) {
    if (q >= b.length || !strAt(b, q)) throw UNSUPPORTED;
    if (!removes(b, S, E, paths)) kept++;
    for (let i = 0; i < paths.length; i++) {
      const part = paths[i]![0]!;
      // A key a path names twice: decoding keeps one value; leave that to the object path.
      if (typeof part === 'string' && eq(b, S, E, keyBytes(part)) && ++hits[i]! > 1) throw UNSUPPORTED;
    }
    q = skip(b, E);
  }
  out.map(kept);
  q = first;
  for (let m = 0; m < entries; m++) {
    strAt(b, q);
    const head = q;
    const ks = S;
    const ke = E;
    const end = skip(b, ke);
    q = end;
    if (removes(b, ks, ke, paths)) continue;
    let sub: PathPart[][] | null = null;
    for (const path of paths) {
      const part = path[0]!;
      if (path.length > 1 && typeof part === 'string' && eq(b, ks, ke, keyBytes(part))) (sub ??= []).push(path.slice(1));
    }
    out.copy(b, head, ke);
    if (sub === null) out.copy(b, ke, end);
    else writeWithout(b, ke, end, sub);
  }
}

function removes(b: Buffer, ks: number, ke: number, paths: PathPart[][]): boolean {
  for (const path of paths) {
    const part = path[0]!;
    if (path.length === 1 && typeof part === 'string' && eq(b, ks, ke, keyBytes(part))) return true;
  }
  return false;
}

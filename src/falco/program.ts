/**
 * The condition compiler: type-checks every check of a resolved condition (resolve.ts inlines
 * macros and substitutes lists) against the field table, and compiles the result ONCE into
 * plain closures (no eval, no Function constructor).
 *
 * All rules of a rule set share one Program:
 *  - every distinct (field, argument, transformer) is a slot, extracted at most once per event
 *    (an epoch-stamped cache, no allocation per event);
 *  - identical sub-conditions (the same macro used by twenty rules, or the same rule loaded
 *    under another name) are hash-consed into one node, and shared and/or/not nodes memoise
 *    their result per event;
 *  - for the rule index, each node reports which values of a cheap single-valued field
 *    (ka.verb, ka.target.resource, the stage...) it can possibly match.
 *
 * Planning and building walk the DAG with explicit stacks; evaluation recurses through its
 * and/or/not nesting, which resolve.ts bounds (LIMITS.depth).
 */
import { CompileError, EvalContext, andOf, orOf, type CompileWarning, type PlanNode, type Pred } from './compile.js';
import { FIELDS, checkFieldArg, type FieldValue, type ValueType } from './fields.js';
import { LIST_FIELD_OK, NUMERIC_OK, compilePmatch, numTest, parseNumber, stringTest } from './operators.js';
import type { Expr, FieldRef, Operand, Pos } from './parser.js';

type Getter = (c: EvalContext) => FieldValue;

interface Slot {
  id: number;
  key: string;
  type: ValueType;
  /** A plain single-valued field without transformer (usable as a rule index key). */
  plain: boolean;
  compute: (c: EvalContext) => FieldValue;
  get: Getter;
}

/** A planned condition and the warnings of the checks in it. */
export interface Planned {
  node: PlanNode;
  warnings: readonly CompileWarning[];
}

const NO_WARNINGS: readonly CompileWarning[] = [];

function exprChildren(e: Expr): readonly Expr[] {
  if (e.kind === 'and' || e.kind === 'or') return e.children;
  if (e.kind === 'not') return [e.child];
  return [];
}

/** Compiles conditions of one rule set into shared closures. */
export class Program {
  private readonly slots: Slot[] = [];
  private readonly slotByKey = new Map<string, Slot>();
  private readonly nodes = new Map<string, PlanNode>();
  private nextNode = 0;
  private memoCount = 0;
  private readonly built = new Map<number, Pred>();
  private readonly planned = new WeakMap<Expr, Planned>();
  private readonly failed = new WeakMap<Expr, CompileError>();
  private ctx?: EvalContext;
  readonly warnings: CompileWarning[] = [];

  /** Distinct nodes of the condition DAG. */
  get nodeCount(): number {
    return this.nodes.size;
  }

  /** The context to evaluate with; valid once every condition has been planned. */
  context(): EvalContext {
    if (!this.ctx || this.ctx.fEpoch.length !== this.slots.length || this.ctx.mEpoch.length !== this.memoCount) this.ctx = new EvalContext(this.slots.length, this.memoCount);
    return this.ctx;
  }

  private addSlot(key: string, type: ValueType, plain: boolean, compute: (c: EvalContext) => FieldValue): Slot {
    const existing = this.slotByKey.get(key);
    if (existing) return existing;
    const id = this.slots.length;
    const get: Getter = (c) => {
      if (c.fEpoch[id] === c.epoch) return c.fVal[id];
      const v = compute(c);
      c.fEpoch[id] = c.epoch;
      c.fVal[id] = v;
      return v;
    };
    const slot: Slot = { id, key, type, plain, compute, get };
    this.slots.push(slot);
    this.slotByKey.set(key, slot);
    return slot;
  }

  /** The slot of a field reference (validates name and argument). */
  fieldSlot(f: FieldRef): Slot {
    const info = FIELDS.get(f.name);
    if (!info) throw new CompileError(`filter_check called with nonexistent field ${f.name}`, f.pos);
    const err = checkFieldArg(info, f.arg);
    if (err) throw new CompileError(err, f.pos);
    // json.* and jevt.* are the same fields; pointers with and without the leading '/' too.
    let canonical = f.name.replace(/^jevt\./, 'json.');
    let arg = f.arg;
    if (canonical === 'json.value' && arg !== undefined && arg !== '' && !arg.startsWith('/')) arg = `/${arg}`;
    if (arg !== undefined) canonical += `[${arg}]`;
    const extract = info.make(f.arg);
    return this.addSlot(canonical, info.type, info.type === 'str', (c) => extract(c.ev));
  }

  /** The slot of a field or transformer operand. */
  operandSlot(o: Operand): Slot {
    if (o.kind === 'field') return this.fieldSlot(o);
    if (o.kind === 'value') throw new CompileError('expected a field or a transformer', o.pos);
    if (o.name === 'val') throw new CompileError("'val' can only be used on the right-hand side of a comparison", o.pos);
    if (o.name === 'join') throw new CompileError("the 'join' transformer is not supported", o.pos);
    if (o.args.length !== 1 || o.args[0]!.kind === 'value') throw new CompileError(`transformer '${o.name}' takes exactly one field or transformer argument`, o.pos);
    const base = this.operandSlot(o.args[0]!);
    const key = `${o.name}(${base.key})`;
    const g = base.get;
    const mapStr =
      (fn: (s: string) => string | undefined): ((c: EvalContext) => FieldValue) =>
      (c) => {
        const v = g(c);
        if (v === undefined) return undefined;
        if (typeof v === 'string') return fn(v);
        if (typeof v === 'number') return fn(String(v));
        const out: string[] = [];
        for (const s of v) {
          const x = fn(s);
          if (x !== undefined) out.push(x);
        }
        return out.length ? out : undefined;
      };
    const outType: ValueType = base.type === 'num' ? 'str' : base.type;
    switch (o.name) {
      case 'tolower':
        return this.addSlot(
          key,
          outType,
          false,
          mapStr((s) => s.toLowerCase()),
        );
      case 'toupper':
        return this.addSlot(
          key,
          outType,
          false,
          mapStr((s) => s.toUpperCase()),
        );
      case 'basename':
        return this.addSlot(
          key,
          outType,
          false,
          mapStr((s) => s.slice(s.lastIndexOf('/') + 1)),
        );
      case 'b64':
        return this.addSlot(
          key,
          outType,
          false,
          mapStr((s) => (/^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0 ? Buffer.from(s, 'base64').toString('utf8') : undefined)),
        );
      case 'len':
        return this.addSlot(key, 'num', false, (c) => {
          const v = g(c);
          if (v === undefined) return undefined;
          if (Array.isArray(v)) return v.length;
          return Buffer.byteLength(typeof v === 'string' ? v : String(v), 'utf8');
        });
      default:
        throw new CompileError(`unknown transformer '${o.name}'`, o.pos);
    }
  }

  private node(key: string, init: Omit<PlanNode, 'id' | 'key' | 'refs'>): PlanNode {
    let n = this.nodes.get(key);
    if (!n) {
      n = { id: this.nextNode++, key, refs: 0, ...init };
      this.nodes.set(key, n);
      for (const c of n.children) c.refs++;
    }
    return n;
  }

  /**
   * Plans a resolved condition (macros inlined, lists substituted) into the shared DAG, with the
   * warnings of every check in it. A resolved expression shared by several conditions (a macro's
   * body) is planned once; the walk uses an explicit stack.
   */
  plan(root: Expr): Planned {
    const memo = this.planned;
    const hit = memo.get(root);
    if (hit) return hit;
    const failed = this.failed;
    const stack: Array<{ e: Expr; kids: readonly Expr[]; i: number }> = [{ e: root, kids: exprChildren(root), i: 0 }];
    try {
      const bad = failed.get(root);
      if (bad) throw bad;
      while (stack.length > 0) {
        const f = stack[stack.length - 1]!;
        if (f.i < f.kids.length) {
          const c = f.kids[f.i++]!;
          if (memo.has(c)) continue;
          const err = failed.get(c);
          if (err) throw err;
          stack.push({ e: c, kids: exprChildren(c), i: 0 });
          continue;
        }
        if (!memo.has(f.e))
          memo.set(
            f.e,
            this.planOne(
              f.e,
              f.kids.map((k) => memo.get(k)!),
            ),
          );
        stack.pop();
      }
    } catch (e) {
      // Every condition containing a failed expression fails the same way: remember it, so
      // that rules sharing it (skip-if-unknown-filter) do not walk it again.
      if (e instanceof CompileError) for (const f of stack) failed.set(f.e, e);
      throw e;
    }
    return memo.get(root)!;
  }

  /** One expression whose children are planned. */
  private planOne(e: Expr, kids: Planned[]): Planned {
    let warnings: readonly CompileWarning[] = NO_WARNINGS;
    let merged: Set<CompileWarning> | undefined;
    for (const k of kids) {
      if (k.warnings.length === 0 || k.warnings === warnings) continue;
      if (warnings.length === 0) warnings = k.warnings;
      else {
        merged ??= new Set(warnings);
        for (const w of k.warnings) merged.add(w);
      }
    }
    if (merged) warnings = [...merged];
    switch (e.kind) {
      case 'and':
      case 'or': {
        const children = kids.map((k) => k.node);
        return { node: this.node(`${e.kind}(${children.map((c) => c.id).join(',')})`, { kind: e.kind, children }), warnings };
      }
      case 'not': {
        const child = kids[0]!.node;
        if (child.kind === 'not') return { node: child.children[0]!, warnings };
        return { node: this.node(`not(${child.id})`, { kind: 'not', children: [child] }), warnings };
      }
      case 'ident':
        throw new CompileError(`Undefined macro '${e.name}' used in filter.`, e.pos);
      case 'unary': {
        const s = this.operandSlot(e.left);
        const g = s.get;
        return { node: this.node(`exists(${s.key})`, { kind: 'check', children: [], make: () => (c) => g(c) !== undefined }), warnings };
      }
      case 'binary': {
        const before = this.warnings.length;
        const node = this.planBinary(e);
        return { node, warnings: this.warnings.length > before ? this.warnings.slice(before) : NO_WARNINGS };
      }
    }
  }

  private planBinary(e: Extract<Expr, { kind: 'binary' }>): PlanNode {
    const left = this.operandSlot(e.left);
    const op = e.op === '==' ? '=' : e.op;
    const g = left.get;
    const r = e.right;

    // Right-hand side computed from the event (val() or a transformer).
    if (r.kind === 'transformer') {
      const rs = r.name === 'val' ? this.fieldSlot(r.args[0] as FieldRef) : this.operandSlot(r);
      const rg = rs.get;
      return this.node(`${left.key} ${op} ${r.name === 'val' ? 'val' : ''}(${rs.key})`, { kind: 'check', children: [], make: () => this.dynamicCheck(left, op, rs.type, rg, e.pos) });
    }

    const values: string[] = r.kind === 'list' ? r.items.map((i) => i.value) : [r.value];
    const key = `${left.key} ${op} ${JSON.stringify(values)}${r.kind === 'list' ? 'L' : ''}`;

    if (left.type === 'num') {
      if (!NUMERIC_OK.has(op)) throw new CompileError(`'${op}' operator not supported for numeric filters`, e.pos);
      const nums = values.map((v) => parseNumber(v, r.pos));
      if (op === 'in' || op === 'intersects') {
        const set = new Set(nums);
        return this.node(key, {
          kind: 'check',
          children: [],
          make: () => (c) => {
            const v = g(c);
            return v !== undefined && set.has(v as number);
          },
        });
      }
      if (nums.length !== 1) throw new CompileError(`operator '${op}' takes one value`, r.pos);
      const t = numTest(op, nums[0]!, r.pos);
      return this.node(key, {
        kind: 'check',
        children: [],
        make: () => (c) => {
          const v = g(c);
          return v !== undefined && t(v as number);
        },
      });
    }

    if (left.type === 'list') {
      if (!LIST_FIELD_OK.has(op)) {
        // Falco of the legacy rule files failed such a check only when evaluating it; newer Falco
        // rejects the rule. Keep the rule file loadable, report it, and count evaluation errors.
        this.warnings.push({ message: `'${op}' operator not supported on list field '${left.key}': the check is always false`, pos: e.pos });
        return this.node(`${key}!`, {
          kind: 'check',
          children: [],
          make: () => (c) => {
            if (g(c) !== undefined) c.runtimeErrors++;
            return false;
          },
        });
      }
      const set = new Set(values);
      if (op === 'in') {
        return this.node(key, {
          kind: 'check',
          children: [],
          make: () => (c) => {
            const v = g(c) as string[] | undefined;
            if (v === undefined) return false;
            for (let i = 0; i < v.length; i++) if (!set.has(v[i]!)) return false;
            return true;
          },
        });
      }
      return this.node(key, {
        kind: 'check',
        children: [],
        make: () => (c) => {
          const v = g(c) as string[] | undefined;
          if (v === undefined) return false;
          for (let i = 0; i < v.length; i++) if (set.has(v[i]!)) return true;
          return false;
        },
      });
    }

    // Single-valued string field.
    if (op === 'in' || op === 'intersects') {
      const set = new Set(values);
      const constraint = left.plain ? { slot: left.id, values: set } : undefined;
      if (set.size === 1) {
        const only = values[0]!;
        return this.node(key, { kind: 'check', children: [], constraint, make: () => (c) => g(c) === only });
      }
      return this.node(key, {
        kind: 'check',
        children: [],
        constraint,
        make: () => (c) => {
          const v = g(c);
          return v !== undefined && set.has(v as string);
        },
      });
    }
    if (op === 'pmatch') {
      const t = compilePmatch(values);
      return this.node(key, {
        kind: 'check',
        children: [],
        make: () => (c) => {
          const v = g(c);
          return v !== undefined && t(v as string);
        },
      });
    }
    if (values.length !== 1) throw new CompileError(`operator '${op}' takes one value`, r.pos);
    const lit = values[0]!;
    if (op === '=') {
      const constraint = left.plain ? { slot: left.id, values: new Set([lit]) } : undefined;
      return this.node(key, { kind: 'check', children: [], constraint, make: () => (c) => g(c) === lit });
    }
    const t = stringTest(op, lit, r.pos);
    return this.node(key, {
      kind: 'check',
      children: [],
      make: () => (c) => {
        const v = g(c);
        return v !== undefined && t(v as string);
      },
    });
  }

  private dynamicCheck(left: Slot, op: string, rtype: ValueType, rg: Getter, pos: Pos): Pred {
    const g = left.get;
    if (op === 'in' || op === 'intersects') {
      const every = op === 'in';
      return (c) => {
        const v = g(c);
        const rv = rg(c);
        if (v === undefined || rv === undefined) return false;
        const rset = Array.isArray(rv) ? rv : [String(rv)];
        const lv = Array.isArray(v) ? v : [String(v)];
        for (const x of lv) {
          const hit = rset.includes(x);
          if (every && !hit) return false;
          if (!every && hit) return true;
        }
        return every;
      };
    }
    if (left.type === 'list' || rtype === 'list') throw new CompileError(`'${op}' operator not supported list filters`, pos);
    if (left.type === 'num' || rtype === 'num') {
      numTest(op, 0, pos);
      return (c) => {
        const v = g(c);
        const rv = rg(c);
        if (v === undefined || rv === undefined) return false;
        return numTest(op, Number(rv), pos)(Number(v));
      };
    }
    if (op === 'glob' || op === 'iglob' || op === 'regex' || op === 'pmatch' || op === 'bcontains' || op === 'bstartswith') {
      throw new CompileError(`operator '${op}' needs a literal value, not a field`, pos);
    }
    return (c) => {
      const v = g(c);
      const rv = rg(c);
      if (v === undefined || rv === undefined) return false;
      return stringTest(op, rv as string, pos)(v as string);
    };
  }

  /** Slots that constrain at least one check (candidates for the rule index), by id. */
  constrainingSlots(): Array<{ id: number; key: string }> {
    const seen = new Set<number>();
    for (const n of this.nodes.values()) if (n.constraint) seen.add(n.constraint.slot);
    return [...seen].map((id) => ({ id, key: this.slots[id]!.key }));
  }

  slotGetter(id: number): Getter {
    return this.slots[id]!.get;
  }

  /** Builds the closure of a planned node; shared composite nodes memoise per event. */
  build(root: PlanNode): Pred {
    const built = this.built;
    const done = built.get(root.id);
    if (done) return done;
    const stack: Array<{ n: PlanNode; i: number }> = [{ n: root, i: 0 }];
    while (stack.length > 0) {
      const f = stack[stack.length - 1]!;
      if (f.i < f.n.children.length) {
        const c = f.n.children[f.i++]!;
        if (!built.has(c.id)) stack.push({ n: c, i: 0 });
        continue;
      }
      stack.pop();
      const n = f.n;
      if (built.has(n.id)) continue;
      let p: Pred;
      switch (n.kind) {
        case 'check':
          p = n.make!();
          break;
        case 'not': {
          const c0 = built.get(n.children[0]!.id)!;
          p = (c) => !c0(c);
          break;
        }
        case 'and':
        case 'or': {
          const cs = n.children.map((x) => built.get(x.id)!);
          p = n.kind === 'and' ? andOf(cs) : orOf(cs);
          break;
        }
      }
      if (n.refs > 1 && (n.kind === 'and' || n.kind === 'or' || n.kind === 'not')) p = this.memo(p);
      built.set(n.id, p);
    }
    return built.get(root.id)!;
  }

  private memo(p: Pred): Pred {
    const id = this.memoCount++;
    return (c) => {
      if (c.mEpoch[id] === c.epoch) return c.mVal[id] === 1;
      const v = p(c);
      c.mEpoch[id] = c.epoch;
      c.mVal[id] = v ? 1 : 0;
      return v;
    };
  }
}

/**
 * Macro and list references of a rule set, resolved as a shared graph: every macro is resolved
 * once and every list expanded once, and each use of a macro is the same resolved expression
 * object (so a condition DAG stays as small as the rule text, whatever the fan-out: `m1: m0 or
 * m0`, ... 40 levels is 41 nodes, not 2^40). The walks over the macro and list graphs use
 * explicit stacks, so no rule file can exhaust the JavaScript stack here; recursion only runs
 * over one parsed condition, whose depth the parser bounds.
 *
 * Semantics (Falco's rule_loader_compiler.cpp, filter_macro_resolver.cpp):
 *  - a macro may use macros defined before it (by position; an append or redefinition moves
 *    that point to where it happened); a use takes the final definition of the macro;
 *  - a macro that reaches itself is "reference loop in macro 'X'";
 *  - a list item naming a list defined before it is replaced by that list's items (themselves
 *    expanded); a quoted item is unquoted; anything else is literal text;
 *  - in a condition, a bare word inside `( ... )` (or alone on the right of a list operator)
 *    that names a list is replaced by its items; a name that is no list stays a literal.
 *
 * Limits (LIMITS) end in a ResolveError naming the macro, list or condition that crossed them.
 */
import { CompileError } from './compile.js';
import { unescapeQuoted, type Expr, type ListLiteral, type Pos, type StringLiteral } from './parser.js';

export const LIMITS = Object.freeze({
  /**
   * Nesting of and/or/not in a condition once its macros are expanded. Evaluation recurses
   * through this nesting, so it is bounded; the upstream rules need 4.
   */
  depth: 1000,
  /** Items of one list once the list names in it are expanded, and of one `( ... )` once the list names in it are substituted. */
  listItems: 100_000,
  /** List items produced in total while expanding lists and substituting them into the conditions of one rule set. */
  totalListItems: 1_000_000,
});

export type Limits = typeof LIMITS;

export interface MacroDef {
  /** The parsed condition (final definition, appends included). */
  body: Expr;
  /** Position of the first definition (what "defined before" compares). */
  index: number;
  /** Position of the last definition or append (what the macro may see). */
  visibility: number;
}

export interface ListDef {
  items: readonly string[];
  index: number;
  visibility: number;
}

/** A resolution error; `at` names the macro or list it belongs to (none: the condition being resolved). */
export class ResolveError extends CompileError {
  constructor(
    message: string,
    pos: Pos | undefined,
    readonly at?: { kind: 'macro' | 'list'; name: string },
  ) {
    super(message, pos);
    this.name = 'ResolveError';
  }
}

const LIST_OPS = new Set(['in', 'intersects', 'pmatch']);

function isQuoted(item: string): boolean {
  const q = item[0];
  return (q === '"' || q === "'") && item.length >= 2 && item.endsWith(q);
}

interface ListFrame {
  name: string;
  def: ListDef;
  i: number;
  out: string[];
}

interface MacroFrame {
  name: string;
  def: MacroDef;
  deps: Array<{ name: string; pos: Pos }>;
  i: number;
}

export class Resolver {
  /** Macro and list names used by a resolved macro, list or condition. */
  readonly usedMacros = new Set<string>();
  readonly usedLists = new Set<string>();
  /** How much work was done: macros resolved, lists expanded, list items produced. */
  readonly stats = { macros: 0, lists: 0, listItems: 0 };
  private readonly resolved = new Map<string, Expr>();
  private readonly expanded = new Map<string, readonly string[]>();
  /** Depth of composite resolved expressions (leaves are 1). */
  private readonly depths = new WeakMap<Expr, number>();

  constructor(
    private readonly macros: ReadonlyMap<string, MacroDef>,
    private readonly lists: ReadonlyMap<string, ListDef>,
    private readonly limits: Limits = LIMITS,
  ) {}

  /** Depth of a resolved expression: and/or/not levels, macros expanded. */
  depth(e: Expr): number {
    return this.depths.get(e) ?? 1;
  }

  private count(n: number, pos: Pos | undefined, at: ResolveError['at']): void {
    this.stats.listItems += n;
    if (this.stats.listItems > this.limits.totalListItems) {
      throw new ResolveError(`the conditions and lists of this rule set expand to more than ${this.limits.totalListItems} list items in total`, pos, at);
    }
  }

  /** The expanded items of a list, or undefined when there is no such list. */
  list(name: string): readonly string[] | undefined {
    const done = this.expanded.get(name);
    if (done) return done;
    const root = this.lists.get(name);
    if (!root) return undefined;
    const active = new Set<string>([name]);
    const stack: ListFrame[] = [{ name, def: root, i: 0, out: [] }];
    const add = (f: ListFrame, items: readonly string[]) => {
      if (f.out.length + items.length > this.limits.listItems) {
        throw new ResolveError(`list expands to more than ${this.limits.listItems} items`, undefined, { kind: 'list', name: f.name });
      }
      this.count(items.length, undefined, { kind: 'list', name: f.name });
      for (let k = 0; k < items.length; k++) f.out.push(items[k]!);
    };
    for (;;) {
      const f = stack[stack.length - 1]!;
      if (f.i < f.def.items.length) {
        const item = f.def.items[f.i++]!;
        if (isQuoted(item)) {
          let v = item;
          try {
            v = unescapeQuoted(item);
          } catch {
            // An invalid escape stays as written.
          }
          add(f, [v]);
          continue;
        }
        const ref = active.has(item) ? undefined : this.lists.get(item);
        if (!ref || ref.index >= f.def.visibility) {
          add(f, [item]);
          continue;
        }
        this.usedLists.add(item);
        const got = this.expanded.get(item);
        if (got) add(f, got);
        else {
          active.add(item);
          stack.push({ name: item, def: ref, i: 0, out: [] });
        }
        continue;
      }
      stack.pop();
      active.delete(f.name);
      this.expanded.set(f.name, f.out);
      this.stats.lists++;
      const parent = stack[stack.length - 1];
      if (!parent) return f.out;
      add(parent, f.out);
    }
  }

  /**
   * The resolved body of a macro (the same object for every use). Macros it uses are resolved
   * first, depth-first with an explicit stack.
   */
  macro(name: string): Expr {
    const done = this.resolved.get(name);
    if (done) return done;
    const def = this.macros.get(name);
    if (!def) throw new ResolveError(`Undefined macro '${name}' used in filter.`, undefined);
    const active = new Set<string>([name]);
    const stack: MacroFrame[] = [this.frame(name, def)];
    for (;;) {
      const f = stack[stack.length - 1]!;
      if (f.i < f.deps.length) {
        const dep = f.deps[f.i++]!;
        if (this.resolved.has(dep.name)) continue;
        if (active.has(dep.name)) throw new ResolveError(`reference loop in macro '${dep.name}'`, dep.pos, { kind: 'macro', name: f.name });
        active.add(dep.name);
        stack.push(this.frame(dep.name, this.macros.get(dep.name)!));
        continue;
      }
      stack.pop();
      active.delete(f.name);
      const body = this.rewrite(f.def.body, { kind: 'macro', name: f.name });
      this.resolved.set(f.name, body);
      this.stats.macros++;
      if (stack.length === 0) return body;
    }
  }

  /** The macros a macro's own text uses, checked against what it may see. */
  private frame(name: string, def: MacroDef): MacroFrame {
    const deps: MacroFrame['deps'] = [];
    const walk = (e: Expr): void => {
      if (e.kind === 'and' || e.kind === 'or') for (const c of e.children) walk(c);
      else if (e.kind === 'not') walk(e.child);
      else if (e.kind === 'ident') {
        const d = this.macros.get(e.name);
        if (!d || d.index >= def.visibility) throw new ResolveError(`Undefined macro '${e.name}' used in filter.`, e.pos, { kind: 'macro', name });
        deps.push({ name: e.name, pos: e.pos });
      }
    };
    walk(def.body);
    return { name, def, deps, i: 0 };
  }

  /** Resolves a rule's condition (every macro visible). */
  condition(e: Expr): Expr {
    return this.rewrite(e, undefined);
  }

  /**
   * A parsed condition with macros replaced by their resolved bodies and list names by their
   * items. Recurses over this one parsed condition only (never into macro bodies).
   */
  private rewrite(e: Expr, at: ResolveError['at']): Expr {
    switch (e.kind) {
      case 'and':
      case 'or': {
        const children = e.children.map((c) => this.rewrite(c, at));
        const out = { ...e, children };
        this.setDepth(out, e.children, children, at);
        return out;
      }
      case 'not': {
        const child = this.rewrite(e.child, at);
        const out = { ...e, child };
        this.setDepth(out, [e.child], [child], at);
        return out;
      }
      case 'ident': {
        if (at === undefined && !this.macros.has(e.name)) throw new ResolveError(`Undefined macro '${e.name}' used in filter.`, e.pos);
        this.usedMacros.add(e.name);
        return this.resolved.get(e.name) ?? this.macro(e.name);
      }
      case 'unary':
        return e;
      case 'binary':
        return this.substitute(e, at);
    }
  }

  private setDepth(out: Expr, before: readonly Expr[], after: readonly Expr[], at: ResolveError['at']): void {
    let max = 0;
    let deepest = 0;
    for (let k = 0; k < after.length; k++) {
      const d = this.depth(after[k]!);
      if (d > max) {
        max = d;
        deepest = k;
      }
    }
    if (max + 1 > this.limits.depth) {
      const via = before[deepest]!;
      const how = via.kind === 'ident' ? ` once macro '${via.name}' is expanded` : ' once macros are expanded';
      throw new ResolveError(`exceeded max depth limit of ${this.limits.depth}${how}`, via.pos, at);
    }
    this.depths.set(out, max + 1);
  }

  private substitute(e: Extract<Expr, { kind: 'binary' }>, at: ResolveError['at']): Expr {
    const r = e.right;
    if (r.kind === 'list') {
      let items: StringLiteral[] | undefined;
      for (let k = 0; k < r.items.length; k++) {
        const it = r.items[k]!;
        const l = it.quoted ? undefined : this.list(it.value);
        if (!l) {
          items?.push(it);
          continue;
        }
        if (!items) items = r.items.slice(0, k);
        this.usedLists.add(it.value);
        if (items.length + l.length > this.limits.listItems) {
          throw new ResolveError(`list expands to more than ${this.limits.listItems} items once list '${it.value}' is substituted`, it.pos, at);
        }
        this.count(l.length, it.pos, at);
        for (const v of l) items.push({ kind: 'value', value: v, quoted: true, pos: it.pos });
      }
      return items ? { ...e, right: { ...r, items } } : e;
    }
    if (r.kind === 'value' && !r.quoted) {
      const l = this.list(r.value);
      if (!l) return e;
      this.usedLists.add(r.value);
      if (LIST_OPS.has(e.op)) {
        this.count(l.length, r.pos, at);
        const list: ListLiteral = { kind: 'list', items: l.map((v) => ({ kind: 'value', value: v, quoted: true, pos: r.pos })), pos: r.pos };
        return { ...e, right: list };
      }
      if (l.length !== 1) {
        throw new ResolveError(`list '${r.value}' has ${l.length} items and cannot be used with operator '${e.op}'`, r.pos, at);
      }
      return { ...e, right: { kind: 'value', value: l[0]!, quoted: true, pos: r.pos } };
    }
    return e;
  }
}

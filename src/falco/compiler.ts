/**
 * The compiler (Falco's rule_loader_compiler.cpp): turns the collected lists, macros and rules
 * into a rule set. Exceptions become `and not (...)` clauses, built as Falco builds them; lists
 * are substituted and macros inlined with their final definitions; rules of another source than
 * k8s_audit are syntax-checked and skipped; the unused macro and list warnings come last.
 */
import type { Collector } from './collector.js';
import { CompileError } from './compile.js';
import { Program, type Planned } from './program.js';
import { ItemError, SOURCE, type CompiledRule, type Ctx, type LoadLog, type RuleInfo, type RuleSet, type RuleSummary, type Where } from './load-info.js';
import { compileOutput, type CompiledOutput } from './output.js';
import { ConditionSyntaxError, parseCondition, type Expr } from './parser.js';
import { priorityName } from './priority.js';
import { ResolveError, Resolver, type MacroDef } from './resolve.js';

function quoteItem(e: string): string {
  return e.includes(' ') && e[0] !== '"' && e[0] !== "'" ? `"${e}"` : e;
}

function parenItem(e: string): string {
  return e[0] !== '(' ? `(${e})` : e;
}

/** build_rule_exception_infos of Falco: `(cond) and not (...)` per exception, as text. */
function exceptionCondition(r: RuleInfo): string {
  let condition = `(${r.cond})`;
  for (const ex of r.exceptions) {
    let icond = '';
    const fields = ex.fields!;
    const comps = ex.comps!;
    if (!fields.isList) {
      for (const v of ex.values) {
        if (v.isList) throw new ItemError('LOAD_ERR_VALIDATE', 'Expected values array to contain a list of strings', ex.ctx);
        icond += icond === '' ? `(${fields.item} ${comps.item} (` : ', ';
        icond += quoteItem(v.item);
      }
      icond += icond === '' ? '' : '))';
    } else {
      icond = '(';
      for (const values of ex.values) {
        if (!values.isList || fields.items.length !== values.items.length) {
          throw new ItemError('LOAD_ERR_VALIDATE', 'Fields and values lists must have equal length', ex.ctx);
        }
        icond += icond === '(' ? '' : ' or ';
        icond += '(';
        fields.items.forEach((field, k) => {
          const val = values.items[k]!;
          const comp = comps.items[k]!.item;
          let istr: string;
          if (val.isList) {
            istr = `(${val.items
              .map((x) => {
                if (x.isList) throw new ItemError('LOAD_ERR_VALIDATE', 'Expected values array to contain a list of strings', ex.ctx);
                return quoteItem(x.item);
              })
              .join(', ')})`;
          } else istr = ['in', 'intersects', 'pmatch'].includes(comp) ? parenItem(val.item) : quoteItem(val.item);
          icond += `${k === 0 ? '' : ' and'} ${field.item} ${comp} ${istr}`;
        });
        icond += ')';
      }
      icond += ')';
      if (icond === '()') icond = '';
    }
    if (icond !== '') condition += ` and not ${icond}`;
  }
  return condition;
}

export function compileRules(c: Collector, files: readonly string[]): { set: RuleSet; resolver: Resolver } {
  const log: LoadLog = c.log;
  const prog = new Program();
  const parse = (text: string, ctx: Ctx, where: Where): Expr => {
    try {
      return parseCondition(text);
    } catch (e) {
      if (e instanceof ConditionSyntaxError) throw new ItemError('LOAD_ERR_COMPILE_CONDITION', e.message, { ...ctx, where }, { what: 'condition', pos: e.pos });
      throw e;
    }
  };
  /** A resolution error, placed at the macro or list it names, else at the condition `ctx`/`where`. */
  const placed = (e: ResolveError, ctx: Ctx, where: Where): ItemError => {
    const textPos = e.pos ? { what: 'condition' as const, pos: e.pos } : undefined;
    if (e.at?.kind === 'macro') {
      const m = c.macros.get(e.at.name)!;
      return new ItemError('LOAD_ERR_COMPILE_CONDITION', e.message, { ...m.ctx, where: m.condWhere }, textPos);
    }
    if (e.at?.kind === 'list') return new ItemError('LOAD_ERR_VALIDATE', e.message, c.lists.get(e.at.name)!.ctx);
    return new ItemError('LOAD_ERR_COMPILE_CONDITION', e.message, { ...ctx, where }, textPos);
  };
  try {
    const macroDefs = new Map<string, MacroDef>();
    for (const m of c.macros.values()) macroDefs.set(m.name, { body: parse(m.cond, m.ctx, m.condWhere), index: m.index, visibility: m.visibility });
    const resolver = new Resolver(macroDefs, c.lists);
    for (const m of c.macros.values()) {
      try {
        resolver.macro(m.name);
      } catch (e) {
        if (e instanceof ResolveError) throw placed(e, m.ctx, m.condWhere);
        throw e;
      }
    }

    const rules: CompiledRule[] = [];
    const summary: RuleSummary[] = [];
    const otherSources = new Map<string, number>();
    const ordered = [...c.rules.values()].sort((a, b) => a.index - b.index);
    for (const r of ordered) {
      const base: RuleSummary = { name: r.name, priorityName: priorityName(r.priority), source: r.source, enabled: r.enabled, where: r.ctx.where };
      const text = r.exceptions.length ? exceptionCondition(r) : r.cond;
      const ast = parse(text, r.ctx, r.condWhere);
      let resolved: Expr;
      try {
        resolved = resolver.condition(ast);
      } catch (e) {
        if (e instanceof ResolveError) throw placed(e, r.ctx, r.condWhere);
        throw e;
      }
      if (r.source !== SOURCE) {
        otherSources.set(r.source, (otherSources.get(r.source) ?? 0) + 1);
        summary.push({ ...base, skipped: `source ${r.source}` });
        continue;
      }
      let planned: Planned;
      try {
        planned = prog.plan(resolved);
      } catch (e) {
        if (!(e instanceof CompileError)) throw e;
        const unknownField = /nonexistent field/.test(e.message);
        if (unknownField && r.skipIfUnknownFilter) {
          log.warn('LOAD_UNKNOWN_FILTER', e.message, { ...r.ctx, where: r.condWhere }, e.pos ? { what: 'condition', pos: e.pos } : undefined);
          summary.push({ ...base, skipped: 'unknown field (skip-if-unknown-filter)' });
          continue;
        }
        throw new ItemError('LOAD_ERR_COMPILE_CONDITION', e.message, { ...r.ctx, where: r.condWhere }, e.pos ? { what: 'condition', pos: e.pos } : undefined);
      }
      const node = planned.node;
      for (const w of planned.warnings) {
        if (log.capped) break;
        log.warn('LOAD_COMPILE_CONDITION', w.message, { ...r.ctx, where: r.condWhere }, w.pos ? { what: 'condition', pos: w.pos } : undefined);
      }
      let output: CompiledOutput;
      try {
        output = compileOutput(r.output, prog);
      } catch (e) {
        if (!(e instanceof CompileError)) throw e;
        throw new ItemError('LOAD_ERR_COMPILE_OUTPUT', e.message, { ...r.ctx, where: r.outputWhere }, e.pos ? { what: 'output', pos: e.pos } : undefined);
      }
      rules.push({
        name: r.name,
        desc: r.desc,
        priority: r.priority,
        priorityName: priorityName(r.priority),
        tags: [...r.tags].sort(),
        source: r.source,
        enabled: r.enabled,
        where: r.ctx.where,
        order: r.index,
        node,
        output,
      });
      summary.push(base);
    }
    const stats = { ...resolver.stats, nodes: prog.nodeCount };
    return { set: { program: prog, rules, summary, otherSources, messages: log.messages, files: [...files], stats }, resolver };
  } catch (e) {
    log.failItem(e);
  }
}

/** The warnings for macros and lists no rule or macro refers to, once the last file is compiled. */
export function warnUnused(c: Collector, resolver: Resolver): void {
  for (const m of c.macros.values()) if (!resolver.usedMacros.has(m.name)) c.log.warn('LOAD_UNUSED_MACRO', 'Macro not referred to by any other rule/macro', m.ctx);
  for (const l of c.lists.values()) if (!resolver.usedLists.has(l.name)) c.log.warn('LOAD_UNUSED_LIST', 'List not referred to by any other rule/macro', l.ctx);
}

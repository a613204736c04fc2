/**
 * The collector (Falco's rule_loader_collector.cpp): keeps the lists, macros and rules read so
 * far, in load order. An item named like an existing one replaces it in place (it keeps its
 * position); appends extend the existing item; exceptions are validated against the rule's
 * source as they are added.
 */
import { FIELDS } from './fields.js';
import { ItemError, SOURCE, type Ctx, type ExceptionInfo, type ListInfo, type LoadLog, type MacroInfo, type RuleInfo } from './load-info.js';
import { ALL_OPS } from './parser.js';

export class Collector {
  readonly lists = new Map<string, ListInfo>();
  readonly macros = new Map<string, MacroInfo>();
  readonly rules = new Map<string, RuleInfo>();
  private index = 0;

  constructor(readonly log: LoadLog) {}

  defineList(info: ListInfo): void {
    this.define(this.lists, info);
  }

  defineMacro(info: MacroInfo): void {
    this.define(this.macros, info);
  }

  /** A new (or redefined) rule; a redefinition keeps the source, exceptions need fields. */
  defineRule(rule: RuleInfo): void {
    const prev = this.rules.get(rule.name);
    if (prev && prev.source !== rule.source) throw new ItemError('LOAD_ERR_VALIDATE', 'Rule has been re-defined with a different source', rule.ctx);
    for (const ex of rule.exceptions) {
      if (!ex.fields) throw new ItemError('LOAD_ERR_VALIDATE', 'Rule exception item must have fields property with a list of fields', ex.ctx);
      this.validateException(ex, rule.source);
    }
    this.define(this.rules, rule);
  }

  appendList(name: string, items: readonly string[], ctx: Ctx): void {
    const prev = this.lists.get(name);
    if (!prev) throw new ItemError('LOAD_ERR_VALIDATE', "List uses 'append' or 'override.items: append' but no list by that name already exists", ctx);
    for (const it of items) prev.items.push(it);
    prev.visibility = this.index++;
  }

  appendMacro(name: string, cond: string, ctx: Ctx): void {
    const prev = this.macros.get(name);
    if (!prev) throw new ItemError('LOAD_ERR_VALIDATE', "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists", ctx);
    prev.cond += ` ${cond}`;
    prev.visibility = this.index++;
  }

  /** The rule an append applies to. */
  ruleToAppend(name: string, ctx: Ctx): RuleInfo {
    const prev = this.rules.get(name);
    if (!prev) throw new ItemError('LOAD_ERR_VALIDATE', "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists", ctx);
    return prev;
  }

  /** The rule an `override.<key>: replace` applies to. */
  ruleToReplace(name: string, ctx: Ctx): RuleInfo {
    const prev = this.rules.get(name);
    if (!prev) throw new ItemError('LOAD_ERR_VALIDATE', "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists", ctx);
    return prev;
  }

  /** The standalone `enabled` item. */
  enableRule(name: string, enabled: boolean, ctx: Ctx): void {
    const prev = this.rules.get(name);
    if (!prev) throw new ItemError('LOAD_ERR_VALIDATE', "Rule has 'enabled' key but no rule by that name already exists", ctx);
    prev.enabled = enabled;
  }

  /** An item that changed an existing rule still takes a load position, as Falco counts them. */
  skipPosition(): void {
    this.index++;
  }

  appendExceptions(prev: RuleInfo, exs: ExceptionInfo[]): void {
    const byName = new Map<string, ExceptionInfo>();
    for (const e of prev.exceptions) if (!byName.has(e.name)) byName.set(e.name, e);
    for (const ex of exs) {
      const old = byName.get(ex.name);
      if (!old) {
        if (!ex.fields) throw new ItemError('LOAD_ERR_VALIDATE', 'Rule exception must have fields property with a list of fields', ex.ctx);
        if (ex.values.length === 0) throw new ItemError('LOAD_ERR_VALIDATE', 'Rule exception must have values property with a list of values', ex.ctx);
        this.validateException(ex, prev.source);
        prev.exceptions.push(ex);
        byName.set(ex.name, ex);
      } else {
        if (ex.fields) throw new ItemError('LOAD_ERR_VALIDATE', 'Can not append exception fields to existing exception, only values', ex.ctx);
        if (ex.comps) throw new ItemError('LOAD_ERR_VALIDATE', 'Can not append exception comps to existing exception, only values', ex.ctx);
        for (const v of ex.values) old.values.push(v);
      }
    }
  }

  private define<T extends { name: string; index: number; visibility?: number }>(map: Map<string, T>, info: T): void {
    const id = this.index++;
    const prev = map.get(info.name);
    info.index = prev ? prev.index : id;
    if ('visibility' in info) info.visibility = id;
    map.set(info.name, info);
  }

  private validateException(ex: ExceptionInfo, source: string): void {
    const known = source === SOURCE;
    const fieldOk = (f: string) => FIELDS.has(f.replace(/\[.*$/, ''));
    if (ex.fields!.isList) {
      if (!ex.comps) ex.comps = { isList: true, item: '', items: ex.fields!.items.map(() => ({ isList: false, item: '=', items: [] })) };
      if (!ex.comps.isList || ex.comps.items.length !== ex.fields!.items.length) throw new ItemError('LOAD_ERR_VALIDATE', 'Fields and comps lists must have equal length', ex.ctx);
      for (const c of ex.comps.items) {
        if (!ALL_OPS.includes(c.item)) throw new ItemError('LOAD_ERR_VALIDATE', `'${c.item}' is not a supported comparison operator`, ex.ctx);
      }
      if (known) for (const f of ex.fields!.items) if (!fieldOk(f.item)) throw new ItemError('LOAD_ERR_VALIDATE', `'${f.item}' is not a supported filter field`, ex.ctx);
    } else {
      if (!ex.comps) ex.comps = { isList: false, item: 'in', items: [] };
      if (ex.comps.isList) throw new ItemError('LOAD_ERR_VALIDATE', 'Fields and comps must both be strings', ex.ctx);
      if (!['in', 'pmatch', 'intersects'].includes(ex.comps.item)) {
        throw new ItemError('LOAD_ERR_VALIDATE', 'When fields is a single value, comps must be one of (in, pmatch, intersects)', ex.ctx);
      }
      if (known && !fieldOk(ex.fields!.item)) throw new ItemError('LOAD_ERR_VALIDATE', `'${ex.fields!.item}' is not a supported filter field`, ex.ctx);
    }
  }
}

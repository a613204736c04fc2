/**
 * Falco rule files: reading (rule_loader_reader.cpp), collecting (rule_loader_collector.cpp) and
 * compiling (rule_loader_compiler.cpp) with Falco's semantics:
 *  - items are `rule`, `macro`, `list`, `required_engine_version`, `required_plugin_versions`;
 *    null items are skipped, other items are warned about;
 *  - an item named like an existing one replaces it in place (it keeps its position);
 *    `append: true` and `override: {key: append|replace}` extend or replace single keys;
 *  - `exceptions` become `and not (...)` clauses, built as Falco builds them;
 *  - lists are substituted and macros inlined with their final definitions, also in rules defined
 *    before the redefinition; a macro may only use macros defined before it;
 *  - rules of another source than k8s_audit are syntax-checked and skipped;
 *  - after each file the whole set is compiled again, so a file that only works with a later file
 *    fails as it does in Falco. Loading stops at the first error of a file.
 * Errors and warnings carry file:line:col and the item ("rule 'X'") with Falco's codes.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, isMap, isScalar, isSeq, parseAllDocuments, type Node, type YAMLMap } from 'yaml';
import { CompileError, Program, type PlanNode, type Planned } from './compile.js';
import { FIELDS } from './fields.js';
import { compileOutput, type CompiledOutput } from './output.js';
import { ALL_OPS, ConditionSyntaxError, parseCondition, type Expr, type Pos } from './parser.js';
import { parsePriority, priorityName } from './priority.js';
import { ResolveError, Resolver, type MacroDef } from './resolve.js';

/** The Falco engine version whose rule language this implements (falco_engine_version.h). */
export const ENGINE_VERSION = '0.45.0';
/** Plugin field sets this engine provides, and the plugin versions they correspond to. */
export const PLUGIN_VERSIONS: Readonly<Record<string, string>> = { k8saudit: '0.18.0', json: '0.7.0' };
export const SOURCE = 'k8s_audit';
/** Warnings reported per load; past this, one LOAD_TOO_MANY_WARNINGS warning says the rest are left out. */
export const MAX_WARNINGS = 1000;

export interface Where {
  file: string;
  line: number;
  col: number;
}

export interface LoadMessage {
  severity: 'error' | 'warning';
  /** Falco's code, e.g. LOAD_ERR_COMPILE_CONDITION, LOAD_UNUSED_MACRO. */
  code: string;
  message: string;
  where: Where;
  /** `rule 'X'`, `macro 'Y'`, `list 'Z'`... */
  item?: string;
  /** Position inside the condition or output text, when the message is about it. */
  textPos?: { what: 'condition' | 'output'; pos: Pos };
}

export function formatMessage(m: LoadMessage): string {
  const at = m.textPos ? ` (${m.textPos.what} line ${m.textPos.pos.line} column ${m.textPos.pos.col})` : '';
  return `${m.where.file}:${m.where.line}:${m.where.col}: ${m.severity}: ${m.item ? `${m.item}: ` : ''}${m.message}${at} [${m.code}]`;
}

export class RuleLoadError extends Error {
  constructor(readonly messages: LoadMessage[]) {
    super(messages.filter((m) => m.severity === 'error').map(formatMessage).join('\n'));
    this.name = 'RuleLoadError';
  }
  get first(): LoadMessage {
    return this.messages.find((m) => m.severity === 'error')!;
  }
}

interface Ctx {
  where: Where;
  item?: string;
}

class ItemError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly ctx: Ctx,
    readonly textPos?: LoadMessage['textPos'],
  ) {
    super(message);
  }
}

interface ExEntry {
  isList: boolean;
  item: string;
  items: ExEntry[];
}

interface ExceptionInfo {
  name: string;
  fields?: ExEntry;
  comps?: ExEntry;
  values: ExEntry[];
  ctx: Ctx;
}

interface ListInfo {
  name: string;
  items: string[];
  index: number;
  visibility: number;
  ctx: Ctx;
}

interface MacroInfo {
  name: string;
  cond: string;
  index: number;
  visibility: number;
  ctx: Ctx;
  condWhere: Where;
}

interface RuleInfo {
  name: string;
  cond: string;
  output: string;
  desc: string;
  priority: number;
  source: string;
  tags: Set<string>;
  exceptions: ExceptionInfo[];
  enabled: boolean;
  skipIfUnknownFilter: boolean;
  index: number;
  ctx: Ctx;
  condWhere: Where;
  outputWhere: Where;
}

/** A rule ready to evaluate. */
export interface CompiledRule {
  name: string;
  desc: string;
  /** 0 (Emergency) ... 7 (Debug). */
  priority: number;
  priorityName: string;
  tags: string[];
  source: string;
  enabled: boolean;
  where: Where;
  /** Position in load order (redefinitions keep the first position). */
  order: number;
  node: PlanNode;
  output: CompiledOutput;
}

export interface RuleSummary {
  name: string;
  priorityName: string;
  source: string;
  enabled: boolean;
  where: Where;
  /** Why the rule is not evaluated, if it is not. */
  skipped?: string;
}

export interface RuleSet {
  program: Program;
  /** k8s_audit rules (enabled or not) in evaluation order. */
  rules: CompiledRule[];
  /** Every rule item, for listings. */
  summary: RuleSummary[];
  /** Rules of other sources, by source. */
  otherSources: Map<string, number>;
  messages: LoadMessage[];
  files: string[];
  /** Compilation work: macros resolved, lists expanded and list items produced (each macro and list once), condition DAG nodes. */
  stats: { macros: number; lists: number; listItems: number; nodes: number };
}

// ---- YAML helpers ---------------------------------------------------------------------------

class Source {
  readonly lines = new LineCounter();
  constructor(readonly file: string) {}
  where(node: Node | null | undefined): Where {
    const { line, col } = this.lines.linePos(node?.range?.[0] ?? 0);
    return { file: this.file, line, col };
  }
}

function scalarText(n: Node): string {
  if (!isScalar(n)) return '';
  const v = n.value;
  if (typeof v === 'string') return v;
  return n.source ?? String(v);
}

function isNullNode(n: unknown): boolean {
  return n === null || n === undefined || (isScalar(n) && n.value === null);
}

const YAML_TRUE = new Set(['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON']);
const YAML_FALSE = new Set(['n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF']);

const RGX_IDENTIFIER = /^[a-zA-Z]+[a-zA-Z0-9_]*$/;
const RGX_BARESTR = /^[^()"' \t\n\r\f\v=,]+$/;

function quoteItem(e: string): string {
  return e.includes(' ') && e[0] !== '"' && e[0] !== "'" ? `"${e}"` : e;
}

function parenItem(e: string): string {
  return e[0] !== '(' ? `(${e})` : e;
}

/** semver `x.y.z`; null when invalid. */
function semver(s: string): [number, number, number] | null {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(s.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

/** sinsp_version::compatible_with: same major, and at least the required minor.patch. */
function compatible(have: [number, number, number], need: [number, number, number]): boolean {
  return have[0] === need[0] && (have[1] > need[1] || (have[1] === need[1] && have[2] >= need[2]));
}

// ---- the loader ----------------------------------------------------------------------------

export class RuleLoader {
  private readonly lists = new Map<string, ListInfo>();
  private readonly macros = new Map<string, MacroInfo>();
  private readonly rules = new Map<string, RuleInfo>();
  private index = 0;
  readonly messages: LoadMessage[] = [];
  private readonly seenWarnings = new Set<string>();
  private warningsCapped = false;
  private readonly files: string[] = [];
  /** The set compiled after the last file, and whether the unused macro/list warnings were added. */
  private last?: { set: RuleSet; resolver: Resolver; final: boolean };

  /** Loads one rule file from disk; throws RuleLoadError at the first error. */
  loadFile(path: string, displayName = path): void {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      this.fail({ severity: 'error', code: 'LOAD_ERR_FILE_READ', message: `could not read rules file: ${(e as Error).message}`, where: { file: displayName, line: 0, col: 0 } });
    }
    this.loadText(text, displayName);
  }

  /** Loads rule file content; throws RuleLoadError at the first error. */
  loadText(text: string, name: string): void {
    this.last = undefined;
    this.files.push(name);
    const src = new Source(name);
    const docs = parseAllDocuments(text, { lineCounter: src.lines, prettyErrors: false });
    const list = Array.isArray(docs) ? docs : [docs];
    for (const doc of list) {
      const err = doc.errors[0];
      if (err) {
        const { line, col } = src.lines.linePos(err.pos[0]);
        // The YAML parser recurses per nesting level; past what the stack allows it stops with
        // RESOURCE_EXHAUSTION (at the position it reached).
        const message = err.code === 'RESOURCE_EXHAUSTION' ? `YAML nesting too deep to parse (${err.message.split(' at line')[0]})` : err.message.split('\n')[0]!;
        this.fail({ severity: 'error', code: 'LOAD_ERR_YAML_PARSE', message, where: { file: name, line, col } });
      }
    }
    try {
      for (const doc of list) {
        const root = doc.contents;
        if (isNullNode(root)) continue;
        const ctx: Ctx = { where: src.where(root as Node) };
        if (!isSeq(root)) {
          throw new ItemError('LOAD_ERR_YAML_VALIDATE', isMap(root) ? 'Rules content is not yaml array of objects' : 'Rules content is not yaml', ctx);
        }
        for (const item of root.items) {
          if (isNullNode(item)) continue;
          this.readItem(src, item as Node);
        }
      }
    } catch (e) {
      if (e instanceof ItemError) this.fail({ severity: 'error', code: e.code, message: e.message, where: e.ctx.where, item: e.ctx.item, textPos: e.textPos });
      throw e;
    }
    // Compile the whole set after each file, so errors surface at the file Falco reports them for.
    this.last = { ...this.compile(), final: false };
  }

  /** The compiled rule set after the last file (with the unused macro/list warnings). */
  result(): RuleSet {
    this.last ??= { ...this.compile(), final: false };
    if (!this.last.final) {
      const { resolver } = this.last;
      for (const m of this.macros.values()) if (!resolver.usedMacros.has(m.name)) this.warn('LOAD_UNUSED_MACRO', 'Macro not referred to by any other rule/macro', m.ctx);
      for (const l of this.lists.values()) if (!resolver.usedLists.has(l.name)) this.warn('LOAD_UNUSED_LIST', 'List not referred to by any other rule/macro', l.ctx);
      this.last.final = true;
    }
    return this.last.set;
  }

  private fail(m: LoadMessage): never {
    this.messages.push(m);
    throw new RuleLoadError(this.messages);
  }

  private warn(code: string, message: string, ctx: Ctx, textPos?: LoadMessage['textPos']): void {
    if (this.seenWarnings.size >= MAX_WARNINGS) {
      if (!this.warningsCapped) {
        this.warningsCapped = true;
        this.messages.push({ severity: 'warning', code: 'LOAD_TOO_MANY_WARNINGS', message: `more than ${MAX_WARNINGS} warnings; further warnings are not reported`, where: ctx.where, item: ctx.item });
      }
      return;
    }
    const m: LoadMessage = { severity: 'warning', code, message, where: ctx.where, item: ctx.item, textPos };
    const key = formatMessage(m);
    if (this.seenWarnings.has(key)) return;
    this.seenWarnings.add(key);
    this.messages.push(m);
  }

  // ---- reading ----

  private readItem(src: Source, item: Node): void {
    const itemCtx: Ctx = { where: src.where(item) };
    if (!isMap(item)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Unexpected element type. Each element should be a yaml associative array.', itemCtx);
    const map = item as YAMLMap;
    const has = (k: string) => map.has(k);
    const node = (k: string) => map.get(k, true) as Node | undefined;

    const val = (k: string, ctx: Ctx, optional = false): string | undefined => {
      if (!has(k)) {
        if (optional) return undefined;
        throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Item has no mapping for key '${k}'`, ctx);
      }
      const n = node(k);
      if (isNullNode(n)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Mapping for key '${k}' is empty`, ctx);
      const vctx: Ctx = { where: src.where(n), item: ctx.item };
      if (!isScalar(n)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Value is not a scalar value', vctx);
      const s = scalarText(n);
      if (s === '') throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Value must be non-empty', vctx);
      return s;
    };
    const bool = (k: string, ctx: Ctx, optional = true): boolean | undefined => {
      const s = val(k, ctx, optional);
      if (s === undefined) return undefined;
      if (YAML_TRUE.has(s)) return true;
      if (YAML_FALSE.has(s)) return false;
      throw new ItemError('LOAD_ERR_YAML_VALIDATE', "Can't decode YAML scalar value", { where: src.where(node(k)), item: ctx.item });
    };
    const seq = (k: string, ctx: Ctx, optional: boolean): string[] | undefined => {
      if (!has(k)) {
        if (optional) return undefined;
        throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Item has no mapping for key '${k}'`, ctx);
      }
      const n = node(k);
      const vctx: Ctx = { where: src.where(n), item: ctx.item };
      if (!isSeq(n)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Value is not a sequence', vctx);
      return n.items.map((x) => {
        if (!isScalar(x) || x.value === null) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'sequence value is not scalar', { where: src.where(x as Node), item: ctx.item });
        return scalarText(x);
      });
    };
    const overrides = (ctx: Ctx, appendable: Set<string>, replaceable: Set<string>) => {
      const append = new Set<string>();
      const replace = new Set<string>();
      if (!has('override')) return { append, replace };
      const o = node('override');
      if (!isMap(o)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', "Value of 'override' must be a mapping", { where: src.where(o), item: ctx.item });
      for (const pair of o.items) {
        const key = scalarText(pair.key as Node);
        const op = isScalar(pair.value) ? scalarText(pair.value) : '';
        const kctx: Ctx = { where: src.where(pair.key as Node), item: ctx.item };
        if (op === 'append') {
          if (!appendable.has(key)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Key '${key}' cannot be appended to, use 'replace' instead`, kctx);
          append.add(key);
        } else if (op === 'replace') {
          if (!replaceable.has(key)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Key '${key}' cannot be replaced`, kctx);
          replace.add(key);
        } else {
          const allowed = `${appendable.has(key) ? 'append ' : ''}${replaceable.has(key) ? 'replace ' : ''}`;
          throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Invalid override operation for key '${key}': '${op}'. Allowed values are: ${allowed}`, { where: src.where(pair.value as Node), item: ctx.item });
        }
      }
      return { append, replace };
    };

    if (has('required_engine_version')) {
      const ctx: Ctx = { ...itemCtx, item: 'required_engine_version' };
      const s = val('required_engine_version', ctx)!;
      let need: [number, number, number] | null;
      if (/^\d+$/.test(s)) need = [0, Number(s), 0];
      else {
        need = semver(s);
        if (!need) throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Unable to parse engine version '${s}' as a semver string. Expected "x.y.z" semver format.`, ctx);
      }
      if (!compatible(semver(ENGINE_VERSION)!, need)) {
        throw new ItemError('LOAD_ERR_VALIDATE', `Rules require engine version ${need.join('.')}, but engine version is ${ENGINE_VERSION}`, ctx);
      }
      return;
    }

    if (has('required_plugin_versions')) {
      const n = node('required_plugin_versions');
      const ctx: Ctx = { where: src.where(n), item: 'required_plugin_versions' };
      if (!isSeq(n)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Value of required_plugin_versions must be a sequence', ctx);
      for (const p of n.items) {
        const pctx: Ctx = { where: src.where(p as Node), item: 'required_plugin_versions' };
        if (!isMap(p)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Plugin version must be a mapping', pctx);
        const reqs: Array<{ name: string; version: string; where: Where }> = [];
        const readReq = (m: YAMLMap, c: Ctx) => {
          const name = m.get('name', true) as Node | undefined;
          const version = m.get('version', true) as Node | undefined;
          if (!name || isNullNode(name)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', "Item has no mapping for key 'name'", c);
          if (!version || isNullNode(version)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', "Item has no mapping for key 'version'", c);
          const r = { name: scalarText(name), version: scalarText(version), where: c.where };
          if (!semver(r.version)) throw new ItemError('LOAD_ERR_VALIDATE', `Invalid required version '${r.version}' for plugin '${r.name}'`, c);
          if (reqs.some((x) => x.name === r.name)) throw new ItemError('LOAD_ERR_VALIDATE', `Defined multiple alternative version requirements for plugin '${r.name}'`, c);
          reqs.push(r);
        };
        readReq(p, pctx);
        const alts = p.get('alternatives', true) as Node | undefined;
        if (alts !== undefined && !isNullNode(alts)) {
          if (!isSeq(alts)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Value of plugin version alternatives must be a sequence', pctx);
          for (const a of alts.items) {
            const actx: Ctx = { where: src.where(a as Node), item: 'required_plugin_versions' };
            if (!isMap(a)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Plugin version alternative must be a mapping', actx);
            readReq(a, actx);
          }
        }
        // Satisfied when one alternative is a field set this engine provides, at a compatible version.
        const known = reqs.filter((r) => PLUGIN_VERSIONS[r.name] !== undefined);
        if (known.length === 0) {
          this.warn('LOAD_UNKNOWN_PLUGIN', `Plugin '${reqs[0]!.name}' is required by this rules file but logwarden has no such plugin; requirement ignored`, pctx);
          continue;
        }
        if (!known.some((r) => compatible(semver(PLUGIN_VERSIONS[r.name]!)!, semver(r.version)!))) {
          const r = known[0]!;
          throw new ItemError('LOAD_ERR_VALIDATE', `Plugin '${r.name}' version '${PLUGIN_VERSIONS[r.name]}' is not compatible with required plugin version '${r.version}'`, pctx);
        }
      }
      return;
    }

    if (has('list')) {
      const name = val('list', { ...itemCtx, item: 'list' })!;
      const ctx: Ctx = { ...itemCtx, item: `list '${name}'` };
      if (!RGX_BARESTR.test(name)) this.warn('LOAD_INVALID_LIST_NAME', 'List has an invalid name. List names should match a regular expression: ([^()"\'[:space:]=,]+)', ctx);
      const items = seq('items', ctx, false)!;
      const append = bool('append', ctx) ?? false;
      if (append) this.warn('LOAD_DEPRECATED_ITEM', "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.", ctx);
      const ov = overrides(ctx, new Set(['items']), new Set(['items']));
      if (append && (ov.append.size || ov.replace.size)) {
        throw new ItemError('LOAD_ERR_YAML_VALIDATE', "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.", ctx);
      }
      if (append || ov.append.has('items')) {
        const prev = this.lists.get(name);
        if (!prev) throw new ItemError('LOAD_ERR_VALIDATE', "List uses 'append' or 'override.items: append' but no list by that name already exists", ctx);
        for (const it of items) prev.items.push(it);
        prev.visibility = this.index++;
      } else this.define(this.lists, { name, items, index: 0, visibility: 0, ctx });
      return;
    }

    if (has('macro')) {
      const name = val('macro', { ...itemCtx, item: 'macro' })!;
      const ctx: Ctx = { ...itemCtx, item: `macro '${name}'` };
      if (!RGX_IDENTIFIER.test(name)) this.warn('LOAD_INVALID_MACRO_NAME', 'Macro has an invalid name. Macro names should match a regular expression: ([a-zA-Z]+[a-zA-Z0-9_]*)', ctx);
      const cond = val('condition', ctx)!;
      const condWhere = src.where(node('condition'));
      const append = bool('append', ctx) ?? false;
      if (append) this.warn('LOAD_DEPRECATED_ITEM', "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.", ctx);
      const ov = overrides(ctx, new Set(['condition']), new Set(['condition']));
      if (append && (ov.append.size || ov.replace.size)) {
        throw new ItemError('LOAD_ERR_YAML_VALIDATE', "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.", ctx);
      }
      if (append || ov.append.has('condition')) {
        const prev = this.macros.get(name);
        if (!prev) throw new ItemError('LOAD_ERR_VALIDATE', "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists", ctx);
        prev.cond += ` ${cond}`;
        prev.visibility = this.index++;
      } else this.define(this.macros, { name, cond, index: 0, visibility: 0, ctx, condWhere });
      return;
    }

    if (has('rule')) {
      const name = val('rule', { ...itemCtx, item: 'rule' })!;
      const ctx: Ctx = { ...itemCtx, item: `rule '${name}'` };
      const appendFlag = bool('append', ctx) ?? false;
      if (appendFlag) this.warn('LOAD_DEPRECATED_ITEM', "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.", ctx);
      const appendable = new Set(['condition', 'output', 'desc', 'tags', 'exceptions']);
      const replaceable = new Set(['condition', 'output', 'desc', 'priority', 'tags', 'exceptions', 'enabled', 'warn_evttypes', 'skip-if-unknown-filter']);
      const ov = overrides(ctx, appendable, replaceable);
      const hasOverrides = ov.append.size > 0 || ov.replace.size > 0;
      if (appendFlag && hasOverrides) {
        throw new ItemError('LOAD_ERR_YAML_VALIDATE', "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.", ctx);
      }
      const priority = (c: Ctx): number => {
        const s = val('priority', c)!;
        const p = parsePriority(s);
        if (p === undefined) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Invalid priority', { where: src.where(node('priority')), item: c.item });
        return p;
      };
      if (hasOverrides) {
        const expected = new Set([...appendable, ...replaceable].filter((k) => has(k)));
        const take = (set: Set<string>, kind: string, key: string): boolean => {
          if (!set.has(key)) return false;
          if (!expected.has(key)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', `An ${kind} override for '${key}' was specified but '${key}' is not defined`, ctx);
          expected.delete(key);
          return true;
        };
        const prev = this.rules.get(name);
        if (ov.append.size) {
          if (!prev) throw new ItemError('LOAD_ERR_VALIDATE', "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists", ctx);
          if (take(ov.append, 'append', 'condition')) prev.cond += ` ${val('condition', ctx)}`;
          if (take(ov.append, 'append', 'exceptions')) this.appendExceptions(prev, this.readExceptions(src, map, ctx, true));
          if (take(ov.append, 'append', 'output')) prev.output += ` ${val('output', ctx)}`;
          if (take(ov.append, 'append', 'desc')) prev.desc += ` ${val('desc', ctx)}`;
          if (take(ov.append, 'append', 'tags')) for (const t of seq('tags', ctx, true) ?? []) prev.tags.add(t);
        }
        if (ov.replace.size) {
          if (!prev) throw new ItemError('LOAD_ERR_VALIDATE', "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists", ctx);
          if (take(ov.replace, 'replace', 'condition')) {
            prev.cond = val('condition', ctx)!;
            prev.condWhere = src.where(node('condition'));
          }
          if (take(ov.replace, 'replace', 'exceptions')) prev.exceptions = this.readExceptions(src, map, ctx, false);
          if (take(ov.replace, 'replace', 'output')) {
            prev.output = val('output', ctx)!.trim();
            prev.outputWhere = src.where(node('output'));
          }
          if (take(ov.replace, 'replace', 'desc')) prev.desc = val('desc', ctx)!;
          if (take(ov.replace, 'replace', 'tags')) prev.tags = new Set(seq('tags', ctx, true) ?? []);
          if (take(ov.replace, 'replace', 'priority')) prev.priority = priority(ctx);
          if (take(ov.replace, 'replace', 'enabled')) prev.enabled = bool('enabled', ctx, false)!;
          if (take(ov.replace, 'replace', 'warn_evttypes')) bool('warn_evttypes', ctx, false);
          if (take(ov.replace, 'replace', 'skip-if-unknown-filter')) prev.skipIfUnknownFilter = bool('skip-if-unknown-filter', ctx, false)!;
        }
        for (const key of expected) {
          throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Unexpected key '${key}': no corresponding entry under 'override' is defined.`, { where: src.where(node(key)), item: ctx.item });
        }
        this.index++;
        return;
      }
      if (appendFlag) {
        const prev = this.rules.get(name);
        if (!prev) throw new ItemError('LOAD_ERR_VALIDATE', "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists", ctx);
        if (has('condition')) {
          const c = val('condition', ctx)!;
          prev.cond += ` ${c}`;
        }
        if (has('exceptions')) this.appendExceptions(prev, this.readExceptions(src, map, ctx, true));
        this.index++;
        return;
      }
      if (!has('condition') && !has('output') && !has('desc') && !has('priority')) {
        const enabled = bool('enabled', ctx, false)!;
        this.warn('LOAD_DEPRECATED_ITEM', "The standalone 'enabled' key usage is deprecated. The correct approach requires also a 'replace' entry under the 'override' key (i.e. 'enabled: replace').", ctx);
        const prev = this.rules.get(name);
        if (!prev) throw new ItemError('LOAD_ERR_VALIDATE', "Rule has 'enabled' key but no rule by that name already exists", ctx);
        prev.enabled = enabled;
        return;
      }
      const cond = val('condition', ctx)!;
      const output = val('output', ctx)!.trim();
      const desc = val('desc', ctx)!;
      const prio = priority(ctx);
      const source = val('source', ctx, true) ?? 'syscall';
      const rule: RuleInfo = {
        name,
        cond,
        output,
        desc,
        priority: prio,
        source,
        tags: new Set(seq('tags', ctx, true) ?? []),
        exceptions: [],
        enabled: bool('enabled', ctx) ?? true,
        skipIfUnknownFilter: bool('skip-if-unknown-filter', ctx) ?? false,
        index: 0,
        ctx,
        condWhere: src.where(node('condition')),
        outputWhere: src.where(node('output')),
      };
      bool('warn_evttypes', ctx);
      rule.exceptions = this.readExceptions(src, map, ctx, false);
      const prev = this.rules.get(name);
      if (prev && prev.source !== source) throw new ItemError('LOAD_ERR_VALIDATE', 'Rule has been re-defined with a different source', ctx);
      for (const ex of rule.exceptions) {
        if (!ex.fields) throw new ItemError('LOAD_ERR_VALIDATE', 'Rule exception item must have fields property with a list of fields', ex.ctx);
        this.validateException(ex, source);
      }
      this.define(this.rules, rule);
      return;
    }

    this.warn('LOAD_UNKNOWN_ITEM', 'Unknown top level item', itemCtx);
  }

  private define<T extends { name: string; index: number; visibility?: number }>(map: Map<string, T>, info: T): void {
    const id = this.index++;
    const prev = map.get(info.name);
    info.index = prev ? prev.index : id;
    if ('visibility' in info) info.visibility = id;
    map.set(info.name, info);
  }

  private readExceptions(src: Source, map: YAMLMap, parent: Ctx, append: boolean): ExceptionInfo[] {
    const exs = map.get('exceptions', true) as Node | undefined;
    if (exs === undefined || isNullNode(exs)) return [];
    const exsCtx: Ctx = { where: src.where(exs), item: parent.item };
    if (!isSeq(exs)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Rule exceptions must be a sequence', exsCtx);
    const out: ExceptionInfo[] = [];
    const names = new Set<string>();
    const entry = (n: Node | undefined, c: Ctx): ExEntry => {
      if (isScalar(n) && n.value !== null) {
        const item = scalarText(n);
        if (item === '') throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Value must be non-empty', c);
        return { isList: false, item, items: [] };
      }
      if (isSeq(n)) return { isList: true, item: '', items: n.items.map((x) => entry(x as Node, { where: src.where(x as Node), item: c.item })) };
      throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Value is not a scalar or a sequence', c);
    };
    for (const ex of exs.items) {
      const tmp: Ctx = { where: src.where(ex as Node), item: parent.item };
      if (!isMap(ex)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Rule exception must be a mapping', tmp);
      const nameNode = ex.get('name', true) as Node | undefined;
      if (nameNode === undefined) throw new ItemError('LOAD_ERR_YAML_VALIDATE', "Item has no mapping for key 'name'", tmp);
      if (isNullNode(nameNode) || !isScalar(nameNode) || scalarText(nameNode) === '') throw new ItemError('LOAD_ERR_YAML_VALIDATE', "Mapping for key 'name' is empty", tmp);
      const name = scalarText(nameNode);
      const ctx: Ctx = { where: tmp.where, item: `${parent.item} exception '${name}'` };
      if (names.has(name)) this.warn('LOAD_EXCEPTION_NAME_NOT_UNIQUE', `Multiple definitions of exception '${name}' in the same rule`, ctx);
      const info: ExceptionInfo = { name, values: [], ctx };
      const f = ex.get('fields', true) as Node | undefined;
      if (f !== undefined) info.fields = entry(f, { where: src.where(f), item: ctx.item });
      else if (!append) throw new ItemError('LOAD_ERR_YAML_VALIDATE', "Item has no mapping for key 'fields'", ctx);
      const c = ex.get('comps', true) as Node | undefined;
      if (c !== undefined) info.comps = entry(c, { where: src.where(c), item: ctx.item });
      const v = ex.get('values', true) as Node | undefined;
      if (v !== undefined) {
        if (!isSeq(v)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Rule exception values must be a sequence', { where: src.where(v), item: ctx.item });
        for (const x of v.items) info.values.push(entry(x as Node, { where: src.where(x as Node), item: ctx.item }));
      } else if (append) this.warn('LOAD_APPEND_NO_VALUES', 'Overriding/appending exception with no values', ctx);
      out.push(info);
      names.add(name);
    }
    return out;
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

  private appendExceptions(prev: RuleInfo, exs: ExceptionInfo[]): void {
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

  /** build_rule_exception_infos of Falco: `(cond) and not (...)` per exception, as text. */
  private exceptionCondition(r: RuleInfo): string {
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

  // ---- compiling ----

  private compile(): { set: RuleSet; resolver: Resolver } {
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
        const m = this.macros.get(e.at.name)!;
        return new ItemError('LOAD_ERR_COMPILE_CONDITION', e.message, { ...m.ctx, where: m.condWhere }, textPos);
      }
      if (e.at?.kind === 'list') return new ItemError('LOAD_ERR_VALIDATE', e.message, this.lists.get(e.at.name)!.ctx);
      return new ItemError('LOAD_ERR_COMPILE_CONDITION', e.message, { ...ctx, where }, textPos);
    };
    try {
      const macroDefs = new Map<string, MacroDef>();
      for (const m of this.macros.values()) macroDefs.set(m.name, { body: parse(m.cond, m.ctx, m.condWhere), index: m.index, visibility: m.visibility });
      const resolver = new Resolver(macroDefs, this.lists);
      for (const m of this.macros.values()) {
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
      const ordered = [...this.rules.values()].sort((a, b) => a.index - b.index);
      for (const r of ordered) {
        const base: RuleSummary = { name: r.name, priorityName: priorityName(r.priority), source: r.source, enabled: r.enabled, where: r.ctx.where };
        const text = r.exceptions.length ? this.exceptionCondition(r) : r.cond;
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
            this.warn('LOAD_UNKNOWN_FILTER', e.message, { ...r.ctx, where: r.condWhere }, e.pos ? { what: 'condition', pos: e.pos } : undefined);
            summary.push({ ...base, skipped: 'unknown field (skip-if-unknown-filter)' });
            continue;
          }
          throw new ItemError('LOAD_ERR_COMPILE_CONDITION', e.message, { ...r.ctx, where: r.condWhere }, e.pos ? { what: 'condition', pos: e.pos } : undefined);
        }
        const node = planned.node;
        for (const w of planned.warnings) {
          if (this.warningsCapped) break;
          this.warn('LOAD_COMPILE_CONDITION', w.message, { ...r.ctx, where: r.condWhere }, w.pos ? { what: 'condition', pos: w.pos } : undefined);
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
      return { set: { program: prog, rules, summary, otherSources, messages: this.messages, files: [...this.files], stats }, resolver };
    } catch (e) {
      if (e instanceof ItemError) this.fail({ severity: 'error', code: e.code, message: e.message, where: e.ctx.where, item: e.ctx.item, textPos: e.textPos });
      throw e;
    }
  }
}

/** Loads rule files in order and returns the compiled set; throws RuleLoadError. */
export function loadRuleFiles(files: ReadonlyArray<{ path: string; name?: string }>): RuleSet {
  const loader = new RuleLoader();
  for (const f of files) loader.loadFile(f.path, f.name ?? f.path);
  return loader.result();
}

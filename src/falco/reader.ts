/**
 * The reader (Falco's rule_loader_reader.cpp): decodes a rule file's YAML documents item by
 * item — `rule`, `macro`, `list`, `required_engine_version`, `required_plugin_versions` — with
 * Falco's checks and messages, and hands each to the collector. Null items are skipped, other
 * items are warned about; `append: true` and `override: {key: append|replace}` extend or
 * replace single keys of an existing item.
 */
import { LineCounter, isMap, isScalar, isSeq, parseAllDocuments, type Node, type YAMLMap } from 'yaml';
import type { Collector } from './collector.js';
import { ENGINE_VERSION, ItemError, PLUGIN_VERSIONS, type Ctx, type ExEntry, type ExceptionInfo, type RuleInfo, type Where } from './load-info.js';
import { parsePriority } from './priority.js';

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

/** semver `x.y.z`; null when invalid. */
function semver(s: string): [number, number, number] | null {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(s.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

/** sinsp_version::compatible_with: same major, and at least the required minor.patch. */
function compatible(have: [number, number, number], need: [number, number, number]): boolean {
  return have[0] === need[0] && (have[1] > need[1] || (have[1] === need[1] && have[2] >= need[2]));
}

const DEPRECATED_APPEND = "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.";
const APPEND_WITH_OVERRIDE = "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.";
const RULE_APPENDABLE: ReadonlySet<string> = new Set(['condition', 'output', 'desc', 'tags', 'exceptions']);
const RULE_REPLACEABLE: ReadonlySet<string> = new Set(['condition', 'output', 'desc', 'priority', 'tags', 'exceptions', 'enabled', 'warn_evttypes', 'skip-if-unknown-filter']);

// ---- files ----------------------------------------------------------------------------------

/** Reads one rule file's content into the collector; throws RuleLoadError at the first error. */
export function readRuleFile(text: string, name: string, c: Collector): void {
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
      c.log.fail({ severity: 'error', code: 'LOAD_ERR_YAML_PARSE', message, where: { file: name, line, col } });
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
        readItem(src, item as Node, c);
      }
    }
  } catch (e) {
    c.log.failItem(e);
  }
}

function readItem(src: Source, item: Node, c: Collector): void {
  const itemCtx: Ctx = { where: src.where(item) };
  if (!isMap(item)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Unexpected element type. Each element should be a yaml associative array.', itemCtx);
  const r = new ItemReader(src, item as YAMLMap, itemCtx, c);
  if (r.has('required_engine_version')) readEngineVersion(r);
  else if (r.has('required_plugin_versions')) readPluginVersions(r);
  else if (r.has('list')) readList(r);
  else if (r.has('macro')) readMacro(r);
  else if (r.has('rule')) readRule(r);
  else c.log.warn('LOAD_UNKNOWN_ITEM', 'Unknown top level item', itemCtx);
}

// ---- one item's keys ------------------------------------------------------------------------

/** One item's mapping and the key decoders every item kind uses. */
class ItemReader {
  constructor(
    readonly src: Source,
    readonly map: YAMLMap,
    /** The item's position (no name yet). */
    readonly ctx: Ctx,
    readonly c: Collector,
  ) {}

  has(k: string): boolean {
    return this.map.has(k);
  }

  node(k: string): Node | undefined {
    return this.map.get(k, true) as Node | undefined;
  }

  warn(code: string, message: string, ctx: Ctx): void {
    this.c.log.warn(code, message, ctx);
  }

  /** A non-empty scalar; a missing key is an error unless `optional`. */
  val(k: string, ctx: Ctx, optional = false): string | undefined {
    if (!this.has(k)) {
      if (optional) return undefined;
      throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Item has no mapping for key '${k}'`, ctx);
    }
    const n = this.node(k);
    if (isNullNode(n)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Mapping for key '${k}' is empty`, ctx);
    const vctx: Ctx = { where: this.src.where(n), item: ctx.item };
    if (!isScalar(n)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Value is not a scalar value', vctx);
    const s = scalarText(n);
    if (s === '') throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Value must be non-empty', vctx);
    return s;
  }

  /** A YAML 1.1 boolean scalar. */
  bool(k: string, ctx: Ctx, optional = true): boolean | undefined {
    const s = this.val(k, ctx, optional);
    if (s === undefined) return undefined;
    if (YAML_TRUE.has(s)) return true;
    if (YAML_FALSE.has(s)) return false;
    throw new ItemError('LOAD_ERR_YAML_VALIDATE', "Can't decode YAML scalar value", { where: this.src.where(this.node(k)), item: ctx.item });
  }

  /** A sequence of scalars. */
  seq(k: string, ctx: Ctx, optional: boolean): string[] | undefined {
    if (!this.has(k)) {
      if (optional) return undefined;
      throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Item has no mapping for key '${k}'`, ctx);
    }
    const n = this.node(k);
    const vctx: Ctx = { where: this.src.where(n), item: ctx.item };
    if (!isSeq(n)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Value is not a sequence', vctx);
    return n.items.map((x) => {
      if (!isScalar(x) || x.value === null) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'sequence value is not scalar', { where: this.src.where(x as Node), item: ctx.item });
      return scalarText(x);
    });
  }

  /** The `override` mapping: which keys are appended, which replaced. */
  overrides(ctx: Ctx, appendable: ReadonlySet<string>, replaceable: ReadonlySet<string>): { append: Set<string>; replace: Set<string> } {
    const append = new Set<string>();
    const replace = new Set<string>();
    if (!this.has('override')) return { append, replace };
    const o = this.node('override');
    if (!isMap(o)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', "Value of 'override' must be a mapping", { where: this.src.where(o), item: ctx.item });
    for (const pair of o.items) {
      const key = scalarText(pair.key as Node);
      const op = isScalar(pair.value) ? scalarText(pair.value) : '';
      const kctx: Ctx = { where: this.src.where(pair.key as Node), item: ctx.item };
      if (op === 'append') {
        if (!appendable.has(key)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Key '${key}' cannot be appended to, use 'replace' instead`, kctx);
        append.add(key);
      } else if (op === 'replace') {
        if (!replaceable.has(key)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Key '${key}' cannot be replaced`, kctx);
        replace.add(key);
      } else {
        const allowed = `${appendable.has(key) ? 'append ' : ''}${replaceable.has(key) ? 'replace ' : ''}`;
        throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Invalid override operation for key '${key}': '${op}'. Allowed values are: ${allowed}`, {
          where: this.src.where(pair.value as Node),
          item: ctx.item,
        });
      }
    }
    return { append, replace };
  }

  /** A rule's `priority`, as a number. */
  priority(ctx: Ctx): number {
    const s = this.val('priority', ctx)!;
    const p = parsePriority(s);
    if (p === undefined) throw new ItemError('LOAD_ERR_YAML_VALIDATE', 'Invalid priority', { where: this.src.where(this.node('priority')), item: ctx.item });
    return p;
  }

  /** A rule's `exceptions`; with `append`, an exception may name only values. */
  exceptions(parent: Ctx, append: boolean): ExceptionInfo[] {
    const src = this.src;
    const exs = this.node('exceptions');
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
}

// ---- item kinds -----------------------------------------------------------------------------

function readEngineVersion(r: ItemReader): void {
  const ctx: Ctx = { ...r.ctx, item: 'required_engine_version' };
  const s = r.val('required_engine_version', ctx)!;
  let need: [number, number, number] | null;
  if (/^\d+$/.test(s)) need = [0, Number(s), 0];
  else {
    need = semver(s);
    if (!need) throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Unable to parse engine version '${s}' as a semver string. Expected "x.y.z" semver format.`, ctx);
  }
  if (!compatible(semver(ENGINE_VERSION)!, need)) {
    throw new ItemError('LOAD_ERR_VALIDATE', `Rules require engine version ${need.join('.')}, but engine version is ${ENGINE_VERSION}`, ctx);
  }
}

function readPluginVersions(r: ItemReader): void {
  const src = r.src;
  const n = r.node('required_plugin_versions');
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
      const req = { name: scalarText(name), version: scalarText(version), where: c.where };
      if (!semver(req.version)) throw new ItemError('LOAD_ERR_VALIDATE', `Invalid required version '${req.version}' for plugin '${req.name}'`, c);
      if (reqs.some((x) => x.name === req.name)) throw new ItemError('LOAD_ERR_VALIDATE', `Defined multiple alternative version requirements for plugin '${req.name}'`, c);
      reqs.push(req);
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
    const known = reqs.filter((q) => PLUGIN_VERSIONS[q.name] !== undefined);
    if (known.length === 0) {
      r.warn('LOAD_UNKNOWN_PLUGIN', `Plugin '${reqs[0]!.name}' is required by this rules file but logwarden has no such plugin; requirement ignored`, pctx);
      continue;
    }
    if (!known.some((q) => compatible(semver(PLUGIN_VERSIONS[q.name]!)!, semver(q.version)!))) {
      const q = known[0]!;
      throw new ItemError('LOAD_ERR_VALIDATE', `Plugin '${q.name}' version '${PLUGIN_VERSIONS[q.name]}' is not compatible with required plugin version '${q.version}'`, pctx);
    }
  }
}

function readList(r: ItemReader): void {
  const name = r.val('list', { ...r.ctx, item: 'list' })!;
  const ctx: Ctx = { ...r.ctx, item: `list '${name}'` };
  if (!RGX_BARESTR.test(name)) r.warn('LOAD_INVALID_LIST_NAME', 'List has an invalid name. List names should match a regular expression: ([^()"\'[:space:]=,]+)', ctx);
  const items = r.seq('items', ctx, false)!;
  const append = r.bool('append', ctx) ?? false;
  if (append) r.warn('LOAD_DEPRECATED_ITEM', DEPRECATED_APPEND, ctx);
  const ov = r.overrides(ctx, new Set(['items']), new Set(['items']));
  if (append && (ov.append.size || ov.replace.size)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', APPEND_WITH_OVERRIDE, ctx);
  if (append || ov.append.has('items')) r.c.appendList(name, items, ctx);
  else r.c.defineList({ name, items, index: 0, visibility: 0, ctx });
}

function readMacro(r: ItemReader): void {
  const name = r.val('macro', { ...r.ctx, item: 'macro' })!;
  const ctx: Ctx = { ...r.ctx, item: `macro '${name}'` };
  if (!RGX_IDENTIFIER.test(name)) r.warn('LOAD_INVALID_MACRO_NAME', 'Macro has an invalid name. Macro names should match a regular expression: ([a-zA-Z]+[a-zA-Z0-9_]*)', ctx);
  const cond = r.val('condition', ctx)!;
  const condWhere = r.src.where(r.node('condition'));
  const append = r.bool('append', ctx) ?? false;
  if (append) r.warn('LOAD_DEPRECATED_ITEM', DEPRECATED_APPEND, ctx);
  const ov = r.overrides(ctx, new Set(['condition']), new Set(['condition']));
  if (append && (ov.append.size || ov.replace.size)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', APPEND_WITH_OVERRIDE, ctx);
  if (append || ov.append.has('condition')) r.c.appendMacro(name, cond, ctx);
  else r.c.defineMacro({ name, cond, index: 0, visibility: 0, ctx, condWhere });
}

function readRule(r: ItemReader): void {
  const name = r.val('rule', { ...r.ctx, item: 'rule' })!;
  const ctx: Ctx = { ...r.ctx, item: `rule '${name}'` };
  const appendFlag = r.bool('append', ctx) ?? false;
  if (appendFlag) r.warn('LOAD_DEPRECATED_ITEM', DEPRECATED_APPEND, ctx);
  const ov = r.overrides(ctx, RULE_APPENDABLE, RULE_REPLACEABLE);
  const hasOverrides = ov.append.size > 0 || ov.replace.size > 0;
  if (appendFlag && hasOverrides) throw new ItemError('LOAD_ERR_YAML_VALIDATE', APPEND_WITH_OVERRIDE, ctx);
  if (hasOverrides) overrideRule(r, name, ctx, ov);
  else if (appendFlag) appendRule(r, name, ctx);
  else if (!r.has('condition') && !r.has('output') && !r.has('desc') && !r.has('priority')) enableRule(r, name, ctx);
  else defineRule(r, name, ctx);
}

/** `override: {key: append|replace}` on an existing rule; every overridden key must be present, and only those. */
function overrideRule(r: ItemReader, name: string, ctx: Ctx, ov: { append: Set<string>; replace: Set<string> }): void {
  const expected = new Set([...RULE_APPENDABLE, ...RULE_REPLACEABLE].filter((k) => r.has(k)));
  const take = (set: Set<string>, kind: string, key: string): boolean => {
    if (!set.has(key)) return false;
    if (!expected.has(key)) throw new ItemError('LOAD_ERR_YAML_VALIDATE', `An ${kind} override for '${key}' was specified but '${key}' is not defined`, ctx);
    expected.delete(key);
    return true;
  };
  if (ov.append.size) {
    const prev = r.c.ruleToAppend(name, ctx);
    if (take(ov.append, 'append', 'condition')) prev.cond += ` ${r.val('condition', ctx)}`;
    if (take(ov.append, 'append', 'exceptions')) r.c.appendExceptions(prev, r.exceptions(ctx, true));
    if (take(ov.append, 'append', 'output')) prev.output += ` ${r.val('output', ctx)}`;
    if (take(ov.append, 'append', 'desc')) prev.desc += ` ${r.val('desc', ctx)}`;
    if (take(ov.append, 'append', 'tags')) for (const t of r.seq('tags', ctx, true) ?? []) prev.tags.add(t);
  }
  if (ov.replace.size) {
    const prev = r.c.ruleToReplace(name, ctx);
    if (take(ov.replace, 'replace', 'condition')) {
      prev.cond = r.val('condition', ctx)!;
      prev.condWhere = r.src.where(r.node('condition'));
    }
    if (take(ov.replace, 'replace', 'exceptions')) prev.exceptions = r.exceptions(ctx, false);
    if (take(ov.replace, 'replace', 'output')) {
      prev.output = r.val('output', ctx)!.trim();
      prev.outputWhere = r.src.where(r.node('output'));
    }
    if (take(ov.replace, 'replace', 'desc')) prev.desc = r.val('desc', ctx)!;
    if (take(ov.replace, 'replace', 'tags')) prev.tags = new Set(r.seq('tags', ctx, true) ?? []);
    if (take(ov.replace, 'replace', 'priority')) prev.priority = r.priority(ctx);
    if (take(ov.replace, 'replace', 'enabled')) prev.enabled = r.bool('enabled', ctx, false)!;
    if (take(ov.replace, 'replace', 'warn_evttypes')) r.bool('warn_evttypes', ctx, false);
    if (take(ov.replace, 'replace', 'skip-if-unknown-filter')) prev.skipIfUnknownFilter = r.bool('skip-if-unknown-filter', ctx, false)!;
  }
  for (const key of expected) {
    throw new ItemError('LOAD_ERR_YAML_VALIDATE', `Unexpected key '${key}': no corresponding entry under 'override' is defined.`, { where: r.src.where(r.node(key)), item: ctx.item });
  }
  r.c.skipPosition();
}

/** The deprecated `append: true` on a rule: extends its condition and exceptions. */
function appendRule(r: ItemReader, name: string, ctx: Ctx): void {
  const prev = r.c.ruleToAppend(name, ctx);
  if (r.has('condition')) {
    const c = r.val('condition', ctx)!;
    prev.cond += ` ${c}`;
  }
  if (r.has('exceptions')) r.c.appendExceptions(prev, r.exceptions(ctx, true));
  r.c.skipPosition();
}

/** The deprecated standalone `enabled` item. */
function enableRule(r: ItemReader, name: string, ctx: Ctx): void {
  const enabled = r.bool('enabled', ctx, false)!;
  r.warn('LOAD_DEPRECATED_ITEM', "The standalone 'enabled' key usage is deprecated. The correct approach requires also a 'replace' entry under the 'override' key (i.e. 'enabled: replace').", ctx);
  r.c.enableRule(name, enabled, ctx);
}

function defineRule(r: ItemReader, name: string, ctx: Ctx): void {
  const cond = r.val('condition', ctx)!;
  const output = r.val('output', ctx)!.trim();
  const desc = r.val('desc', ctx)!;
  const prio = r.priority(ctx);
  const source = r.val('source', ctx, true) ?? 'syscall';
  const rule: RuleInfo = {
    name,
    cond,
    output,
    desc,
    priority: prio,
    source,
    tags: new Set(r.seq('tags', ctx, true) ?? []),
    exceptions: [],
    enabled: r.bool('enabled', ctx) ?? true,
    skipIfUnknownFilter: r.bool('skip-if-unknown-filter', ctx) ?? false,
    index: 0,
    ctx,
    condWhere: r.src.where(r.node('condition')),
    outputWhere: r.src.where(r.node('output')),
  };
  r.bool('warn_evttypes', ctx);
  rule.exceptions = r.exceptions(ctx, false);
  r.c.defineRule(rule);
}

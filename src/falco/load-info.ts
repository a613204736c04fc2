/**
 * What the rule-file reader, collector and compiler share (Falco's rule_loader.h): positions and
 * load messages, the items as read from YAML (lists, macros, rules with their exceptions), and
 * the compiled rule set the loader returns.
 */
import type { PlanNode } from './compile.js';
import type { Program } from './program.js';
import type { CompiledOutput } from './output.js';
import type { Pos } from './parser.js';

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
    super(
      messages
        .filter((m) => m.severity === 'error')
        .map(formatMessage)
        .join('\n'),
    );
    this.name = 'RuleLoadError';
  }
  get first(): LoadMessage {
    return this.messages.find((m) => m.severity === 'error')!;
  }
}

/** Where an item (or one of its keys) is, and which item it is. */
export interface Ctx {
  where: Where;
  item?: string;
}

/** An error in one item; the loader turns it into the load's error message. */
export class ItemError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly ctx: Ctx,
    readonly textPos?: LoadMessage['textPos'],
  ) {
    super(message);
  }
}

/** The messages of one load: warnings deduplicated and capped at MAX_WARNINGS, then the first error. */
export class LoadLog {
  readonly messages: LoadMessage[] = [];
  private readonly seen = new Set<string>();
  private cappedFlag = false;

  /** Whether warnings past MAX_WARNINGS are being left out. */
  get capped(): boolean {
    return this.cappedFlag;
  }

  warn(code: string, message: string, ctx: Ctx, textPos?: LoadMessage['textPos']): void {
    if (this.seen.size >= MAX_WARNINGS) {
      if (!this.cappedFlag) {
        this.cappedFlag = true;
        this.messages.push({ severity: 'warning', code: 'LOAD_TOO_MANY_WARNINGS', message: `more than ${MAX_WARNINGS} warnings; further warnings are not reported`, where: ctx.where, item: ctx.item });
      }
      return;
    }
    const m: LoadMessage = { severity: 'warning', code, message, where: ctx.where, item: ctx.item, textPos };
    const key = formatMessage(m);
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.messages.push(m);
  }

  fail(m: LoadMessage): never {
    this.messages.push(m);
    throw new RuleLoadError(this.messages);
  }

  /** Rethrows `e` as the load's RuleLoadError when it is an ItemError. */
  failItem(e: unknown): never {
    if (e instanceof ItemError) this.fail({ severity: 'error', code: e.code, message: e.message, where: e.ctx.where, item: e.ctx.item, textPos: e.textPos });
    throw e;
  }
}

export interface ExEntry {
  isList: boolean;
  item: string;
  items: ExEntry[];
}

export interface ExceptionInfo {
  name: string;
  fields?: ExEntry;
  comps?: ExEntry;
  values: ExEntry[];
  ctx: Ctx;
}

export interface ListInfo {
  name: string;
  items: string[];
  index: number;
  visibility: number;
  ctx: Ctx;
}

export interface MacroInfo {
  name: string;
  cond: string;
  index: number;
  visibility: number;
  ctx: Ctx;
  condWhere: Where;
}

export interface RuleInfo {
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

/**
 * `helm template` for the Go-template subset that deploy/helm/logwarden uses, so that tests
 * can render the chart without a helm binary (neither npm nor Debian ships one).
 *
 * Go text/template: `{{ }}` with `{{-`/`-}}` trimming and comments; if / else if / else,
 * range (lists, maps in key order, `$k, $v :=`), with, define, `$var :=` / `=`, pipelines,
 * parenthesised arguments, field chains on `.`, `$` and variables; a field of a missing value
 * is an error, as in Go ("nil pointer evaluating").
 * Helm / sprig functions: include, toYaml, nindent, indent, quote, default, required, fail,
 * b64enc, sha256sum, eq, ne, gt, int, not, and, or, printf, print, trunc, trimSuffix, contains,
 * and .Files.Get; .Values (chart values deep-merged with overrides), .Release, .Chart.
 * Anything else is an error naming the template, so the chart cannot drift outside the subset
 * unnoticed.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { parseManifests, type K8sObject } from './kustomize.js';

type Value = unknown;

// ---------------------------------------------------------------------------------------------
// Lexing and parsing

type Node =
  | { t: 'text'; text: string }
  | { t: 'action'; pipe: Pipe }
  | { t: 'assign'; name: string; pipe: Pipe; declare: boolean }
  | { t: 'if'; branches: { cond: Pipe; body: Node[] }[]; else?: Node[] }
  | { t: 'range'; vars: string[]; pipe: Pipe; body: Node[]; else?: Node[] }
  | { t: 'with'; pipe: Pipe; body: Node[]; else?: Node[] }
  | { t: 'define'; name: string; body: Node[] };

type Pipe = Cmd[];
type Cmd = Operand[];
type Operand = { o: 'field'; base: 'dot' | 'root' | string; path: string[] } | { o: 'lit'; v: Value } | { o: 'fn'; name: string } | { o: 'pipe'; pipe: Pipe };

interface Token {
  kind: 'text' | 'action';
  text: string;
}

function lex(src: string, file: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let trimNext = false;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    let text = open < 0 ? src.slice(i) : src.slice(i, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    if (open < 0) {
      if (text) out.push({ kind: 'text', text });
      break;
    }
    let body = src.slice(open + 2);
    const trimLeft = /^-\s/.test(body);
    if (trimLeft) text = text.replace(/\s+$/, '');
    if (text) out.push({ kind: 'text', text });
    const close = findClose(src, open + 2, file);
    body = src.slice(open + 2, close);
    const trimRight = /\s-$/.test(body);
    if (trimLeft) body = body.slice(1);
    if (trimRight) body = body.slice(0, -1);
    body = body.trim();
    if (!(body.startsWith('/*') && body.endsWith('*/'))) out.push({ kind: 'action', text: body });
    trimNext = trimRight;
    i = close + 2;
  }
  return out;
}

/** The `}}` closing an action opened at `from`, skipping string literals and comments. */
function findClose(src: string, from: number, file: string): number {
  let i = from;
  if (src.slice(i).replace(/^-\s*/, '').startsWith('/*')) {
    const end = src.indexOf('*/', i);
    const close = src.indexOf('}}', end);
    if (end < 0 || close < 0) throw new Error(`${file}: unclosed comment`);
    return close;
  }
  while (i < src.length) {
    const c = src[i];
    if (c === '"' || c === '`') {
      const q = c;
      i++;
      while (i < src.length && src[i] !== q) i += src[i] === '\\' && q === '"' ? 2 : 1;
    } else if (c === '}' && src[i + 1] === '}') {
      return i;
    }
    i++;
  }
  throw new Error(`${file}: unclosed action`);
}

/** Splits an action into words: strings, parenthesised groups, `|`, `:=`, `=`, `,`, and words. */
function words(s: string, where: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"' || c === '`') {
      let j = i + 1;
      while (j < s.length && s[j] !== c) j += s[j] === '\\' && c === '"' ? 2 : 1;
      out.push(s.slice(i, j + 1));
      i = j + 1;
    } else if (c === '(') {
      let depth = 0;
      let j = i;
      for (; j < s.length; j++) {
        if (s[j] === '"') {
          j++;
          while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
        } else if (s[j] === '(') depth++;
        else if (s[j] === ')' && --depth === 0) break;
      }
      if (j >= s.length) throw new Error(`${where}: unbalanced '(' in {{ ${s} }}`);
      out.push(s.slice(i, j + 1));
      i = j + 1;
    } else if (c === '|' || c === ',') {
      out.push(c);
      i++;
    } else if (s.startsWith(':=', i)) {
      out.push(':=');
      i += 2;
    } else if (c === '=') {
      out.push('=');
      i++;
    } else {
      let j = i;
      while (j < s.length && !/[\s|,()"`=]/.test(s[j]!) && !s.startsWith(':=', j)) j++;
      out.push(s.slice(i, j));
      i = j;
    }
  }
  return out;
}

function parsePipe(ws: string[], where: string): Pipe {
  const cmds: Cmd[] = [[]];
  for (const w of ws) {
    if (w === '|') cmds.push([]);
    else cmds.at(-1)!.push(parseOperand(w, where));
  }
  if (cmds.some((c) => c.length === 0)) throw new Error(`${where}: empty command in pipeline`);
  return cmds;
}

function parseOperand(w: string, where: string): Operand {
  if (w.startsWith('(')) return { o: 'pipe', pipe: parsePipe(words(w.slice(1, -1), where), where) };
  if (w.startsWith('"')) return { o: 'lit', v: JSON.parse(w) };
  if (w.startsWith('`')) return { o: 'lit', v: w.slice(1, -1) };
  if (/^-?\d+(\.\d+)?$/.test(w)) return { o: 'lit', v: Number(w) };
  if (w === 'true' || w === 'false') return { o: 'lit', v: w === 'true' };
  if (w === 'nil') return { o: 'lit', v: null };
  if (w === '.') return { o: 'field', base: 'dot', path: [] };
  if (w.startsWith('.')) return { o: 'field', base: 'dot', path: w.slice(1).split('.') };
  if (w.startsWith('$')) {
    const [name, ...path] = w.split('.');
    return { o: 'field', base: name === '$' ? 'root' : name!, path };
  }
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(w)) return { o: 'fn', name: w };
  throw new Error(`${where}: cannot parse '${w}'`);
}

function parseTemplate(src: string, file: string): Node[] {
  const tokens = lex(src, file);
  let pos = 0;
  const where = () => `${file} (action ${pos})`;

  function block(stop: string[]): { nodes: Node[]; end: string; rest: string[] } {
    const nodes: Node[] = [];
    while (pos < tokens.length) {
      const tok = tokens[pos++]!;
      if (tok.kind === 'text') {
        nodes.push({ t: 'text', text: tok.text });
        continue;
      }
      const ws = words(tok.text, where());
      const head = ws[0];
      if (head && stop.includes(head)) return { nodes, end: head, rest: ws.slice(1) };
      if (head === 'if') nodes.push(ifNode(ws.slice(1)));
      else if (head === 'range') nodes.push(rangeNode(ws.slice(1)));
      else if (head === 'with') {
        const body = block(['else', 'end']);
        const node: Node = { t: 'with', pipe: parsePipe(ws.slice(1), where()), body: body.nodes };
        if (body.end === 'else') node.else = block(['end']).nodes;
        nodes.push(node);
      } else if (head === 'define') {
        const name = JSON.parse(ws[1]!) as string;
        nodes.push({ t: 'define', name, body: block(['end']).nodes });
      } else if (head === 'end' || head === 'else') {
        throw new Error(`${where()}: unexpected {{ ${head} }}`);
      } else if (head === 'template' || head === 'block' || head === 'break' || head === 'continue') {
        throw new Error(`${where()}: {{ ${head} }} is outside the supported subset`);
      } else if (ws[0]?.startsWith('$') && (ws[1] === ':=' || ws[1] === '=')) {
        nodes.push({ t: 'assign', name: ws[0], declare: ws[1] === ':=', pipe: parsePipe(ws.slice(2), where()) });
      } else {
        nodes.push({ t: 'action', pipe: parsePipe(ws, where()) });
      }
    }
    if (stop.length) throw new Error(`${file}: missing {{ end }}`);
    return { nodes, end: '', rest: [] };
  }

  function ifNode(cond: string[]): Node {
    const branches: { cond: Pipe; body: Node[] }[] = [];
    let c = cond;
    for (;;) {
      const b = block(['else', 'end']);
      branches.push({ cond: parsePipe(c, where()), body: b.nodes });
      if (b.end === 'end') return { t: 'if', branches };
      if (b.rest[0] === 'if') {
        c = b.rest.slice(1);
        continue;
      }
      return { t: 'if', branches, else: block(['end']).nodes };
    }
  }

  function rangeNode(ws: string[]): Node {
    let vars: string[] = [];
    const assign = ws.indexOf(':=');
    if (assign >= 0) {
      vars = ws.slice(0, assign).filter((w) => w !== ',');
      ws = ws.slice(assign + 1);
    }
    const body = block(['else', 'end']);
    const node: Node = { t: 'range', vars, pipe: parsePipe(ws, where()), body: body.nodes };
    if (body.end === 'else') node.else = block(['end']).nodes;
    return node;
  }

  return block([]).nodes;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

class Scope {
  private readonly vars = new Map<string, Value>();
  constructor(private readonly parent?: Scope) {}
  declare(name: string, v: Value) {
    this.vars.set(name, v);
  }
  assign(name: string, v: Value): void {
    if (this.vars.has(name)) this.vars.set(name, v);
    else if (this.parent) this.parent.assign(name, v);
    else throw new Error(`undefined variable ${name}`);
  }
  get(name: string): Value {
    if (this.vars.has(name)) return this.vars.get(name);
    if (this.parent) return this.parent.get(name);
    throw new Error(`undefined variable ${name}`);
  }
}

function truthy(v: Value): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

function isEmpty(v: Value): boolean {
  return !truthy(v);
}

/** Go's fmt.Sprint of a template value; missing values print as Helm prints them: nothing. */
function show(v: Value): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new Error(`cannot print a ${Array.isArray(v) ? 'list' : 'map'} directly (use toYaml)`);
}

function toYaml(v: Value): string {
  if (v === null || v === undefined) return 'null';
  return stringify(v, { lineWidth: 0 }).replace(/\n$/, '');
}

function indentText(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return pad + s.replaceAll('\n', `\n${pad}`);
}

function goPrintf(fmt: string, args: Value[]): string {
  let i = 0;
  return fmt.replace(/%[sdvq%]/g, (m) => {
    if (m === '%%') return '%';
    const a = args[i++];
    if (m === '%q') return JSON.stringify(show(a));
    return show(a);
  });
}

interface Ctx {
  defines: Map<string, Node[]>;
  files: (path: string) => string;
  file: string;
}

function render(nodes: Node[], dot: Value, scope: Scope, ctx: Ctx): string {
  let out = '';
  for (const n of nodes) {
    switch (n.t) {
      case 'text':
        out += n.text;
        break;
      case 'define':
        break;
      case 'action':
        out += show(evalPipe(n.pipe, dot, scope, ctx));
        break;
      case 'assign': {
        const v = evalPipe(n.pipe, dot, scope, ctx);
        if (n.declare) scope.declare(n.name, v);
        else scope.assign(n.name, v);
        break;
      }
      case 'if': {
        const branch = n.branches.find((b) => truthy(evalPipe(b.cond, dot, scope, ctx)));
        const body = branch ? branch.body : n.else;
        if (body) out += render(body, dot, new Scope(scope), ctx);
        break;
      }
      case 'with': {
        const v = evalPipe(n.pipe, dot, scope, ctx);
        if (truthy(v)) out += render(n.body, v, new Scope(scope), ctx);
        else if (n.else) out += render(n.else, dot, new Scope(scope), ctx);
        break;
      }
      case 'range': {
        const v = evalPipe(n.pipe, dot, scope, ctx);
        const entries: [Value, Value][] = Array.isArray(v)
          ? v.map((item, i) => [i, item])
          : v && typeof v === 'object'
            ? Object.keys(v)
                .sort()
                .map((k) => [k, (v as Record<string, Value>)[k]])
            : [];
        if (v != null && typeof v !== 'object') throw new Error(`${ctx.file}: range over a ${typeof v}`);
        if (entries.length === 0) {
          if (n.else) out += render(n.else, dot, new Scope(scope), ctx);
          break;
        }
        for (const [k, item] of entries) {
          const s = new Scope(scope);
          if (n.vars.length === 1) s.declare(n.vars[0]!, item);
          if (n.vars.length === 2) {
            s.declare(n.vars[0]!, k);
            s.declare(n.vars[1]!, item);
          }
          out += render(n.body, item, s, ctx);
        }
        break;
      }
    }
  }
  return out;
}

function field(base: Value, path: string[], desc: string, ctx: Ctx): Value {
  let v = base;
  let walked = desc;
  for (const p of path) {
    if (v === null || v === undefined) throw new Error(`${ctx.file}: nil pointer evaluating ${walked}.${p}`);
    if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${ctx.file}: can't evaluate field ${p} in ${walked}`);
    v = Object.hasOwn(v, p) ? (v as Record<string, Value>)[p] : undefined;
    walked += `.${p}`;
  }
  return v;
}

function evalOperand(op: Operand, dot: Value, scope: Scope, ctx: Ctx): Value {
  switch (op.o) {
    case 'lit':
      return op.v;
    case 'pipe':
      return evalPipe(op.pipe, dot, scope, ctx);
    case 'field':
      if (op.base === 'dot') return field(dot, op.path, '.', ctx);
      if (op.base === 'root') return field(scope.get('$'), op.path, '$', ctx);
      return field(scope.get(op.base), op.path, op.base, ctx);
    case 'fn':
      return callFn(op.name, [], dot, scope, ctx);
  }
}

function evalPipe(pipe: Pipe, dot: Value, scope: Scope, ctx: Ctx): Value {
  let prev: Value[] = [];
  for (const cmd of pipe) {
    const [head, ...rest] = cmd;
    if (head!.o === 'fn') {
      const args = rest.map((a) => evalOperand(a, dot, scope, ctx));
      prev = [callFn(head!.name, [...args, ...prev], dot, scope, ctx)];
    } else if (head!.o === 'field' && head!.path.at(-1) === 'Get' && head!.path.at(-2) === 'Files') {
      const args = rest.map((a) => evalOperand(a, dot, scope, ctx));
      prev = [ctx.files(String([...args, ...prev][0]))];
    } else {
      if (rest.length || prev.length) throw new Error(`${ctx.file}: a value cannot take arguments`);
      prev = [evalOperand(head!, dot, scope, ctx)];
    }
  }
  return prev[0];
}

function callFn(name: string, args: Value[], _dot: Value, _scope: Scope, ctx: Ctx): Value {
  const str = (v: Value) => show(v);
  switch (name) {
    case 'include': {
      const body = ctx.defines.get(String(args[0]));
      if (!body) throw new Error(`${ctx.file}: no template "${String(args[0])}"`);
      // Go: `$` is the data the template was invoked with.
      const s = new Scope();
      s.declare('$', args[1]);
      return render(body, args[1], s, ctx);
    }
    case 'toYaml':
      return toYaml(args[0]);
    case 'nindent':
      return `\n${indentText(Number(args[0]), str(args[1]))}`;
    case 'indent':
      return indentText(Number(args[0]), str(args[1]));
    case 'quote':
      return args
        .filter((a) => a !== null && a !== undefined)
        .map((a) => JSON.stringify(str(a)))
        .join(' ');
    case 'default':
      return isEmpty(args[1]) ? args[0] : args[1];
    case 'required':
      if (args[1] === null || args[1] === undefined || args[1] === '') throw new Error(`execution error: ${str(args[0])}`);
      return args[1];
    case 'fail':
      throw new Error(`execution error: ${str(args[0])}`);
    case 'b64enc':
      return Buffer.from(str(args[0]), 'utf8').toString('base64');
    case 'sha256sum':
      return createHash('sha256').update(str(args[0])).digest('hex');
    case 'eq':
      return args.slice(1).some((a) => a === args[0]);
    case 'ne':
      return args[0] !== args[1];
    case 'gt':
      // Go: both numbers (Helm reads values as float64, hence `int` before comparing to a literal).
      if (typeof args[0] !== 'number' || typeof args[1] !== 'number') throw new Error(`${ctx.file}: gt needs two numbers`);
      return args[0] > args[1];
    case 'int': {
      // sprig's int (cast.ToInt): numbers truncate, numeric strings parse, anything else is 0.
      const n = typeof args[0] === 'string' ? Number.parseInt(args[0], 10) : Number(args[0]);
      return Number.isFinite(n) ? Math.trunc(n) : 0;
    }
    case 'not':
      return !truthy(args[0]);
    case 'and':
      return args.find((a) => !truthy(a)) ?? args.at(-1);
    case 'or':
      return args.find((a) => truthy(a)) ?? args.at(-1);
    case 'printf':
      return goPrintf(str(args[0]), args.slice(1));
    case 'print':
      return args.map(str).join('');
    case 'trunc': {
      const n = Number(args[0]);
      const s = str(args[1]);
      return n >= 0 ? s.slice(0, n) : s.slice(n);
    }
    case 'trimSuffix': {
      const suffix = str(args[0]);
      const s = str(args[1]);
      return suffix && s.endsWith(suffix) ? s.slice(0, -suffix.length) : s;
    }
    case 'contains':
      return str(args[1]).includes(str(args[0]));
    default:
      throw new Error(`${ctx.file}: function "${name}" is outside the supported subset`);
  }
}

// ---------------------------------------------------------------------------------------------
// Chart

export interface HelmOptions {
  releaseName?: string;
  namespace?: string;
  values?: Record<string, unknown>;
}

export interface RenderedChart {
  /** Rendered text per template file (without partials and NOTES.txt). */
  files: Map<string, string>;
  notes: string;
  objects: K8sObject[];
}

function isPlainMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Helm's coalescing of user values over chart values: maps merge, null removes a key. */
export function mergeValues(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else if (isPlainMap(v) && isPlainMap(out[k])) out[k] = mergeValues(out[k] as Record<string, unknown>, v);
    else out[k] = v;
  }
  return out;
}

export function helmTemplate(chartDir: string, opts: HelmOptions = {}): RenderedChart {
  const chart = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  const chartValues = (parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) ?? {}) as Record<string, unknown>;
  const root = {
    Values: mergeValues(chartValues, opts.values ?? {}),
    Release: { Name: opts.releaseName ?? 'logwarden', Namespace: opts.namespace ?? 'default', Service: 'Helm', IsInstall: true, IsUpgrade: false },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion, Description: chart.description },
  };
  const templatesDir = join(chartDir, 'templates');
  const names = readdirSync(templatesDir)
    .filter((f) => /\.(ya?ml|tpl|txt)$/.test(f))
    .sort();
  const parsed = new Map(names.map((f) => [f, parseTemplate(readFileSync(join(templatesDir, f), 'utf8'), `templates/${f}`)]));
  const defines = new Map<string, Node[]>();
  for (const nodes of parsed.values()) for (const n of nodes) if (n.t === 'define') defines.set(n.name, n.body);

  const files = (path: string) => {
    const p = join(chartDir, path);
    return existsSync(p) ? readFileSync(p, 'utf8') : '';
  };
  const out = new Map<string, string>();
  let notes = '';
  for (const [f, nodes] of parsed) {
    if (f.startsWith('_')) continue;
    const ctx: Ctx = { defines, files, file: `templates/${f}` };
    const scope = new Scope();
    scope.declare('$', root);
    const text = render(nodes, root, scope, ctx);
    if (f === 'NOTES.txt') notes = text;
    else out.set(f, text);
  }
  const objects: K8sObject[] = [];
  for (const [f, text] of out) objects.push(...parseManifests(text, `templates/${f}`));
  return { files: out, notes, objects };
}

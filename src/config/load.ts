/**
 * Loads a pipeline in Fluent Bit's YAML schema (`service`, `pipeline.inputs/filters/outputs`,
 * `parsers`, `includes`, `env`), substitutes `${VAR}` / `${VAR:-default}`, and keeps the
 * file:line:col of every key and value for error messages.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair, type YAMLMap } from 'yaml';
import { ConfigError, ConfigErrors, type SourcePos } from './errors.js';
import type { RawSection } from './schema.js';

export interface PluginSection {
  kind: 'input' | 'filter' | 'output';
  name: string;
  raw: RawSection;
}

export interface LoadedConfig {
  file: string;
  service: RawSection;
  inputs: PluginSection[];
  filters: PluginSection[];
  outputs: PluginSection[];
  /** Entries of `parsers:` sections (each a map with name, format, ...). */
  parsers: RawSection[];
  /** Variables from `env:` sections, after substitution. */
  env: Record<string, string>;
}

const TOP_LEVEL = new Set(['service', 'pipeline', 'parsers', 'includes', 'env', 'multiline_parsers']);

class Source {
  readonly lines = new LineCounter();
  constructor(readonly file: string) {}
  pos(node: Node | null | undefined): SourcePos {
    const offset = node?.range?.[0] ?? 0;
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, col };
  }
}

/**
 * `${VAR}` and `${VAR:-default}`: the default applies when VAR is unset or empty (Fluent Bit).
 * `${VAR:+word}` (as in the shell): word when VAR is set and not empty, else nothing — with an
 * include it switches optional parts of a pipeline on (`includes: ['${LOKI_URL:+loki.yaml}']`).
 */
const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}/g;

export function substituteEnv(text: string, env: Record<string, string | undefined>, onMissing: (name: string) => void): string {
  if (!text.includes('${')) return text;
  return text.replace(ENV_REF, (_m, name: string, op: string | undefined, word: string | undefined) => {
    const v = env[name];
    const set = v !== undefined && v !== '';
    if (op === '+') return set ? word! : '';
    if (set) return v;
    if (op === '-') return word!;
    onMissing(name);
    return '';
  });
}

interface Ctx {
  env: Record<string, string | undefined>;
  errors: ConfigError[];
  seen: Set<string>;
}

function toJS(node: unknown, src: Source, ctx: Ctx): unknown {
  if (node == null) return null;
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === 'string') {
      return substituteEnv(v, ctx.env, (name) => ctx.errors.push(new ConfigError(`environment variable '${name}' is not set and has no default (write \${${name}:-default})`, src.pos(node))));
    }
    return v;
  }
  if (isSeq(node)) return node.items.map((i) => toJS(i, src, ctx));
  if (isMap(node)) {
    // Null prototype: a key named __proto__ in a config stays data.
    const out: Record<string, unknown> = Object.create(null);
    for (const pair of node.items) out[String(toJS(pair.key, src, ctx))] = toJS(pair.value, src, ctx);
    return out;
  }
  return (node as { toJSON?: () => unknown }).toJSON?.() ?? null;
}

function sectionOf(map: YAMLMap, src: Source, ctx: Ctx): RawSection {
  const section: RawSection = {
    values: Object.create(null),
    keyPos: Object.create(null),
    valuePos: Object.create(null),
    pos: src.pos(map),
    baseDir: dirname(src.file),
  };
  for (const pair of map.items as Pair<Node, Node>[]) {
    const key = String(toJS(pair.key, src, ctx));
    if (key in section.values) {
      ctx.errors.push(new ConfigError(`duplicate key '${key}' (use a YAML list to give an option several values)`, src.pos(pair.key), key));
    }
    section.values[key] = toJS(pair.value, src, ctx);
    section.keyPos[key] = src.pos(pair.key);
    section.valuePos[key] = src.pos(pair.value ?? pair.key);
  }
  return section;
}

function readDoc(file: string, ctx: Ctx, from?: SourcePos): { src: Source; root: YAMLMap | null } | null {
  const src = new Source(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    ctx.errors.push(new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`, from));
    return null;
  }
  const doc = parseDocument(text, { lineCounter: src.lines, prettyErrors: false, uniqueKeys: false });
  for (const err of doc.errors) {
    const { line, col } = src.lines.linePos(err.pos[0]);
    ctx.errors.push(new ConfigError(`YAML syntax error: ${err.message.split('\n')[0]}`, { file, line, col }));
  }
  if (doc.errors.length) return null;
  if (doc.contents == null) return { src, root: null };
  if (!isMap(doc.contents)) {
    ctx.errors.push(new ConfigError('expected a YAML map with service / pipeline / parsers / includes / env', src.pos(doc.contents)));
    return null;
  }
  return { src, root: doc.contents };
}

function loadInto(file: string, out: LoadedConfig, ctx: Ctx, from?: SourcePos): void {
  const abs = resolve(file);
  if (ctx.seen.has(abs)) {
    ctx.errors.push(new ConfigError(`include cycle: ${abs} is already included`, from));
    return;
  }
  ctx.seen.add(abs);
  const doc = readDoc(abs, ctx, from);
  if (!doc?.root) return;
  const { src, root } = doc;

  // `env` first, so later sections of this file can use its variables.
  const envNode = root.get('env', true) as Node | undefined;
  if (envNode) {
    if (isMap(envNode)) {
      for (const pair of envNode.items as Pair<Node, Node>[]) {
        const k = String(toJS(pair.key, src, ctx));
        const v = toJS(pair.value, src, ctx);
        ctx.env[k] = out.env[k] = readEnvValue(v, src.pos(pair.value), ctx);
      }
    } else if (isSeq(envNode)) {
      for (const item of envNode.items as Node[]) {
        const v = toJS(item, src, ctx) as Record<string, unknown> | null;
        if (!v || typeof v !== 'object' || typeof v.name !== 'string') {
          ctx.errors.push(new ConfigError('env list entries need {name, value}', src.pos(item), 'env'));
          continue;
        }
        ctx.env[v.name] = out.env[v.name] = readEnvValue(v.value ?? v.uri, src.pos(item), ctx);
      }
    } else ctx.errors.push(new ConfigError('expected a map or list', src.pos(envNode), 'env'));
  }

  for (const pair of root.items as Pair<Node, Node>[]) {
    const key = String(toJS(pair.key, src, ctx));
    const value = pair.value;
    const at = src.pos(pair.key);
    if (!TOP_LEVEL.has(key)) {
      ctx.errors.push(new ConfigError(`unknown section '${key}'; expected one of ${[...TOP_LEVEL].join(', ')}`, at, key));
      continue;
    }
    switch (key) {
      case 'env':
        break;
      case 'includes': {
        const list = isSeq(value) ? (value.items as Node[]) : value ? [value] : [];
        for (const item of list) {
          const p = toJS(item, src, ctx);
          if (p === '') continue; // switched off, e.g. ${LOKI_URL:+loki.yaml} with LOKI_URL unset
          if (typeof p !== 'string') {
            ctx.errors.push(new ConfigError('expected a file path', src.pos(item), 'includes'));
            continue;
          }
          const target = resolve(dirname(abs), p);
          if (!existsSync(target)) {
            ctx.errors.push(new ConfigError(`included file not found: ${target}`, src.pos(item), 'includes'));
            continue;
          }
          loadInto(target, out, ctx, src.pos(item));
        }
        break;
      }
      case 'service': {
        if (!isMap(value)) {
          ctx.errors.push(new ConfigError('expected a map', src.pos(value ?? pair.key), 'service'));
          break;
        }
        const s = sectionOf(value, src, ctx);
        for (const k of Object.keys(s.values)) {
          out.service.values[k] = s.values[k];
          out.service.keyPos[k] = s.keyPos[k]!;
          out.service.valuePos[k] = s.valuePos[k]!;
        }
        if (out.service.pos.line === 0) {
          out.service.pos = s.pos;
          out.service.baseDir = s.baseDir;
        }
        break;
      }
      case 'parsers':
      case 'multiline_parsers': {
        if (key === 'multiline_parsers') {
          ctx.errors.push(new ConfigError('multiline parsers are not supported yet', at, key));
          break;
        }
        if (!isSeq(value)) {
          ctx.errors.push(new ConfigError('expected a list of parser definitions', src.pos(value ?? pair.key), key));
          break;
        }
        for (const item of value.items as Node[]) {
          if (!isMap(item)) ctx.errors.push(new ConfigError('expected a map (name, format, ...)', src.pos(item), key));
          else out.parsers.push(sectionOf(item, src, ctx));
        }
        break;
      }
      case 'pipeline': {
        if (!isMap(value)) {
          ctx.errors.push(new ConfigError('expected a map with inputs / filters / outputs', src.pos(value ?? pair.key), 'pipeline'));
          break;
        }
        for (const p of value.items as Pair<Node, Node>[]) {
          const part = String(toJS(p.key, src, ctx));
          const kind = part === 'inputs' ? 'input' : part === 'filters' ? 'filter' : part === 'outputs' ? 'output' : null;
          if (!kind) {
            ctx.errors.push(new ConfigError(`unknown pipeline section '${part}'; expected inputs, filters or outputs`, src.pos(p.key), part));
            continue;
          }
          if (p.value == null || (isScalar(p.value) && p.value.value == null)) continue;
          if (!isSeq(p.value)) {
            ctx.errors.push(new ConfigError(`expected a list of ${part}`, src.pos(p.value), part));
            continue;
          }
          for (const item of p.value.items as Node[]) {
            if (!isMap(item)) {
              ctx.errors.push(new ConfigError(`each entry of ${part} must be a map with at least 'name'`, src.pos(item), part));
              continue;
            }
            const raw = sectionOf(item, src, ctx);
            // Plugins are named by text, as in Fluent Bit: `name: null` (out_null) is not YAML's null.
            const nameNode = item.get('name', true);
            if (isScalar(nameNode) && nameNode.value === null && nameNode.source) raw.values.name = nameNode.source;
            const name = raw.values.name;
            if (typeof name !== 'string' || name === '') {
              ctx.errors.push(new ConfigError(`missing 'name' of the ${kind} plugin`, raw.pos, 'name'));
              continue;
            }
            const list = kind === 'input' ? out.inputs : kind === 'filter' ? out.filters : out.outputs;
            list.push({ kind, name: name.toLowerCase(), raw });
          }
        }
        break;
      }
    }
  }
}

function readEnvValue(v: unknown, pos: SourcePos, ctx: Ctx): string {
  const s = v == null ? '' : String(v);
  // Fluent Bit: a value of the form file://path is read from that file.
  if (s.startsWith('file://')) {
    try {
      return readFileSync(s.slice(7), 'utf8').trim();
    } catch (e) {
      ctx.errors.push(new ConfigError(`cannot read ${s}: ${(e as Error).message}`, pos, 'env'));
      return '';
    }
  }
  return s;
}

/** Reads and structurally checks a pipeline file (plugin options are checked by the registry). */
export function loadConfigFile(file: string, env: Record<string, string | undefined> = process.env): LoadedConfig {
  const abs = resolve(file);
  const out: LoadedConfig = {
    file: abs,
    service: { values: Object.create(null), keyPos: Object.create(null), valuePos: Object.create(null), pos: { file: abs, line: 0, col: 0 }, baseDir: dirname(abs) },
    inputs: [],
    filters: [],
    outputs: [],
    parsers: [],
    env: {},
  };
  const ctx: Ctx = { env: { ...env }, errors: [], seen: new Set() };
  loadInto(abs, out, ctx);
  if (out.service.pos.line === 0) out.service.pos = { file: abs, line: 1, col: 1 };
  if (ctx.errors.length) throw new ConfigErrors(ctx.errors);
  return out;
}

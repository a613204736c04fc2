/**
 * Fluent Bit upstream files (flb_upstream_ha_from_file): the nodes a `forward` output balances
 * over. Two forms are read:
 * - classic: one `[UPSTREAM]` section with `name`, then one `[NODE]` section per node with
 *   `name`, `host`, `port` and per-node options, one `key value` per line, `#` comments;
 * - YAML (`.yaml` / `.yml`): `upstream_servers: [{name, nodes: [{name, host, port, ...}]}]`,
 *   as in Fluent Bit's YAML schema.
 * `${VAR}` / `${VAR:-default}` are substituted as in pipeline files. Every key and value keeps its
 * file:line:col so that option errors point into the upstream file.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair } from 'yaml';
import { ConfigError, type SourcePos } from '../../config/errors.js';
import { substituteEnv } from '../../config/load.js';
import type { RawSection } from '../../config/schema.js';

export interface UpstreamFile {
  name: string;
  /** One section per node: raw string values with their positions, paths relative to the file. */
  nodes: RawSection[];
}

function env(text: string, pos: SourcePos): string {
  return substituteEnv(text, process.env, (name) => {
    throw new ConfigError(`environment variable '${name}' is not set and has no default (write \${${name}:-default})`, pos);
  });
}

function emptySection(pos: SourcePos, baseDir: string): RawSection {
  return { values: Object.create(null), keyPos: Object.create(null), valuePos: Object.create(null), pos, baseDir };
}

function readClassic(file: string, text: string): UpstreamFile {
  const baseDir = dirname(file);
  let name: string | undefined;
  let upstreamSeen: SourcePos | undefined;
  const nodes: RawSection[] = [];
  let current: RawSection | 'upstream' | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    const col = raw.length - raw.trimStart().length + 1;
    const at: SourcePos = { file, line: i + 1, col };
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const header = /^\[\s*([A-Za-z_]+)\s*\]$/.exec(trimmed);
    if (header) {
      const kind = header[1]!.toLowerCase();
      if (kind === 'upstream') {
        if (upstreamSeen) throw new ConfigError(`second [UPSTREAM] section (the first is at line ${upstreamSeen.line}); one upstream per file`, at);
        upstreamSeen = at;
        current = 'upstream';
      } else if (kind === 'node') {
        current = emptySection(at, baseDir);
        nodes.push(current);
      } else throw new ConfigError(`unknown section [${header[1]}]; an upstream file has [UPSTREAM] and [NODE] sections`, at);
      continue;
    }
    if (trimmed.startsWith('@')) throw new ConfigError(`'${trimmed.split(/\s/)[0]}' is not supported in upstream files`, at);
    const m = /^(\S+)(?:\s+(.*))?$/.exec(trimmed)!;
    const key = m[1]!.toLowerCase();
    const valueText = (m[2] ?? '').trim();
    const valueAt: SourcePos = { file, line: i + 1, col: m[2] === undefined ? col : raw.indexOf(valueText, col - 1 + m[1]!.length) + 1 };
    if (current === undefined) throw new ConfigError(`'${m[1]}' outside of a section; start with [UPSTREAM]`, at);
    const value = env(valueText, valueAt);
    if (current === 'upstream') {
      if (key !== 'name') throw new ConfigError(`unknown [UPSTREAM] key '${m[1]}'; expected name`, at, m[1]);
      name = value;
      continue;
    }
    if (key in current.values) throw new ConfigError(`duplicate key '${key}' in this [NODE]`, at, key);
    current.values[key] = value;
    current.keyPos[key] = at;
    current.valuePos[key] = valueAt;
  }
  if (!upstreamSeen) throw new ConfigError('no [UPSTREAM] section', { file, line: 1, col: 1 });
  if (!name) throw new ConfigError('[UPSTREAM] needs a name', upstreamSeen, 'name');
  return { name, nodes };
}

function readYaml(file: string, text: string): UpstreamFile {
  const baseDir = dirname(file);
  const lc = new LineCounter();
  const pos = (n: Node | null | undefined): SourcePos => {
    const { line, col } = lc.linePos(n?.range?.[0] ?? 0);
    return { file, line, col };
  };
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false });
  for (const err of doc.errors) {
    const { line, col } = lc.linePos(err.pos[0]);
    throw new ConfigError(`YAML syntax error: ${err.message.split('\n')[0]}`, { file, line, col });
  }
  const root = doc.contents;
  if (!isMap(root)) throw new ConfigError('expected a YAML map with upstream_servers', pos(root as Node));
  const servers = root.get('upstream_servers', true) as Node | undefined;
  if (!servers) throw new ConfigError('no upstream_servers section', pos(root));
  if (!isSeq(servers)) throw new ConfigError('expected a list of upstream groups ({name, nodes})', pos(servers), 'upstream_servers');
  if (servers.items.length !== 1) {
    throw new ConfigError(`found ${servers.items.length} upstream groups; an upstream file for one output holds exactly one`, pos(servers), 'upstream_servers');
  }
  const group = servers.items[0] as Node;
  if (!isMap(group)) throw new ConfigError('expected a map {name, nodes}', pos(group), 'upstream_servers');
  const scalar = (n: Node | null | undefined, what: string): string => {
    if (!isScalar(n) || n.value === null || typeof n.value === 'object') throw new ConfigError(`expected a scalar value for ${what}`, pos(n));
    return env(String(n.value), pos(n));
  };
  let name: string | undefined;
  const nodes: RawSection[] = [];
  for (const pair of group.items as Pair<Node, Node>[]) {
    const key = String((pair.key as { value?: unknown })?.value ?? '');
    if (key === 'name') name = scalar(pair.value, 'name');
    else if (key === 'nodes') {
      if (!isSeq(pair.value)) throw new ConfigError('expected a list of nodes', pos(pair.value ?? pair.key), 'nodes');
      for (const item of pair.value.items as Node[]) {
        if (!isMap(item)) throw new ConfigError('expected a map {name, host, port, ...}', pos(item), 'nodes');
        const s = emptySection(pos(item), baseDir);
        for (const p of item.items as Pair<Node, Node>[]) {
          const k = String((p.key as { value?: unknown })?.value ?? '').toLowerCase();
          if (k in s.values) throw new ConfigError(`duplicate key '${k}' in this node`, pos(p.key), k);
          s.values[k] = scalar(p.value, k);
          s.keyPos[k] = pos(p.key);
          s.valuePos[k] = pos(p.value ?? p.key);
        }
        nodes.push(s);
      }
    } else throw new ConfigError(`unknown key '${key}' in an upstream group; expected name and nodes`, pos(pair.key), key);
  }
  if (!name) throw new ConfigError('the upstream group needs a name', pos(group), 'name');
  return { name, nodes };
}

/** Reads an upstream file; `from` is the position of the `upstream` option (for read errors). */
export function readUpstreamFile(file: string, from: SourcePos | undefined): UpstreamFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read upstream file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, from, 'upstream');
  }
  const u = /\.ya?ml$/i.test(file) ? readYaml(file, text) : readClassic(file, text);
  if (u.nodes.length === 0) throw new ConfigError(`upstream '${u.name}' defines no nodes`, { file, line: 1, col: 1 });
  return u;
}

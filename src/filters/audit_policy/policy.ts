/**
 * Loading and validating a Kubernetes audit Policy (audit.k8s.io/v1, kind Policy), with the
 * file:line:col of every problem. The checks are those of k8s.io/apiserver
 * pkg/apis/audit/validation (unknown level or stage, resourceNames without resources, a rule
 * mixing nonResourceURLs with resources/namespaces, a `*` that is not the last character of a
 * URL, a URL not starting with `/`, no rules) plus the shape of every field, since a typo such
 * as `omitStage` or `resources: pods` would otherwise change what gets logged without a word.
 */
import { readFileSync } from 'node:fs';
import { Document, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair, type YAMLMap } from 'yaml';
import { ConfigError, ConfigErrors, type SourcePos } from '../../config/errors.js';
import { suggest } from '../../config/schema.js';

export const LEVELS = ['None', 'Metadata', 'Request', 'RequestResponse'] as const;
export type Level = (typeof LEVELS)[number];
export const STAGES = ['RequestReceived', 'ResponseStarted', 'ResponseComplete', 'Panic'] as const;
export type Stage = (typeof STAGES)[number];

/** API versions the apiserver still reads a Policy in (v1alpha1 had other field names). */
const API_VERSIONS = ['audit.k8s.io/v1', 'audit.k8s.io/v1beta1'];

export interface GroupResources {
  group: string;
  resources: string[];
  resourceNames: string[];
}

/** A rule as written (validated, not yet compiled). */
export interface PolicyRule {
  level: Level;
  users: string[];
  userGroups: string[];
  verbs: string[];
  resources: GroupResources[];
  namespaces: string[];
  nonResourceURLs: string[];
  omitStages: Stage[];
  omitManagedFields?: boolean;
}

export interface Policy {
  omitStages: Stage[];
  omitManagedFields: boolean;
  rules: PolicyRule[];
}

/** Maps a YAML node to the position a user should look at. */
type Locate = (node: Node | null | undefined) => { pos: SourcePos; where: string };

const POLICY_KEYS = ['apiVersion', 'kind', 'metadata', 'omitStages', 'omitManagedFields', 'rules'];
const RULE_KEYS = ['level', 'users', 'userGroups', 'verbs', 'resources', 'namespaces', 'nonResourceURLs', 'omitStages', 'omitManagedFields'];
const GROUP_KEYS = ['group', 'resources', 'resourceNames'];

class Checker {
  readonly errors: ConfigError[] = [];
  constructor(
    private readonly locate: Locate,
    private readonly option: string,
  ) {}

  fail(node: Node | null | undefined, path: string, message: string): void {
    const { pos, where } = this.locate(node);
    this.errors.push(new ConfigError(`${where}${path ? `${path}: ` : ''}${message}`, pos, this.option));
  }

  /** Pairs of a map node, with unknown keys reported; null (and an error) when not a map. */
  pairs(node: Node | null | undefined, path: string, known: string[], what: string): Map<string, Pair<Node, Node>> | null {
    if (!isMap(node)) {
      this.fail(node, path, `expected ${what} (a map), found ${describe(node)}`);
      return null;
    }
    const out = new Map<string, Pair<Node, Node>>();
    for (const pair of (node as YAMLMap<Node, Node>).items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const at = path ? `${path}.${key}` : key;
      if (!known.includes(key)) {
        this.fail(pair.key, at, `unknown field of ${what}${suggest(key, known)}; known fields: ${known.join(', ')}`);
        continue;
      }
      if (out.has(key)) {
        this.fail(pair.key, at, 'duplicate field');
        continue;
      }
      out.set(key, pair);
    }
    return out;
  }

  string(node: Node | null | undefined, path: string): string | undefined {
    if (isScalar(node) && typeof node.value === 'string') return node.value;
    this.fail(node, path, `expected a string, found ${describe(node)}`);
    return undefined;
  }

  /** A list of strings; a missing or null value is the empty list, as the apiserver decodes it. */
  strings(node: Node | null | undefined, path: string): string[] {
    if (node == null || (isScalar(node) && node.value === null)) return [];
    if (!isSeq(node)) {
      this.fail(node, path, `expected a list of strings, found ${describe(node)}`);
      return [];
    }
    const out: string[] = [];
    (node.items as Node[]).forEach((item, i) => {
      const s = this.string(item, `${path}[${i}]`);
      if (s !== undefined) out.push(s);
    });
    return out;
  }

  bool(node: Node | null | undefined, path: string): boolean | undefined {
    if (isScalar(node) && typeof node.value === 'boolean') return node.value;
    this.fail(node, path, `expected true or false, found ${describe(node)}`);
    return undefined;
  }

  level(node: Node | null | undefined, path: string): Level | undefined {
    const s = this.string(node, path);
    if (s === undefined) return undefined;
    if ((LEVELS as readonly string[]).includes(s)) return s as Level;
    this.fail(node, path, `unknown level ${JSON.stringify(s)}${suggest(s, LEVELS)}; expected one of ${LEVELS.join(', ')}`);
    return undefined;
  }

  stages(node: Node | null | undefined, path: string): Stage[] {
    const out: Stage[] = [];
    const items = isSeq(node) ? (node.items as Node[]) : [];
    for (const [i, s] of this.strings(node, path).entries()) {
      if ((STAGES as readonly string[]).includes(s)) out.push(s as Stage);
      else this.fail(items[i], `${path}[${i}]`, `unknown stage ${JSON.stringify(s)}${suggest(s, STAGES)}; expected one of ${STAGES.join(', ')}`);
    }
    return out;
  }
}

function describe(node: Node | null | undefined): string {
  if (node == null) return 'nothing';
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'null';
    const s = JSON.stringify(v) ?? String(v);
    return `${typeof v} ${s.length > 60 ? `${s.slice(0, 57)}...` : s}`;
  }
  return 'an unsupported YAML node';
}

function checkRule(c: Checker, node: Node, path: string): PolicyRule | null {
  const fields = c.pairs(node, path, RULE_KEYS, 'a rule');
  if (!fields) return null;
  const errorsBefore = c.errors.length;
  const v = (k: string) => fields.get(k)?.value as Node | null | undefined;
  const levelPair = fields.get('level');
  let level: Level | undefined;
  if (!levelPair) c.fail(node, path, `missing level; expected one of ${LEVELS.join(', ')}`);
  else level = c.level(levelPair.value, `${path}.level`);

  const resources: GroupResources[] = [];
  const resNode = v('resources');
  if (resNode != null && !(isScalar(resNode) && resNode.value === null)) {
    if (!isSeq(resNode)) c.fail(resNode, `${path}.resources`, `expected a list of {group, resources, resourceNames}, found ${describe(resNode)}`);
    else {
      (resNode.items as Node[]).forEach((item, i) => {
        const at = `${path}.resources[${i}]`;
        const g = c.pairs(item, at, GROUP_KEYS, 'a resources entry');
        if (!g) return;
        const groupNode = g.get('group')?.value as Node | null | undefined;
        let group = '';
        if (groupNode != null && !(isScalar(groupNode) && groupNode.value === null)) group = c.string(groupNode, `${at}.group`) ?? '';
        if (group.includes('/')) {
          c.fail(groupNode, `${at}.group`, `${JSON.stringify(group)} is not an API group name; write the group without a version (e.g. "apps", "" for the core group)`);
        }
        const entry: GroupResources = {
          group,
          resources: c.strings(g.get('resources')?.value, `${at}.resources`),
          resourceNames: c.strings(g.get('resourceNames')?.value, `${at}.resourceNames`),
        };
        if (entry.resourceNames.length > 0 && entry.resources.length === 0) {
          c.fail(g.get('resourceNames')!.value, `${at}.resourceNames`, 'using resourceNames requires at least one resource');
        }
        resources.push(entry);
      });
    }
  }
  const namespaces = c.strings(v('namespaces'), `${path}.namespaces`);
  const urlsNode = v('nonResourceURLs');
  const nonResourceURLs = c.strings(urlsNode, `${path}.nonResourceURLs`);
  nonResourceURLs.forEach((url, i) => {
    const item = isSeq(urlsNode) ? (urlsNode.items[i] as Node) : urlsNode;
    if (url === '*') return;
    if (!url.startsWith('/')) c.fail(item, `${path}.nonResourceURLs[${i}]`, `${JSON.stringify(url)}: non-resource URL rules must begin with a '/' character`);
    if (url.slice(0, -1).includes('*')) {
      c.fail(item, `${path}.nonResourceURLs[${i}]`, `${JSON.stringify(url)}: non-resource URL wildcards '*' must be the final character of the rule`);
    }
  });
  if (nonResourceURLs.length > 0 && (resources.length > 0 || namespaces.length > 0)) {
    c.fail(urlsNode, `${path}.nonResourceURLs`, 'rules cannot apply to both regular resources (resources, namespaces) and non-resource URLs');
  }
  const rule: PolicyRule = {
    level: level ?? 'None',
    users: c.strings(v('users'), `${path}.users`),
    userGroups: c.strings(v('userGroups'), `${path}.userGroups`),
    verbs: c.strings(v('verbs'), `${path}.verbs`),
    resources,
    namespaces,
    nonResourceURLs,
    omitStages: c.stages(v('omitStages'), `${path}.omitStages`),
  };
  const omf = fields.get('omitManagedFields');
  if (omf) {
    const b = c.bool(omf.value, `${path}.omitManagedFields`);
    if (b !== undefined) rule.omitManagedFields = b;
  }
  return c.errors.length === errorsBefore ? rule : null;
}

function checkPolicy(c: Checker, root: Node | null | undefined): Policy | null {
  const fields = c.pairs(root, '', POLICY_KEYS, 'a Policy');
  if (!fields) return null;
  const apiVersion = fields.get('apiVersion');
  if (apiVersion) {
    const s = c.string(apiVersion.value, 'apiVersion');
    if (s !== undefined && !API_VERSIONS.includes(s)) c.fail(apiVersion.value, 'apiVersion', `found ${JSON.stringify(s)}, expected ${API_VERSIONS.join(' or ')}`);
  }
  const kind = fields.get('kind');
  if (kind) {
    const s = c.string(kind.value, 'kind');
    if (s !== undefined && s !== 'Policy') c.fail(kind.value, 'kind', `found ${JSON.stringify(s)}, expected Policy`);
  }
  const metadata = fields.get('metadata')?.value;
  if (metadata != null && !isMap(metadata) && !(isScalar(metadata) && metadata.value === null)) {
    c.fail(metadata, 'metadata', `expected a map, found ${describe(metadata)}`);
  }
  const policy: Policy = { omitStages: c.stages(fields.get('omitStages')?.value, 'omitStages'), omitManagedFields: false, rules: [] };
  const omf = fields.get('omitManagedFields');
  if (omf) policy.omitManagedFields = c.bool(omf.value, 'omitManagedFields') ?? false;
  const rulesPair = fields.get('rules');
  const rulesNode = rulesPair?.value;
  if (!rulesPair || rulesNode == null || (isScalar(rulesNode) && rulesNode.value === null)) {
    c.fail(rulesPair?.key ?? root, 'rules', 'a policy needs at least one rule (the apiserver rejects a policy without rules)');
  } else if (!isSeq(rulesNode)) {
    c.fail(rulesNode, 'rules', `expected a list of rules, found ${describe(rulesNode)}`);
  } else if (rulesNode.items.length === 0) {
    c.fail(rulesNode, 'rules', 'a policy needs at least one rule (the apiserver rejects a policy without rules)');
  } else {
    (rulesNode.items as Node[]).forEach((item, i) => {
      const rule = checkRule(c, item, `rules[${i}]`);
      if (rule) policy.rules.push(rule);
    });
  }
  return c.errors.length ? null : policy;
}

function finish(c: Checker, policy: Policy | null): Policy {
  if (c.errors.length === 1) throw c.errors[0]!;
  if (c.errors.length > 1) throw new ConfigErrors(c.errors);
  return policy!;
}

/**
 * Parses and validates policy text. `file` names it in positions. When `at` is given (a policy
 * written inline as a string in the pipeline), positions are those of the option and the
 * message says where inside the text the problem is.
 */
export function parsePolicyText(text: string, file: string, option: string, at?: SourcePos): Policy {
  const lines = new LineCounter();
  const locate: Locate = (node) => {
    const { line, col } = lines.linePos(node?.range?.[0] ?? 0);
    return at ? { pos: at, where: `inline policy line ${line}, col ${col}: ` } : { pos: { file, line, col }, where: '' };
  };
  const c = new Checker(locate, option);
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length) {
    for (const err of doc.errors) {
      const { line, col } = lines.linePos(err.pos[0]);
      const msg = `YAML syntax error: ${err.message.split('\n')[0]}`;
      c.errors.push(at ? new ConfigError(`inline policy line ${line}, col ${col}: ${msg}`, at, option) : new ConfigError(msg, { file, line, col }, option));
    }
    return finish(c, null);
  }
  if (doc.contents == null) {
    c.fail(null, '', 'the policy is empty; expected a Policy with rules');
    return finish(c, null);
  }
  return finish(c, checkPolicy(c, doc.contents as Node));
}

/** Reads a policy file; an unreadable file is a ConfigError at `from` (the option's value). */
export function loadPolicyFile(path: string, option: string, from: SourcePos): Policy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read policy file ${path}: ${(e as Error).message}`, from, option);
  }
  return parsePolicyText(text, path, option);
}

/**
 * Validates a policy given inline in the pipeline: a map (checked as is, every position is the
 * option's) or a string holding the policy's YAML.
 */
export function parseInlinePolicy(value: unknown, option: string, at: SourcePos): Policy {
  if (typeof value === 'string') return parsePolicyText(value, at.file, option, at);
  const c = new Checker(() => ({ pos: at, where: '' }), option);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    c.fail(null, '', `expected a Policy map (apiVersion, kind, omitStages, rules) or its YAML text, found ${value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value}`);
    return finish(c, null);
  }
  return finish(c, checkPolicy(c, new Document(value).contents as Node));
}

/**
 * Applying an audit Policy to Events that an apiserver already wrote. Matching follows
 * k8s.io/apiserver pkg/audit/policy/checker.go (ruleMatches, ruleMatchesResource,
 * ruleMatchesNonResource); what each level keeps follows pkg/audit/request.go. Rules are
 * compiled once: sets for users, groups, verbs and namespaces, and per resources entry the
 * exact, `*`, `*\/sub` and `res/*` forms split into sets.
 */
import type { AuditEvent } from '../../k8s-audit/audit-event.js';
import { setField } from '../../core/record-accessor.js';
import type { RecordView } from '../../core/record-view.js';
import { LEVELS, type GroupResources, type Level, type Policy, type PolicyRule } from './policy.js';

const RANK: Record<string, number> = { None: 0, Metadata: 1, Request: 2, RequestResponse: 3 };

interface CompiledGroup {
  anyGroup: boolean;
  group: string;
  /** No `resources`: every resource of the group. */
  all: boolean;
  names: Set<string> | null;
  anyResource: boolean;
  exact: Set<string>;
  /** `*\/sub` entries, by sub. */
  subresources: Set<string>;
  /** `res/*` entries, by res. */
  withSubresources: Set<string>;
}

interface CompiledRule {
  index: number;
  level: Level;
  users: Set<string> | null;
  groups: Set<string> | null;
  verbs: Set<string> | null;
  /** Set when the rule has `resources` or `namespaces`: it matches resource requests only. */
  resourceOnly: boolean;
  namespaces: Set<string> | null;
  resources: CompiledGroup[] | null;
  /** Set when the rule has `nonResourceURLs` (and no resources/namespaces). */
  urls: { any: boolean; exact: Set<string>; prefixes: string[] } | null;
  /** The policy's omitStages ∪ the rule's. */
  omitStages: Set<string>;
  /** The rule's omitManagedFields when set, else the policy's. */
  omitManagedFields: boolean;
}

/** The request attributes a rule sees, read from an Event. */
interface Attributes {
  user: string | null;
  /** null: read from `view` when a rule asks (most rules name no group). */
  groups: readonly unknown[] | null;
  view?: RecordView;
  verb: string;
  resourceRequest: boolean;
  apiGroup: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  path: string;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function isMap(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function attributesOf(event: AuditEvent): Attributes {
  const user = isMap(event.user) ? event.user : null;
  const username = user && typeof user.username === 'string' && user.username !== '' ? user.username : null;
  const groups = username !== null && Array.isArray(user!.groups) ? user!.groups : [];
  const verb = str(event.verb);
  const ref = event.objectRef;
  if (isMap(ref)) {
    const subresource = str(ref.subresource);
    return {
      user: username,
      groups,
      verb,
      resourceRequest: true,
      apiGroup: str(ref.apiGroup),
      resource: str(ref.resource),
      subresource,
      namespace: str(ref.namespace),
      // The apiserver evaluates the policy before decoding a create's body; objectRef.name is
      // filled from the body afterwards, so the policy saw no name.
      name: verb === 'create' && subresource === '' ? '' : str(ref.name),
      path: '',
    };
  }
  const uri = str(event.requestURI);
  const q = uri.indexOf('?');
  return {
    user: username,
    groups,
    verb,
    resourceRequest: false,
    apiGroup: '',
    resource: '',
    subresource: '',
    namespace: '',
    name: '',
    path: q < 0 ? uri : uri.slice(0, q),
  };
}

const USERNAME = ['user', 'username'];
const GROUPS = ['user', 'groups'];
const OBJECT_REF = ['objectRef'];
const REF = (k: string) => ['objectRef', k];
const REF_SUB = REF('subresource');
const REF_GROUP = REF('apiGroup');
const REF_RESOURCE = REF('resource');
const REF_NAMESPACE = REF('namespace');
const REF_NAME = REF('name');

/** attributesOf, read through a view over the Event's bytes (the same answers). */
const NO_GROUPS: readonly unknown[] = Object.freeze([]);
/** The attributes of the Event a view reads: one object, filled again for each Event (rules run synchronously). */
const viewAttributes: Attributes = { user: null, groups: null, verb: '', resourceRequest: false, apiGroup: '', resource: '', subresource: '', namespace: '', name: '', path: '' };

function attributesOfView(v: RecordView): Attributes {
  const a = viewAttributes;
  const u = v.get(USERNAME);
  const username = typeof u === 'string' && u !== '' ? u : null;
  a.user = username;
  a.groups = username === null ? NO_GROUPS : null;
  a.view = v;
  const verb = str(v.getTop('verb'));
  a.verb = verb;
  if (v.isMapAt(OBJECT_REF)) {
    const subresource = str(v.get(REF_SUB));
    a.resourceRequest = true;
    a.apiGroup = str(v.get(REF_GROUP));
    a.resource = str(v.get(REF_RESOURCE));
    a.subresource = subresource;
    a.namespace = str(v.get(REF_NAMESPACE));
    a.name = verb === 'create' && subresource === '' ? '' : str(v.get(REF_NAME));
    a.path = '';
    return a;
  }
  const uri = str(v.getTop('requestURI'));
  const q = uri.indexOf('?');
  a.resourceRequest = false;
  a.apiGroup = a.resource = a.subresource = a.namespace = a.name = '';
  a.path = q < 0 ? uri : uri.slice(0, q);
  return a;
}

function groupsOf(a: Attributes): readonly unknown[] {
  if (a.groups === null) {
    const g = a.view!.get(GROUPS);
    a.groups = Array.isArray(g) ? g : [];
  }
  return a.groups;
}

/** What the policy decided for an Event read through a view: the changes, as edits to make. */
export interface ViewDecision {
  rule: number;
  level: Level;
  /** False when the Event is dropped. */
  keep: boolean;
  dropRequest: boolean;
  dropResponse: boolean;
  /** The level to write, or null when the Event's own level stays. */
  setLevel: Level | null;
  /** managedFields to remove from the bodies that stay (omitManagedFields). */
  strip: Array<Array<string | number>>;
}

/** Longest `items` list whose managedFields are found through the view (each item is a scan). */
const MAX_VIEW_ITEMS = 256;

/**
 * The managedFields paths stripManagedFields() removes from `body`, read through the view; false
 * when the list is too long to look through item by item.
 */
function managedFieldsPaths(v: RecordView, body: string, out: Array<Array<string | number>>): boolean {
  if (!v.isMapAt([body])) return true;
  if (v.isMapAt([body, 'metadata']) && v.find([body, 'metadata', 'managedFields'])) out.push([body, 'metadata', 'managedFields']);
  const n = v.arrayLength([body, 'items']);
  if (n > MAX_VIEW_ITEMS) return false;
  for (let i = 0; i < n; i++) {
    if (v.isMapAt([body, 'items', i, 'metadata']) && v.find([body, 'items', i, 'metadata', 'managedFields'])) out.push([body, 'items', i, 'metadata', 'managedFields']);
  }
  return true;
}

function setOrNull(list: string[]): Set<string> | null {
  return list.length ? new Set(list) : null;
}

function compileGroup(g: GroupResources): CompiledGroup {
  const out: CompiledGroup = {
    anyGroup: g.group === '*',
    group: g.group,
    all: g.resources.length === 0,
    names: setOrNull(g.resourceNames),
    anyResource: false,
    exact: new Set(),
    subresources: new Set(),
    withSubresources: new Set(),
  };
  for (const res of g.resources) {
    if (res === '*') out.anyResource = true;
    out.exact.add(res);
    if (res.startsWith('*/')) out.subresources.add(res.slice(2));
    if (res.endsWith('/*')) out.withSubresources.add(res.slice(0, -2));
  }
  return out;
}

function compileRule(rule: PolicyRule, index: number, policy: Policy): CompiledRule {
  const resourceOnly = rule.resources.length > 0 || rule.namespaces.length > 0;
  let urls: CompiledRule['urls'] = null;
  if (!resourceOnly && rule.nonResourceURLs.length) {
    urls = { any: false, exact: new Set(), prefixes: [] };
    for (const u of rule.nonResourceURLs) {
      if (u === '*') urls.any = true;
      else if (u.endsWith('*')) urls.prefixes.push(u.replace(/\*+$/, ''));
      else urls.exact.add(u);
    }
  }
  return {
    index,
    level: rule.level,
    users: setOrNull(rule.users),
    groups: setOrNull(rule.userGroups),
    verbs: setOrNull(rule.verbs),
    resourceOnly,
    namespaces: setOrNull(rule.namespaces),
    resources: rule.resources.length ? rule.resources.map(compileGroup) : null,
    urls,
    omitStages: new Set([...policy.omitStages, ...rule.omitStages]),
    omitManagedFields: rule.omitManagedFields ?? policy.omitManagedFields,
  };
}

function matchesGroup(g: CompiledGroup, a: Attributes): boolean {
  if (!g.anyGroup && g.group !== a.apiGroup) return false;
  if (g.all) return true;
  // A request without a name (a list, a create on a collection) never matches resourceNames.
  if (g.names !== null && (a.name === '' || !g.names.has(a.name))) return false;
  if (g.anyResource) return true;
  if (a.subresource === '') return g.exact.has(a.resource) || g.withSubresources.has(a.resource);
  return g.exact.has(`${a.resource}/${a.subresource}`) || g.subresources.has(a.subresource) || g.withSubresources.has(a.resource);
}

function matches(r: CompiledRule, a: Attributes): boolean {
  if (r.users !== null && (a.user === null || !r.users.has(a.user))) return false;
  if (r.groups !== null) {
    if (a.user === null) return false;
    let hit = false;
    for (const g of groupsOf(a)) {
      if (typeof g === 'string' && r.groups.has(g)) {
        hit = true;
        break;
      }
    }
    if (!hit) return false;
  }
  if (r.verbs !== null && !r.verbs.has(a.verb)) return false;
  if (r.resourceOnly) {
    if (!a.resourceRequest) return false;
    if (r.namespaces !== null && !r.namespaces.has(a.namespace)) return false;
    if (r.resources === null) return true;
    for (const g of r.resources) if (matchesGroup(g, a)) return true;
    return false;
  }
  if (r.urls !== null) {
    if (a.resourceRequest) return false;
    if (r.urls.any || r.urls.exact.has(a.path)) return true;
    for (const p of r.urls.prefixes) if (a.path.startsWith(p)) return true;
    return false;
  }
  return true;
}

/** What the policy decided for one Event. */
export interface Decision {
  /** The first matching rule (0-based), or -1. */
  rule: number;
  /** The level the policy gives (None when no rule matched). */
  policyLevel: Level;
  /** The level of the output: the lower of the Event's own level and the policy's. */
  level: Level;
  /** null when the Event is dropped (level None or an omitted stage). */
  event: AuditEvent | null;
  /** Why it was dropped. */
  dropped?: 'level' | 'stage';
}

const hasOwn = (o: object, k: string) => Object.hasOwn(o, k);

/** A shallow copy of `obj` without the `skip` keys; a `__proto__` key stays an own data property. */
export function copyWithout(obj: Record<string, unknown>, skipA: string | null, skipB: string | null = null): Record<string, unknown> {
  // Built key by key rather than spread and `delete`d: deleting turns the copy into a slow
  // dictionary-mode object for every later stage.
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(obj)) if (k !== skipA && k !== skipB) setField(out, k, obj[k]);
  return out;
}

/**
 * A shallow copy of `obj` with `key` set. Not `{ ...obj, [key]: value }`: a spread followed by
 * more keys takes V8's generic path, measured 10-20x slower.
 */
export function withKey(obj: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const out = copyWithout(obj, null);
  setField(out, key, value);
  return out;
}

function withoutManagedFields(obj: Record<string, unknown>): Record<string, unknown> {
  const md = obj.metadata;
  return isMap(md) && hasOwn(md, 'managedFields') ? { ...obj, metadata: copyWithout(md, 'managedFields') } : obj;
}

/**
 * `obj` without metadata.managedFields, and for a list without each item's (request.go
 * removeManagedFields); the same object when there is nothing to remove. Copies only the maps on
 * the way to a removed key.
 */
function stripManagedFields(obj: unknown): unknown {
  if (!isMap(obj)) return obj;
  let out = withoutManagedFields(obj);
  const items = obj.items;
  if (Array.isArray(items)) {
    let copy: unknown[] | null = null;
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (!isMap(item)) continue;
      const stripped = withoutManagedFields(item);
      if (stripped !== item) (copy ??= items.slice())[i] = stripped;
    }
    if (copy !== null) out = { ...out, items: copy };
  }
  return out;
}

function decision(rule: CompiledRule, level: Level, event: AuditEvent | null, dropped: Decision['dropped']): Decision {
  return { rule: rule.index, policyLevel: rule.level, level, event, dropped };
}

export class CompiledPolicy {
  private readonly rules: CompiledRule[];

  constructor(readonly policy: Policy) {
    this.rules = policy.rules.map((r, i) => compileRule(r, i, policy));
  }

  private rule(a: Attributes): CompiledRule | null {
    for (const r of this.rules) if (matches(r, a)) return r;
    return null;
  }

  /**
   * apply() for an Event read through a view over its bytes: the same decision, given as the
   * changes to record (in `d`). False when the answer needs the decoded Event (managedFields to strip from
   * a body that stays).
   */
  applyView(v: RecordView, d: ViewDecision): boolean {
    const rule = this.rule(attributesOfView(v));
    d.dropRequest = d.dropResponse = false;
    d.setLevel = null;
    d.strip.length = 0;
    if (rule === null) {
      d.rule = -1;
      d.level = 'None';
      d.keep = false;
      return true;
    }
    d.rule = rule.index;
    const own = v.getTop('level');
    const ownRank = typeof own === 'string' ? (RANK[own] ?? 3) : 3;
    const rank = Math.min(RANK[rule.level]!, ownRank);
    const level = LEVELS[rank]!;
    d.level = level;
    const stage = v.getTop('stage');
    if (rank === 0 || (typeof stage === 'string' && rule.omitStages.has(stage))) {
      d.keep = false;
      return true;
    }
    d.keep = true;
    const hasRequest = v.has('requestObject');
    const hasResponse = v.has('responseObject');
    d.dropRequest = rank < 2 && hasRequest;
    d.dropResponse = rank < 3 && hasResponse;
    if (rule.omitManagedFields) {
      if (hasRequest && !d.dropRequest && !managedFieldsPaths(v, 'requestObject', d.strip)) return false;
      if (hasResponse && !d.dropResponse && !managedFieldsPaths(v, 'responseObject', d.strip)) return false;
      // The object path writes the level whenever it copies the Event.
      if (d.strip.length) d.setLevel = level;
    }
    if (own !== level) d.setLevel = level;
    return true;
  }

  /**
   * Applies the policy to one Event. The Event is never changed: when the output differs (a
   * lower level, bodies or managedFields removed) it is a copy of the top level, sharing every
   * value that stays.
   */
  apply(event: AuditEvent): Decision {
    const a = attributesOf(event);
    let rule: CompiledRule | null = null;
    for (const r of this.rules) {
      if (matches(r, a)) {
        rule = r;
        break;
      }
    }
    if (rule === null) return { rule: -1, policyLevel: 'None', level: 'None', event: null, dropped: 'level' };
    const policyRank = RANK[rule.level]!;
    // An Event without a valid level is taken as complete: the policy's level applies.
    const ownRank = typeof event.level === 'string' ? (RANK[event.level] ?? 3) : 3;
    const rank = Math.min(policyRank, ownRank);
    const level = LEVELS[rank]!;
    if (rank === 0) return decision(rule, level, null, 'level');
    if (typeof event.stage === 'string' && rule.omitStages.has(event.stage)) return decision(rule, level, null, 'stage');

    const dropRequest = rank < 2 && hasOwn(event, 'requestObject');
    const dropResponse = rank < 3 && hasOwn(event, 'responseObject');
    let request: unknown;
    let response: unknown;
    let stripRequest = false;
    let stripResponse = false;
    if (rule.omitManagedFields) {
      if (!dropRequest && hasOwn(event, 'requestObject')) {
        request = stripManagedFields(event.requestObject);
        stripRequest = request !== event.requestObject;
      }
      if (!dropResponse && hasOwn(event, 'responseObject')) {
        response = stripManagedFields(event.responseObject);
        stripResponse = response !== event.responseObject;
      }
    }
    if (!dropRequest && !dropResponse && !stripRequest && !stripResponse && event.level === level) return decision(rule, level, event, undefined);
    const out = copyWithout(event, dropRequest ? 'requestObject' : null, dropResponse ? 'responseObject' : null);
    if (stripRequest) out.requestObject = request;
    if (stripResponse) out.responseObject = response;
    out.level = level;
    return decision(rule, level, out, undefined);
  }
}

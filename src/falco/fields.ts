/**
 * Fields of the k8s_audit source: the k8saudit plugin's `ka.*` fields
 * (falcosecurity/plugins plugins/k8saudit/pkg/k8saudit/{fields,extract}.go, k8saudit 0.18.0), the
 * json plugin's `json.*` / `jevt.*` fields (plugins/json), and the generic `evt.*` fields Falco
 * offers for every plugin event. Each field compiles, with its argument, into one extractor
 * that reads the audit event (event.ts).
 *
 * Values follow the plugins: a JSON string is returned as is, any other JSON value as its
 * compact JSON text; a missing path means the field is absent (undefined); a list field that
 * yields no value is absent too (Falco treats an empty list as a missing field). Divergences
 * from upstream extraction bugs are listed in docs/detect.md.
 */
import { toJSONLine } from '../core/json.js';
import { at, eventTime, localDate, path, rawTime, timeOfDay, tzOffset, type AuditEvent } from './event.js';

export type ValueType = 'str' | 'list' | 'num';
export type FieldValue = string | string[] | number | undefined;

export type Extractor = (ev: AuditEvent) => FieldValue;

export type ArgKind = 'none' | 'key' | 'index';

export interface FieldInfo {
  name: string;
  type: ValueType;
  arg: ArgKind;
  description: string;
  /** Builds the extractor for one argument (already validated against `arg`). */
  make(arg: string | undefined): Extractor;
}

/** JSON value → field text: strings as is, everything else compact JSON. */
export function valueText(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return v.toString();
    default:
      if (v === null || v === undefined) return 'null';
      if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
      return toJSONLine(v);
  }
}

/** A single value at a fixed path (extractFromKeys for a non-list field). */
function scalarAt(...keys: string[]): Extractor {
  if (keys.length === 1) {
    const k = keys[0]!;
    return (ev) => {
      const v = ev.top(k);
      return v === undefined ? undefined : typeof v === 'string' ? v : valueText(v);
    };
  }
  return (ev) => {
    const v = ev.at(keys);
    return v === undefined ? undefined : typeof v === 'string' ? v : valueText(v);
  };
}

function nonEmpty(list: string[]): string[] | undefined {
  return list.length ? list : undefined;
}

/** A list field read from an array at a fixed path (extractFromKeys for a list field). */
function arrayAt(...keys: string[]): Extractor {
  return (ev) => {
    const v = ev.at(keys);
    if (!Array.isArray(v)) return undefined;
    return nonEmpty(v.map(valueText));
  };
}

/** Parses an optional `[i]` index argument (validated at compile time). */
function indexOf(arg: string | undefined): number {
  return arg === undefined ? -1 : Number(arg);
}

/**
 * getValuesRecursive of the k8saudit plugin: walks `keys`; every array met before a key fans out
 * (or, with an index, takes element `index`). Elements missing the rest of the path yield
 * `undefined` entries; a missing path before any fan-out makes the whole walk absent.
 */
function walk(v: unknown, index: number, keys: readonly string[], from = 0): unknown[] | undefined {
  for (let i = from; i < keys.length; i++) {
    if (Array.isArray(v)) {
      if (index < 0) {
        const res: unknown[] = [];
        for (const e of v) {
          const sub = walk(e, index, keys, i);
          if (sub === undefined) res.push(undefined);
          else for (const x of sub) res.push(x);
        }
        return res;
      }
      if (index >= v.length) return undefined;
      v = v[index];
    }
    const k = keys[i]!;
    if (k !== '') v = at(v, k);
    if (v === undefined) return undefined;
  }
  return [v];
}

/** Walk + arrayAsStringsSkipNil: missing entries are skipped. */
function walkStrings(...keys: string[]): (arg: string | undefined) => Extractor {
  return (arg) => {
    const index = indexOf(arg);
    return (ev) => {
      const vals = walk(ev.top(keys[0]!), index, keys, 1);
      if (!vals) return undefined;
      const out: string[] = [];
      for (const v of vals) if (v !== undefined) out.push(valueText(v));
      return nonEmpty(out);
    };
  };
}

const CONTAINER_PATHS = new Map<string, readonly string[]>();
function containerPath(kind: string): readonly string[] {
  let p = CONTAINER_PATHS.get(kind);
  if (p === undefined) CONTAINER_PATHS.set(kind, (p = ['requestObject', 'spec', kind]));
  return p;
}

/** The entries of a pod container list (`[i]`: entry i only), or undefined. */
function containers(ev: AuditEvent, kind: string, index: number): unknown[] | undefined {
  const list = ev.at(containerPath(kind));
  if (!Array.isArray(list)) return undefined;
  if (index < 0) return list;
  return index < list.length ? [list[index]] : undefined;
}

/** One value per container, each required (a missing one makes the field absent, as upstream). */
function perContainerRequired(kind: string, key: string, map: (s: string) => string = (s) => s): (arg: string | undefined) => Extractor {
  return (arg) => {
    const index = indexOf(arg);
    return (ev) => {
      const list = containers(ev, kind, index);
      if (!list) return undefined;
      const out: string[] = [];
      for (const c of list) {
        const v = at(c, key);
        if (v === undefined) return undefined;
        out.push(map(valueText(v)));
      }
      return nonEmpty(out);
    };
  };
}

/** `.command` / `.args` arrays joined with single spaces; containers without them skipped. */
function perContainerJoined(kind: string, key: string): (arg: string | undefined) => Extractor {
  return (arg) => {
    const index = indexOf(arg);
    return (ev) => {
      const list = containers(ev, kind, index);
      if (!list) return undefined;
      const out: string[] = [];
      for (const c of list) {
        const v = at(c, key);
        if (Array.isArray(v)) out.push(v.map(valueText).join(' '));
        else if (v !== undefined) out.push(valueText(v));
      }
      return nonEmpty(out);
    };
  };
}

/** A securityContext value per container; containers without it are skipped. */
function perContainerSecCtx(kind: string, ...keys: string[]): (arg: string | undefined) => Extractor {
  return (arg) => {
    const index = indexOf(arg);
    return (ev) => {
      const list = containers(ev, kind, index);
      if (!list) return undefined;
      const out: string[] = [];
      for (const c of list) {
        const v = path(at(c, 'securityContext'), keys);
        if (v !== undefined) out.push(valueText(v));
      }
      return nonEmpty(out);
    };
  };
}

/**
 * The effective uid/gid per container: the container's securityContext value, else the pod's
 * securityContext value, else 0. (Upstream reads both directly under the container and under
 * spec, not under securityContext, so it reports 0 for real manifests; logwarden reads the
 * Kubernetes paths.)
 */
function perContainerEffective(kind: string, key: string): (arg: string | undefined) => Extractor {
  const podPath = ['requestObject', 'spec', 'securityContext', key];
  return (arg) => {
    const index = indexOf(arg);
    return (ev) => {
      const list = containers(ev, kind, index);
      if (!list) return undefined;
      const podValue = ev.at(podPath);
      const dflt = podValue === undefined ? '0' : valueText(podValue);
      const out: string[] = [];
      for (const c of list) {
        const v = path(c, ['securityContext', key]);
        out.push(v === undefined ? dflt : valueText(v));
      }
      return nonEmpty(out);
    };
  };
}

/** hostPort, else containerPort, of every port of every container, flattened. */
function perContainerHostPorts(kind: string): (arg: string | undefined) => Extractor {
  return (arg) => {
    const index = indexOf(arg);
    return (ev) => {
      const list = containers(ev, kind, index);
      if (!list) return undefined;
      const out: string[] = [];
      for (const c of list) {
        const ports = at(c, 'ports');
        if (ports === undefined) continue;
        if (!Array.isArray(ports)) return undefined;
        for (const p of ports) {
          const v = at(p, 'hostPort') ?? at(p, 'containerPort');
          if (v !== undefined) out.push(valueText(v));
        }
      }
      return nonEmpty(out);
    };
  };
}

/**
 * The repository of an image reference: without its digest (`@...`) and its tag (a `:` after the
 * last `/`), so a registry port stays (`host:5000/x:1` → `host:5000/x`). Upstream cuts at the
 * first `:`, which turns `host:5000/x` into `host`.
 */
export function imageRepository(image: string): string {
  let s = image;
  const at_ = s.indexOf('@');
  if (at_ >= 0) s = s.slice(0, at_);
  const colon = s.lastIndexOf(':');
  if (colon > s.lastIndexOf('/')) s = s.slice(0, colon);
  return s;
}

const SUBJECTS = ['requestObject', 'subjects'];
const VOLUME_TYPE_KEYS = ['requestObject', 'spec', 'volumes', ''];
const RULES = ['requestObject', 'rules'];
const SPEC_PORTS = ['requestObject', 'spec', 'ports'];
const SPEC_VOLUMES = ['requestObject', 'spec', 'volumes'];
const RESPONSE_NAME = ['responseObject', 'metadata', 'name'];
const REF_RESOURCE = ['objectRef', 'resource'];
const REF_SUBRESOURCE = ['objectRef', 'subresource'];

/** Names of binding subjects of one kind (entries missing kind or name skipped). */
function subjectNames(kind: string, withNamespace = false): Extractor {
  return (ev) => {
    const subjects = ev.at(SUBJECTS);
    if (!Array.isArray(subjects)) return undefined;
    const out: string[] = [];
    for (const s of subjects) {
      if (at(s, 'kind') !== kind) continue;
      const name = at(s, 'name');
      if (name === undefined) continue;
      if (withNamespace) {
        const ns = at(s, 'namespace');
        if (ns === undefined) continue;
        out.push(`${valueText(ns)}:${valueText(name)}`);
      } else out.push(valueText(name));
    }
    return nonEmpty(out);
  };
}

/** requestObject.rules[*].<key> arrays concatenated (`[i]`: rule i only). */
function roleRules(key: string): (arg: string | undefined) => Extractor {
  return (arg) => {
    const index = indexOf(arg);
    return (ev) => {
      let rules = ev.at(RULES);
      if (!Array.isArray(rules)) return undefined;
      if (index >= 0) {
        if (index >= rules.length) return undefined;
        rules = [rules[index]];
      }
      const out: string[] = [];
      for (const r of rules as unknown[]) {
        const v = at(r, key);
        if (Array.isArray(v)) for (const x of v) if (x !== undefined) out.push(valueText(x));
      }
      return nonEmpty(out);
    };
  };
}

/** RFC 6901 pointer → segments; a leading `/` is optional, `~1` → `/` then `~0` → `~`. */
export function pointerSegments(ptr: string): string[] | null {
  if (ptr === '') return null;
  const body = ptr.startsWith('/') ? ptr.slice(1) : ptr;
  return body.split('/').map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function jsonValue(arg: string | undefined): Extractor {
  const segs = pointerSegments(arg ?? '');
  if (segs === null) return (ev) => toJSONLine(ev.obj);
  if (segs.length === 1 && !(segs[0]! in Object.prototype)) {
    const k = segs[0]!;
    return (ev) => {
      const v = ev.top(k);
      return v === undefined ? undefined : typeof v === 'string' ? v : valueText(v);
    };
  }
  return (ev) => {
    const v = ev.atOwn(segs);
    return v === undefined ? undefined : valueText(v);
  };
}

function indented(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? Number(x) : x instanceof Uint8Array ? Buffer.from(x).toString('utf8') : x), 2);
}

const none = (f: Extractor) => () => f;

function def(name: string, type: ValueType, arg: ArgKind, description: string, make: (arg: string | undefined) => Extractor): FieldInfo {
  return { name, type, arg, description, make };
}

function containerFields(kind: 'containers' | 'initContainers' | 'ephemeralContainers', label: string): FieldInfo[] {
  const p = `ka.req.pod.${kind}`;
  const list: FieldInfo[] = [
    def(`${p}.name`, 'list', 'index', `Names of the ${label}`, perContainerRequired(kind, 'name')),
    def(`${p}.image`, 'list', 'index', `Images of the ${label}`, perContainerRequired(kind, 'image')),
    def(`${p}.image.repository`, 'list', 'index', `Image repositories of the ${label}`, perContainerRequired(kind, 'image', imageRepository)),
    def(`${p}.command`, 'list', 'index', `Commands of the ${label}, joined with spaces`, perContainerJoined(kind, 'command')),
    def(`${p}.args`, 'list', 'index', `Arguments of the ${label}, joined with spaces`, perContainerJoined(kind, 'args')),
    def(`${p}.privileged`, 'list', 'index', `securityContext.privileged of the ${label}`, perContainerSecCtx(kind, 'privileged')),
    def(`${p}.allow_privilege_escalation`, 'list', 'index', `securityContext.allowPrivilegeEscalation of the ${label}`, perContainerSecCtx(kind, 'allowPrivilegeEscalation')),
    def(`${p}.read_only_fs`, 'list', 'index', `securityContext.readOnlyRootFilesystem of the ${label}`, perContainerSecCtx(kind, 'readOnlyRootFilesystem')),
    def(`${p}.run_as_user`, 'list', 'index', `securityContext.runAsUser of the ${label}`, perContainerSecCtx(kind, 'runAsUser')),
    def(`${p}.eff_run_as_user`, 'list', 'index', `Effective uid of the ${label} (container, else pod, else 0)`, perContainerEffective(kind, 'runAsUser')),
    def(`${p}.run_as_group`, 'list', 'index', `securityContext.runAsGroup of the ${label}`, perContainerSecCtx(kind, 'runAsGroup')),
    def(`${p}.eff_run_as_group`, 'list', 'index', `Effective gid of the ${label} (container, else pod, else 0)`, perContainerEffective(kind, 'runAsGroup')),
    def(`${p}.proc_mount`, 'list', 'index', `securityContext.procMount of the ${label}`, perContainerSecCtx(kind, 'procMount')),
    def(`${p}.add_capabilities`, 'list', 'index', `securityContext.capabilities.add of the ${label} (JSON array text per container)`, perContainerSecCtx(kind, 'capabilities', 'add')),
  ];
  if (kind !== 'ephemeralContainers') list.push(def(`${p}.host_port`, 'list', 'index', `Host ports (else container ports) of the ${label}`, perContainerHostPorts(kind)));
  return list;
}

const K8S: FieldInfo[] = [
  def('ka.auditid', 'str', 'none', 'ID of the audit record', none(scalarAt('auditID'))),
  def('ka.stage', 'str', 'none', 'Audit stage of the record', none(scalarAt('stage'))),
  def('ka.auth.decision', 'str', 'none', 'Authorization decision', none(scalarAt('annotations', 'authorization.k8s.io/decision'))),
  def('ka.auth.reason', 'str', 'none', 'Authorization reason', none(scalarAt('annotations', 'authorization.k8s.io/reason'))),
  def('ka.auth.openshift.decision', 'str', 'none', 'OpenShift authentication decision', none(scalarAt('annotations', 'authentication.openshift.io/decision'))),
  def('ka.validations.admission.policy.failure', 'str', 'none', 'ValidatingAdmissionPolicy failure', none(scalarAt('annotations', 'validation.policy.admission.k8s.io/validation_failure'))),
  def('ka.security.pod.violations', 'str', 'none', 'Pod Security admission audit violations', none(scalarAt('annotations', 'pod-security.kubernetes.io/audit-violations'))),
  def('ka.auth.openshift.username', 'str', 'none', 'OpenShift authentication user name', none(scalarAt('annotations', 'authentication.openshift.io/username'))),
  def('ka.user.name', 'str', 'none', 'User who issued the request', none(scalarAt('user', 'username'))),
  def('ka.user.groups', 'list', 'none', 'Groups of the requesting user', none(arrayAt('user', 'groups'))),
  def('ka.impuser.name', 'str', 'none', 'Impersonated user', none(scalarAt('impersonatedUser', 'username'))),
  def('ka.verb', 'str', 'none', 'API verb', none(scalarAt('verb'))),
  def('ka.uri', 'str', 'none', 'Request URI', none(scalarAt('requestURI'))),
  def('ka.uri.param', 'str', 'key', 'First value of a query-string parameter of the request URI', (arg) => {
    const name = arg!;
    return (ev) => {
      const uri = ev.top('requestURI');
      if (uri === undefined) return undefined;
      const q = valueText(uri).indexOf('?');
      if (q < 0) return undefined;
      const s = valueText(uri);
      const hash = s.indexOf('#', q);
      const v = new URLSearchParams(s.slice(q + 1, hash < 0 ? undefined : hash)).get(name);
      return v === null ? undefined : v;
    };
  }),
  def('ka.target.name', 'str', 'none', 'Name of the object acted on', none(scalarAt('objectRef', 'name'))),
  def('ka.target.namespace', 'str', 'none', 'Namespace of the object acted on', none(scalarAt('objectRef', 'namespace'))),
  def('ka.target.resource', 'str', 'none', 'Resource acted on', none(scalarAt('objectRef', 'resource'))),
  def('ka.target.subresource', 'str', 'none', 'Subresource acted on', none(scalarAt('objectRef', 'subresource'))),
  def('ka.target.pod.name', 'str', 'none', 'Pod name of a plain pod request (no subresource)', () => (ev) => {
    if (ev.at(REF_RESOURCE) !== 'pods') return undefined;
    const sub = ev.at(REF_SUBRESOURCE);
    if (sub !== undefined && sub !== '') return undefined;
    const v = ev.at(RESPONSE_NAME);
    return v === undefined ? undefined : valueText(v);
  }),
  def('ka.req.binding.subjects', 'list', 'none', 'Subjects of a (Cluster)RoleBinding (JSON text each)', none(arrayAt('requestObject', 'subjects'))),
  def('ka.req.binding.subjects.user_names', 'list', 'none', 'Names of binding subjects of kind User', none(subjectNames('User'))),
  def('ka.req.binding.subjects.serviceaccount_names', 'list', 'none', 'Names of binding subjects of kind ServiceAccount', none(subjectNames('ServiceAccount'))),
  def('ka.req.binding.subjects.serviceaccount_ns_names', 'list', 'none', 'ServiceAccount subjects as namespace:name', none(subjectNames('ServiceAccount', true))),
  def('ka.req.binding.subjects.group_names', 'list', 'none', 'Names of binding subjects of kind Group', none(subjectNames('Group'))),
  def('ka.req.binding.role', 'str', 'none', 'Role referenced by a (Cluster)RoleBinding', none(scalarAt('requestObject', 'roleRef', 'name'))),
  def('ka.req.binding.subject.has_name', 'str', 'key', 'Deprecated: always "true" (as the k8saudit plugin returns)', () => () => 'true'),
  def('ka.req.configmap.name', 'str', 'none', 'ConfigMap name', none(scalarAt('objectRef', 'name'))),
  def('ka.req.configmap.obj', 'str', 'none', 'ConfigMap data as JSON text', none(scalarAt('requestObject', 'data'))),
  ...containerFields('containers', 'pod containers'),
  def('ka.req.container.image', 'str', 'none', 'Deprecated: image of the first container', () => {
    const f = perContainerRequired('containers', 'image')('0');
    return (ev) => (f(ev) as string[] | undefined)?.[0];
  }),
  def('ka.req.container.image.repository', 'str', 'none', 'Deprecated: repository of the first container image', () => {
    const f = perContainerRequired('containers', 'image', imageRepository)('0');
    return (ev) => (f(ev) as string[] | undefined)?.[0];
  }),
  def('ka.req.pod.host_ipc', 'str', 'none', 'Pod hostIPC', none(scalarAt('requestObject', 'spec', 'hostIPC'))),
  def('ka.req.pod.host_network', 'str', 'none', 'Pod hostNetwork', none(scalarAt('requestObject', 'spec', 'hostNetwork'))),
  def('ka.req.container.host_network', 'str', 'none', 'Deprecated alias of ka.req.pod.host_network', none(scalarAt('requestObject', 'spec', 'hostNetwork'))),
  def('ka.req.pod.host_pid', 'str', 'none', 'Pod hostPID', none(scalarAt('requestObject', 'spec', 'hostPID'))),
  def('ka.req.container.privileged', 'str', 'none', 'Deprecated: "true" when any container is privileged', () => (ev) => {
    const list = containers(ev, 'containers', -1);
    if (!list) return undefined;
    for (const c of list) if (path(c, ['securityContext', 'privileged']) === true) return 'true';
    return 'false';
  }),
  def('ka.req.pod.run_as_user', 'str', 'none', 'Pod runAsUser', none(scalarAt('requestObject', 'spec', 'securityContext', 'runAsUser'))),
  def('ka.req.pod.run_as_group', 'str', 'none', 'Pod runAsGroup', none(scalarAt('requestObject', 'spec', 'securityContext', 'runAsGroup'))),
  def('ka.req.role.rules', 'list', 'none', 'Rules of a (Cluster)Role (JSON text each)', none(arrayAt('requestObject', 'rules'))),
  def('ka.req.role.rules.apiGroups', 'list', 'index', 'API groups of the role rules', roleRules('apiGroups')),
  def('ka.req.role.rules.nonResourceURLs', 'list', 'index', 'Non-resource URLs of the role rules', roleRules('nonResourceURLs')),
  def('ka.req.role.rules.verbs', 'list', 'index', 'Verbs of the role rules', roleRules('verbs')),
  def('ka.req.role.rules.resources', 'list', 'index', 'Resources of the role rules', roleRules('resources')),
  def('ka.req.pod.fs_group', 'str', 'none', 'Pod fsGroup', none(scalarAt('requestObject', 'spec', 'securityContext', 'fsGroup'))),
  def('ka.req.pod.supplemental_groups', 'list', 'none', 'Pod supplementalGroups', none(arrayAt('requestObject', 'spec', 'securityContext', 'supplementalGroups'))),
  def('ka.req.service.type', 'str', 'none', 'Service type', none(scalarAt('requestObject', 'spec', 'type'))),
  def('ka.req.service.ports', 'list', 'index', 'Service ports as JSON text (`[i]`: port i)', (arg) => {
    const index = indexOf(arg);
    return (ev) => {
      const ports = ev.at(SPEC_PORTS);
      if (ports === undefined) return undefined;
      if (index < 0) return [valueText(ports)];
      if (!Array.isArray(ports) || index >= ports.length) return undefined;
      return [valueText(ports[index])];
    };
  }),
  def('ka.req.pod.volumes.hostpath', 'list', 'index', 'hostPath paths of the pod volumes', walkStrings('requestObject', 'spec', 'volumes', 'hostPath', 'path')),
  def('ka.req.volume.hostpath', 'str', 'key', 'Deprecated: "true" when a hostPath volume uses the path (or prefix, with a trailing *)', (arg) => {
    const a = arg!;
    const prefix = a.endsWith('*') ? a.slice(0, -1) : undefined;
    const paths = walkStrings('requestObject', 'spec', 'volumes', 'hostPath', 'path')(undefined);
    return (ev) => {
      const v = ev.at(SPEC_VOLUMES);
      if (v === undefined) return undefined;
      const list = (paths(ev) as string[] | undefined) ?? [];
      for (const p of list) if (prefix !== undefined ? p.startsWith(prefix) : p === a) return 'true';
      return 'false';
    };
  }),
  def('ka.req.pod.volumes.flexvolume_driver', 'list', 'index', 'flexVolume drivers of the pod volumes', walkStrings('requestObject', 'spec', 'volumes', 'flexVolume', 'driver')),
  def('ka.req.pod.volumes.volume_type', 'list', 'index', 'Volume source types of the pod volumes', (arg) => {
    const index = indexOf(arg);
    return (ev) => {
      const vals = walk(ev.top('requestObject'), index, VOLUME_TYPE_KEYS, 1);
      if (!vals) return undefined;
      const out: string[] = [];
      for (const v of vals) {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) continue;
        for (const k of Object.keys(v)) if (k !== 'name') out.push(k);
      }
      return nonEmpty(out);
    };
  }),
  def('ka.resp.name', 'str', 'none', 'Name of the object in the response', none(scalarAt('responseObject', 'metadata', 'name'))),
  def('ka.response.code', 'str', 'none', 'Response status code', none(scalarAt('responseStatus', 'code'))),
  def('ka.response.reason', 'str', 'none', 'Response status reason', none(scalarAt('responseStatus', 'reason'))),
  def('ka.useragent', 'str', 'none', 'Client user agent', none(scalarAt('userAgent'))),
  def('ka.sourceips', 'list', 'index', 'Client source IPs (`[i]`: entry i)', (arg) => {
    const index = indexOf(arg);
    return (ev) => {
      const ips = ev.top('sourceIPs');
      if (!Array.isArray(ips)) return undefined;
      if (index < 0) return nonEmpty(ips.map(valueText));
      return index < ips.length ? [valueText(ips[index])] : undefined;
    };
  }),
  def('ka.cluster.name', 'str', 'none', 'Cluster name annotation', none(scalarAt('annotations', 'cluster_name'))),
  ...containerFields('initContainers', 'pod init containers'),
  ...containerFields('ephemeralContainers', 'pod ephemeral containers'),
];

/** ka.* fields are absent on events without a top-level auditID (k8saudit ExtractFromJSON). */
function auditOnly(f: FieldInfo): FieldInfo {
  return {
    ...f,
    make(arg) {
      const x = f.make(arg);
      return (ev) => {
        if (ev.auditID === 0) ev.auditID = ev.top('auditID') === undefined ? 2 : 1;
        return ev.auditID === 2 ? undefined : x(ev);
      };
    },
  };
}

function jsonFields(prefix: 'json' | 'jevt'): FieldInfo[] {
  return [
    def(`${prefix}.value`, 'str', 'key', 'Value picked by a JSON pointer (RFC 6901)', jsonValue),
    def(`${prefix}.obj`, 'str', 'none', 'The whole event, indented JSON', () => (ev) => indented(ev.obj)),
    def(`${prefix}.rawtime`, 'str', 'none', 'Event time in nanoseconds since the epoch', () => (ev) => (eventTime(ev) ? rawTime(ev.sec, ev.nsec) : undefined)),
  ];
}

const EVT: FieldInfo[] = [
  def('evt.time', 'str', 'none', 'Event time of day, local time with nanoseconds', () => (ev) => (eventTime(ev) ? timeOfDay(ev.sec, ev.nsec) : undefined)),
  def('evt.time.s', 'str', 'none', 'Event time of day, local time without nanoseconds', () => (ev) => (eventTime(ev) ? timeOfDay(ev.sec, 0).slice(0, 8) : undefined)),
  def(
    'evt.time.iso8601',
    'str',
    'none',
    'Event time, ISO 8601 with nanoseconds and UTC offset',
    () => (ev) => (eventTime(ev) ? `${localDate(ev.sec)}T${timeOfDay(ev.sec, ev.nsec)}${tzOffset(ev.sec)}` : undefined),
  ),
  def('evt.datetime', 'str', 'none', 'Event date and time, local time with nanoseconds', () => (ev) => (eventTime(ev) ? `${localDate(ev.sec)} ${timeOfDay(ev.sec, ev.nsec)}` : undefined)),
  def('evt.datetime.s', 'str', 'none', 'Event date and time, local time without nanoseconds', () => (ev) => (eventTime(ev) ? `${localDate(ev.sec)} ${timeOfDay(ev.sec, 0).slice(0, 8)}` : undefined)),
  def('evt.rawtime', 'num', 'none', 'Event time in nanoseconds since the epoch', () => (ev) => (eventTime(ev) ? ev.sec * 1e9 + ev.nsec : undefined)),
  def('evt.rawtime.s', 'num', 'none', 'Seconds part of the event time', () => (ev) => (eventTime(ev) ? ev.sec : undefined)),
  def('evt.rawtime.ns', 'num', 'none', 'Nanoseconds part of the event time', () => (ev) => (eventTime(ev) ? ev.nsec : undefined)),
  def('evt.source', 'str', 'none', 'Event source (k8s_audit)', () => () => 'k8s_audit'),
  def('evt.pluginname', 'str', 'none', 'Plugin that produced the event (k8saudit)', () => () => 'k8saudit'),
  def('evt.hostname', 'str', 'none', 'Host name of the detecting process', () => (ev) => ev.hostname),
];

export const FIELDS: ReadonlyMap<string, FieldInfo> = new Map([...K8S.map(auditOnly), ...jsonFields('json'), ...jsonFields('jevt'), ...EVT].map((f) => [f.name, f]));

/** Field names sorted longest first (output formats pick the longest known name, as libsinsp). */
export const FIELD_NAMES_LONGEST_FIRST: readonly string[] = [...FIELDS.keys()].sort((a, b) => b.length - a.length);

/** Validates a field reference; returns an error text or undefined. */
export function checkFieldArg(f: FieldInfo, arg: string | undefined): string | undefined {
  if (f.arg === 'none') return arg === undefined ? undefined : `field '${f.name}' does not accept an argument`;
  if (f.arg === 'key') return arg === undefined || arg === '' ? `field '${f.name}' requires an argument` : undefined;
  if (arg === undefined) return undefined;
  return /^[0-9]+$/.test(arg) ? undefined : `field '${f.name}' requires a numeric index argument, found '${arg}'`;
}

/**
 * A kustomize build for exactly the subset deploy/kustomize uses, so that tests can render the
 * manifests without a kustomize binary (neither npm nor Debian ships a current one).
 *
 * Supported, with kustomize v5 semantics:
 * - `resources`: YAML files (multi-document) and directories holding a kustomization
 * - `components`: directories holding a `kind: Component` kustomization, applied in order to
 *   what has been accumulated so far (its resources join it; its generators and patches run
 *   over all of it), before the including kustomization's own generators and transformers
 * - `configMapGenerator` / `secretGenerator` with `files` (`path` or `key=path`), `literals`,
 *   `envs`, per-generator `namespace`; names get kustomize's content hash suffix
 * - `namespace`, `labels` (`pairs` on metadata.labels only), `images` (newName, newTag, digest)
 * - `patches` with `path` to a strategic-merge patch (one or more documents), matched by kind,
 *   name and (when the patch names one) namespace
 * - references to generated ConfigMaps and Secrets from pod specs (volumes, projected sources,
 *   env valueFrom, envFrom) are rewritten to the hashed names
 * Anything else in a kustomization is an error, never silently ignored. Where the real
 * kustomize is installed, test/unit/deploy checks that both produce the same objects.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  // Tests walk arbitrary manifest fields.
  [k: string]: any;
};

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];
const SUPPORTED_FIELDS = new Set(['apiVersion', 'kind', 'namespace', 'labels', 'resources', 'components', 'configMapGenerator', 'secretGenerator', 'patches', 'images']);
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PriorityClass',
  'StorageClass',
  'PersistentVolume',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
]);

interface Generated {
  kind: 'ConfigMap' | 'Secret';
  /** The name before the hash suffix, as workloads reference it. */
  baseName: string;
  obj: K8sObject;
}

interface Built {
  objects: K8sObject[];
  generated: Generated[];
}

/** Kubernetes reads manifests as YAML 1.1 (sigs.k8s.io/yaml): `0400` is octal there. */
export function parseManifests(text: string, file = '<input>'): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text, { version: '1.1' })) {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0]!.message}`);
    const obj = doc.toJS() as K8sObject | null;
    if (obj == null) continue;
    if (typeof obj !== 'object' || !obj.kind || !obj.metadata?.name) throw new Error(`${file}: a document without kind or metadata.name`);
    out.push(obj);
  }
  return out;
}

/**
 * `overlays/<overlay>` of a copy of the kustomize tree `dir`, with `components/<name>` added as
 * `kustomize edit add component ../../components/<name>` run in the overlay adds them.
 */
export function overlayWithComponents(dir: string, overlay: string, components: string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'logwarden-kustomize-'));
  cpSync(dir, root, { recursive: true });
  appendFileSync(join(root, 'overlays', overlay, 'kustomization.yaml'), `components:\n${components.map((c) => `  - ../../components/${c}\n`).join('')}`);
  return join(root, 'overlays', overlay);
}

export function kustomizeBuild(dir: string): K8sObject[] {
  const built = build(resolve(dir));
  for (const g of built.generated) g.obj.metadata.name = `${g.baseName}-${nameHash(g.obj)}`;
  fixNameReferences(built);
  return built.objects;
}

/**
 * Builds the kustomization in `dir`. A component (`into` given) adds to and transforms the
 * accumulation of the kustomization that lists it, as kustomize's accumulateComponents does.
 */
function build(dir: string, into?: Built): Built {
  const file = KUSTOMIZATION_FILES.map((f) => join(dir, f)).find((f) => existsSync(f));
  if (!file) throw new Error(`${dir}: no kustomization.yaml`);
  const k = parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  for (const key of Object.keys(k)) {
    if (!SUPPORTED_FIELDS.has(key)) throw new Error(`${file}: '${key}' is not supported by this renderer`);
  }
  const isComponent = k.kind === 'Component';
  if (into && !isComponent) throw new Error(`${file}: listed in components but its kind is ${String(k.kind ?? 'Kustomization')}, not Component`);
  if (!into && isComponent) throw new Error(`${file}: a Component is applied from another kustomization's components, not built or listed as a resource`);

  const objects: K8sObject[] = into?.objects ?? [];
  const generated: Generated[] = into?.generated ?? [];
  for (const r of (k.resources as string[] | undefined) ?? []) {
    const path = resolve(dir, r);
    if (statSync(path).isDirectory()) {
      const sub = build(path);
      objects.push(...sub.objects);
      generated.push(...sub.generated);
    } else {
      objects.push(...parseManifests(readFileSync(path, 'utf8'), path));
    }
  }
  for (const c of (k.components as string[] | undefined) ?? []) build(resolve(dir, c), { objects, generated });
  for (const g of (k.configMapGenerator as GeneratorSpec[] | undefined) ?? []) {
    const obj = generate('ConfigMap', g, dir);
    objects.push(obj);
    generated.push({ kind: 'ConfigMap', baseName: g.name, obj });
  }
  for (const g of (k.secretGenerator as GeneratorSpec[] | undefined) ?? []) {
    const obj = generate('Secret', g, dir);
    objects.push(obj);
    generated.push({ kind: 'Secret', baseName: g.name, obj });
  }

  // kustomize's builtin transformer order: patches, namespace, labels, images.
  for (const p of (k.patches as { path?: string; [k: string]: unknown }[] | undefined) ?? []) {
    const extra = Object.keys(p).filter((key) => key !== 'path');
    if (!p.path || extra.length) throw new Error(`${file}: only 'patches: - path: FILE' is supported (found ${Object.keys(p).join(', ')})`);
    for (const patch of parseManifests(readFileSync(resolve(dir, p.path), 'utf8'), p.path)) applyPatch(objects, patch, p.path);
  }
  if (typeof k.namespace === 'string') {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  for (const l of (k.labels as LabelSpec[] | undefined) ?? []) {
    if (l.includeSelectors || l.includeTemplates) throw new Error(`${file}: labels with includeSelectors/includeTemplates are not supported`);
    for (const o of objects) o.metadata.labels = { ...(o.metadata.labels ?? {}), ...l.pairs };
  }
  for (const img of (k.images as ImageSpec[] | undefined) ?? []) {
    for (const o of objects) for (const c of containersOf(o)) c.image = setImage(c.image as string, img);
  }
  return { objects, generated };
}

interface GeneratorSpec {
  name: string;
  namespace?: string;
  files?: string[];
  literals?: string[];
  envs?: string[];
  type?: string;
  [k: string]: unknown;
}

interface LabelSpec {
  pairs: Record<string, string>;
  includeSelectors?: boolean;
  includeTemplates?: boolean;
}

interface ImageSpec {
  name: string;
  newName?: string;
  newTag?: string;
  digest?: string;
}

function generate(kind: 'ConfigMap' | 'Secret', g: GeneratorSpec, dir: string): K8sObject {
  const unknown = Object.keys(g).filter((key) => !['name', 'namespace', 'files', 'literals', 'envs', 'type'].includes(key));
  if (unknown.length) throw new Error(`${kind} generator ${g.name}: ${unknown.join(', ')} not supported by this renderer`);
  const data: Record<string, string> = {};
  const put = (key: string, value: string) => {
    if (key in data) throw new Error(`${kind} generator ${g.name}: key '${key}' defined twice`);
    data[key] = value;
  };
  for (const f of g.files ?? []) {
    const eq = f.indexOf('=');
    const [key, path] = eq >= 0 ? [f.slice(0, eq), f.slice(eq + 1)] : [basename(f), f];
    put(key, readFileSync(resolve(dir, path), 'utf8'));
  }
  for (const lit of g.literals ?? []) {
    const eq = lit.indexOf('=');
    if (eq <= 0) throw new Error(`${kind} generator ${g.name}: literal '${lit}' is not KEY=VALUE`);
    put(lit.slice(0, eq), unquote(lit.slice(eq + 1)));
  }
  for (const envFile of g.envs ?? []) {
    for (const raw of readFileSync(resolve(dir, envFile), 'utf8').split('\n')) {
      const line = raw.replace(/^\s+/, '').replace(/\r$/, '');
      if (!line || line.startsWith('#')) continue;
      const eq = line.indexOf('=');
      if (eq <= 0) throw new Error(`${envFile}: line '${line}' is not KEY=VALUE`);
      put(line.slice(0, eq), line.slice(eq + 1));
    }
  }
  const metadata: K8sObject['metadata'] = { name: g.name };
  if (g.namespace) metadata.namespace = g.namespace;
  if (kind === 'ConfigMap') return { apiVersion: 'v1', kind, metadata, data };
  const encoded = Object.fromEntries(Object.entries(data).map(([key, v]) => [key, encodeBase64(v)]));
  return { apiVersion: 'v1', kind, metadata, type: g.type ?? 'Opaque', data: encoded };
}

/**
 * kustomize's generators/utils.go encodeBase64: values of 70 or more base64 characters are cut
 * into lines of 70, each ending in a newline (the hash suffix is computed over this form).
 */
function encodeBase64(value: string): string {
  const b64 = Buffer.from(value, 'utf8').toString('base64');
  if (b64.length < 70) return b64;
  let out = '';
  for (let i = 0; i < b64.length; i += 70) out += `${b64.slice(i, i + 70)}\n`;
  return out;
}

function unquote(v: string): string {
  return v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.at(-1) === v[0] ? v.slice(1, -1) : v;
}

/**
 * kustomize api/hasher: sha256 over Go's json.Marshal of {data, kind, name[, type]} (map keys
 * sorted, HTML characters escaped), the first 10 hex digits with 0,1,3,a,e replaced so that
 * the suffix never reads as a number or a word. `name` is always "": the hasher looks the name
 * up as the single field "metadata/name", which no object has.
 */
export function nameHash(obj: K8sObject): string {
  const enc: Record<string, unknown> = { kind: obj.kind, name: '', data: obj.data ?? {} };
  if (obj.kind === 'Secret') enc.type = obj.type;
  const hex = createHash('sha256').update(goJson(enc)).digest('hex');
  const swap: Record<string, string> = { '0': 'g', '1': 'h', '3': 'k', a: 'm', e: 't' };
  return [...hex.slice(0, 10)].map((c) => swap[c] ?? c).join('');
}

function goJson(v: unknown): string {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const keys = Object.keys(v).sort();
    return `{${keys.map((key) => `${goJson(key)}:${goJson((v as Record<string, unknown>)[key])}`).join(',')}}`;
  }
  if (Array.isArray(v)) return `[${v.map(goJson).join(',')}]`;
  const s = JSON.stringify(v);
  return typeof v === 'string' ? s.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : s;
}

function applyPatch(objects: K8sObject[], patch: K8sObject, file: string): void {
  const targets = objects.filter(
    (o) => o.kind === patch.kind && o.metadata.name === patch.metadata.name && (patch.metadata.namespace === undefined || o.metadata.namespace === patch.metadata.namespace),
  );
  if (targets.length !== 1) {
    throw new Error(`${file}: patch for ${patch.kind}/${patch.metadata.name} matches ${targets.length} objects, expected 1`);
  }
  const target = targets[0]!;
  // Custom resources carry no merge keys: kustomize treats all their lists as atomic.
  const builtin = BUILTIN_API.test(target.apiVersion);
  const merged = mergeMap(target as unknown as Record<string, Json>, patch as unknown as Record<string, Json>, [], builtin);
  for (const key of Object.keys(target)) delete (target as Record<string, unknown>)[key];
  Object.assign(target, merged);
}

/** Strategic-merge list keys of the built-in kinds used here (k8s.io/api patchMergeKey tags). */
function mergeKey(path: string[], items: Json[]): string | undefined {
  const field = path.at(-1);
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'ephemeralContainers':
    case 'volumes':
    case 'env':
    case 'imagePullSecrets':
      return 'name';
    case 'volumeMounts':
      return 'mountPath';
    case 'ports': {
      const first = items.find((i) => i && typeof i === 'object') as Record<string, Json> | undefined;
      return first && 'containerPort' in first ? 'containerPort' : 'port';
    }
    default:
      return undefined;
  }
}

function mergeMap(orig: Record<string, Json>, patch: Record<string, Json>, path: string[], builtin: boolean): Record<string, Json> {
  const out: Record<string, Json> = { ...orig };
  for (const [key, pv] of Object.entries(patch)) {
    if (key === '$patch') continue;
    if (pv === null) {
      delete out[key];
      continue;
    }
    const ov = out[key];
    if (isMap(pv) && isMap(ov)) out[key] = mergeMap(ov, pv, [...path, key], builtin);
    else if (Array.isArray(pv) && Array.isArray(ov)) out[key] = mergeList(ov, pv, [...path, key], builtin);
    else out[key] = pv;
  }
  return out;
}

const BUILTIN_API = /^(v1|apps\/v1|batch\/v1|policy\/v1|networking\.k8s\.io\/v1|rbac\.authorization\.k8s\.io\/v1)$/;

function mergeList(orig: Json[], patch: Json[], path: string[], builtin: boolean): Json[] {
  const key = builtin ? mergeKey(path, [...patch, ...orig]) : undefined;
  if (!key) return patch;
  // apimachinery's order without $setElementOrder: the patch's items first, then the
  // original items it did not mention, each in its own order.
  const out: Json[] = [];
  const used = new Set<number>();
  for (const p of patch) {
    if (!isMap(p)) throw new Error(`strategic merge: ${path.join('.')} items must be maps`);
    const i = orig.findIndex((o) => isMap(o) && o[key] === p[key]);
    if (p.$patch === 'delete') {
      if (i >= 0) used.add(i);
      continue;
    }
    if (i >= 0) {
      used.add(i);
      out.push(mergeMap(orig[i] as Record<string, Json>, p, path, builtin));
    } else {
      out.push(p);
    }
  }
  orig.forEach((o, i) => {
    if (!used.has(i)) out.push(o);
  });
  return out;
}

function isMap(v: unknown): v is Record<string, Json> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The pod spec of a workload or pod, if any. */
export function podSpecOf(o: K8sObject): Record<string, unknown> | undefined {
  if (o.kind === 'Pod') return o.spec as Record<string, unknown>;
  const spec = o.spec as Record<string, any> | undefined;
  if (o.kind === 'CronJob') return spec?.jobTemplate?.spec?.template?.spec;
  return spec?.template?.spec;
}

export function containersOf(o: K8sObject): Record<string, unknown>[] {
  const pod = podSpecOf(o) as Record<string, Record<string, unknown>[] | undefined> | undefined;
  if (!pod) return [];
  return [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
}

/** kustomize's image transformer: match on the name without tag or digest. */
function setImage(image: string, spec: ImageSpec): string {
  const at = image.indexOf('@');
  const lastColon = image.lastIndexOf(':');
  const tagStart = at >= 0 ? at : lastColon > image.lastIndexOf('/') ? lastColon : -1;
  const name = tagStart >= 0 ? image.slice(0, tagStart) : image;
  const suffix = tagStart >= 0 ? image.slice(tagStart) : '';
  if (name !== spec.name) return image;
  const newName = spec.newName ?? name;
  if (spec.digest) return `${newName}@${spec.digest}`;
  if (spec.newTag) return `${newName}:${spec.newTag}`;
  return newName + suffix;
}

function fixNameReferences(built: Built): void {
  const find = (kind: 'ConfigMap' | 'Secret', name: string, ns: string | undefined) =>
    built.generated.find((g) => g.kind === kind && g.baseName === name && g.obj.metadata.namespace === ns)?.obj.metadata.name;
  for (const o of built.objects) {
    const pod = podSpecOf(o) as Record<string, any> | undefined;
    if (!pod) continue;
    const ns = o.metadata.namespace;
    const rename = (holder: Record<string, any> | undefined, field: string, kind: 'ConfigMap' | 'Secret') => {
      if (!holder || typeof holder[field] !== 'string') return;
      holder[field] = find(kind, holder[field], ns) ?? holder[field];
    };
    for (const v of pod.volumes ?? []) {
      rename(v.configMap, 'name', 'ConfigMap');
      rename(v.secret, 'secretName', 'Secret');
      for (const s of v.projected?.sources ?? []) {
        rename(s.configMap, 'name', 'ConfigMap');
        rename(s.secret, 'name', 'Secret');
      }
    }
    for (const c of containersOf(o) as Record<string, any>[]) {
      for (const e of c.env ?? []) {
        rename(e.valueFrom?.configMapKeyRef, 'name', 'ConfigMap');
        rename(e.valueFrom?.secretKeyRef, 'name', 'Secret');
      }
      for (const e of c.envFrom ?? []) {
        rename(e.configMapRef, 'name', 'ConfigMap');
        rename(e.secretRef, 'name', 'Secret');
      }
    }
  }
}

/**
 * Reading rendered Kubernetes objects the way the kubelet would: which ConfigMap or Secret a
 * volume or env var points at, what a container's environment resolves to, and which files a
 * projected volume puts where.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { K8sObject } from './kustomize.js';
import { podSpecOf } from './kustomize.js';

export type Obj = Record<string, any>;

export function find(objects: K8sObject[], kind: string, name: string, namespace?: string): K8sObject {
  const hits = objects.filter((o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace));
  if (hits.length !== 1) throw new Error(`expected one ${kind}/${name}${namespace ? ` in ${namespace}` : ''}, found ${hits.length}`);
  return hits[0]!;
}

export function pod(o: K8sObject): Obj {
  const spec = podSpecOf(o);
  if (!spec) throw new Error(`${o.kind}/${o.metadata.name} has no pod template`);
  return spec as Obj;
}

export function container(o: K8sObject, name: string): Obj {
  const c = (pod(o).containers as Obj[]).find((x) => x.name === name);
  if (!c) throw new Error(`${o.kind}/${o.metadata.name} has no container ${name}`);
  return c;
}

/**
 * A pod volume by name. A StatefulSet's volumeClaimTemplates are volumes too: the controller
 * gives each pod the claim `<template>-<statefulset>-<ordinal>` under the template's name.
 */
export function volume(o: K8sObject, name: string): Obj {
  const v = ((pod(o).volumes ?? []) as Obj[]).find((x) => x.name === name);
  if (v) return v;
  const t = o.kind === 'StatefulSet' ? ((o.spec.volumeClaimTemplates ?? []) as Obj[]).find((x) => x.metadata?.name === name) : undefined;
  if (t) return { name, persistentVolumeClaim: { claimName: `${name}-${o.metadata.name}-<ordinal>` } };
  throw new Error(`${o.kind}/${o.metadata.name} has no volume ${name}`);
}

/** The data of a ConfigMap, or the decoded data of a Secret, in the workload's namespace. */
export function dataOf(objects: K8sObject[], kind: 'ConfigMap' | 'Secret', name: string, namespace: string | undefined): Record<string, string> {
  const o = find(objects, kind, name, namespace);
  const data = (o.data ?? {}) as Record<string, string>;
  if (kind === 'ConfigMap') return data;
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

/** A container's environment as the kubelet builds it (envFrom first, then env). */
export function containerEnv(objects: K8sObject[], workload: K8sObject, c: Obj): Record<string, string> {
  const ns = workload.metadata.namespace;
  const env: Record<string, string> = {};
  for (const src of (c.envFrom ?? []) as Obj[]) {
    if (src.configMapRef) Object.assign(env, dataOf(objects, 'ConfigMap', src.configMapRef.name, ns));
    if (src.secretRef) Object.assign(env, dataOf(objects, 'Secret', src.secretRef.name, ns));
  }
  for (const e of (c.env ?? []) as Obj[]) {
    if ('value' in e) env[e.name] = String(e.value);
    else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      const data = dataOf(objects, 'Secret', ref.name, ns);
      if (!(ref.key in data)) throw new Error(`Secret ${ref.name} has no key ${ref.key}`);
      env[e.name] = data[ref.key]!;
    } else if (e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      env[e.name] = dataOf(objects, 'ConfigMap', ref.name, ns)[ref.key]!;
    } else if (e.valueFrom?.fieldRef) {
      env[e.name] = `<${e.valueFrom.fieldRef.fieldPath}>`;
    }
  }
  return env;
}

/**
 * The files a container sees: path -> content for every ConfigMap, Secret and projected
 * volume mounted in it. `items` select and rename keys; without items every key is a file.
 */
export function mountedFiles(objects: K8sObject[], workload: K8sObject, c: Obj): Map<string, string> {
  const ns = workload.metadata.namespace;
  const files = new Map<string, string>();
  const add = (dir: string, kind: 'ConfigMap' | 'Secret', name: string, items?: { key: string; path: string }[]) => {
    const data = dataOf(objects, kind, name, ns);
    const pick = items ?? Object.keys(data).map((key) => ({ key, path: key }));
    for (const { key, path } of pick) {
      if (!(key in data)) throw new Error(`${kind} ${name} has no key ${key}`);
      files.set(join(dir, path), data[key]!);
    }
  };
  for (const m of (c.volumeMounts ?? []) as Obj[]) {
    const v = volume(workload, m.name);
    if (v.configMap) add(m.mountPath, 'ConfigMap', v.configMap.name, v.configMap.items);
    if (v.secret) add(m.mountPath, 'Secret', v.secret.secretName, v.secret.items);
    for (const s of (v.projected?.sources ?? []) as Obj[]) {
      if (s.configMap) add(m.mountPath, 'ConfigMap', s.configMap.name, s.configMap.items);
      if (s.secret) add(m.mountPath, 'Secret', s.secret.name, s.secret.items);
    }
  }
  return files;
}

/** Writes mounted files under `root` (so /etc/logwarden/x becomes root/etc/logwarden/x). */
export function materialize(files: Map<string, string>, root: string): void {
  for (const [path, content] of files) {
    const target = join(root, path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, content);
  }
}

/** The mount of `path` in a container: the volumeMount whose mountPath contains it. */
export function mountFor(c: Obj, path: string): Obj | undefined {
  return ((c.volumeMounts ?? []) as Obj[]).find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
}

/** Pod labels match a label selector's matchLabels. */
export function selects(selector: Obj | undefined, labels: Record<string, string> | undefined): boolean {
  const want = (selector?.matchLabels ?? selector ?? {}) as Record<string, string>;
  return Object.entries(want).every(([k, v]) => labels?.[k] === v);
}

/** A named container port's number. */
export function portNumber(c: Obj, port: string | number): number {
  if (typeof port === 'number') return port;
  const p = ((c.ports ?? []) as Obj[]).find((x) => x.name === port);
  if (!p) throw new Error(`container ${c.name} has no port named ${port}`);
  return p.containerPort;
}

/** Fluent Bit classic-format sections ([UPSTREAM], [NODE], ...) as lower-cased key maps. */
export function parseClassic(text: string): { name: string; props: Record<string, string> }[] {
  const sections: { name: string; props: Record<string, string> }[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      sections.push({ name: header[1]!.toUpperCase(), props: {} });
      continue;
    }
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (!m || !sections.length) throw new Error(`not a classic config line: ${raw}`);
    sections.at(-1)!.props[m[1]!.toLowerCase()] = m[2]!.trim();
  }
  return sections;
}

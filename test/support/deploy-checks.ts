/**
 * Assertions shared by the kustomize and Helm tests: the same deployment, rendered two ways,
 * must wire Fluent Bit and logwarden together the same way.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadConfigFile, type LoadedConfig } from '../../src/config/load.js';
import { parseBool } from '../../src/config/schema.js';
import type { K8sObject } from './kustomize.js';
import { container, containerEnv, materialize, mountFor, mountedFiles, pod, portNumber, type Obj } from './deploy.js';

/** The restricted Pod Security Standard, container level (plus the pod-level seccomp default). */
export function assertRestricted(workload: K8sObject, c: Obj): void {
  const podSc = (pod(workload).securityContext ?? {}) as Obj;
  const sc = (c.securityContext ?? {}) as Obj;
  const who = `${workload.kind}/${workload.metadata.name} container ${c.name}`;
  assert.equal(sc.runAsNonRoot ?? podSc.runAsNonRoot, true, `${who}: runAsNonRoot`);
  assert.notEqual(sc.runAsUser ?? podSc.runAsUser, 0, `${who}: runAsUser 0`);
  assert.equal(sc.runAsUser ?? podSc.runAsUser, 10001, `${who}: the image's uid`);
  assertHardened(workload, c);
}

/** What every container here has, the Fluent Bit one included. */
export function assertHardened(workload: K8sObject, c: Obj): void {
  const podSc = (pod(workload).securityContext ?? {}) as Obj;
  const sc = (c.securityContext ?? {}) as Obj;
  const who = `${workload.kind}/${workload.metadata.name} container ${c.name}`;
  assert.equal(sc.allowPrivilegeEscalation, false, `${who}: allowPrivilegeEscalation`);
  assert.equal(sc.readOnlyRootFilesystem, true, `${who}: readOnlyRootFilesystem`);
  assert.notEqual(sc.privileged, true, `${who}: privileged`);
  assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${who}: capabilities.drop`);
  assert.equal(sc.capabilities?.add, undefined, `${who}: capabilities.add`);
  assert.equal((sc.seccompProfile ?? podSc.seccompProfile)?.type, 'RuntimeDefault', `${who}: seccompProfile`);
  assert.equal(pod(workload).hostNetwork, undefined, `${who}: hostNetwork`);
  assert.equal(pod(workload).hostPID, undefined, `${who}: hostPID`);
}

export interface LoadedPipeline {
  loaded: LoadedConfig;
  env: Record<string, string>;
  files: Map<string, string>;
  input: Record<string, unknown>;
}

/**
 * Loads the pipeline a logwarden container runs with the project's own loader: the file named
 * by `-c`, from the volumes mounted in the container, with the container's environment.
 */
export function loadContainerPipeline(objects: K8sObject[], workload: K8sObject): LoadedPipeline {
  const c = container(workload, 'logwarden');
  const args = c.args as string[];
  assert.deepEqual(args.slice(0, 2), ['run', '-c']);
  const path = args[2]!;
  const files = mountedFiles(objects, workload, c);
  assert.ok(files.has(path), `-c ${path} is not in a mounted volume (have ${[...files.keys()].join(', ')})`);
  const env = containerEnv(objects, workload, c);
  // The mounted files laid out under a temporary root; a variable naming one of them (an
  // include switched on by the environment) points there too.
  const root = mkdtempSync(join(tmpdir(), 'logwarden-deploy-'));
  materialize(files, root);
  const loaderEnv = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, files.has(v) ? join(root, v) : v]));
  const loaded = loadConfigFile(join(root, path), loaderEnv);
  assert.equal(loaded.inputs.length, 1);
  assert.equal(loaded.inputs[0]!.name, 'forward');
  return { loaded, env, files, input: loaded.inputs[0]!.raw.values };
}

/** Probes on the named port `http`, which is the pipeline's http_port. */
export function assertProbes(workload: K8sObject, p: LoadedPipeline): void {
  const c = container(workload, 'logwarden');
  assert.equal(parseBool(p.loaded.service.values.http_server), true, 'http_server is on');
  const httpPort = Number(p.loaded.service.values.http_port);
  for (const [probe, path] of [
    ['livenessProbe', '/healthz'],
    ['readinessProbe', '/readyz'],
    ['startupProbe', '/healthz'],
  ] as const) {
    assert.equal(c[probe]?.httpGet?.path, path, `${probe} path`);
    assert.equal(portNumber(c, c[probe].httpGet.port), httpPort, `${probe} port`);
  }
  assert.equal(httpPort, 2020);
}

/** Paths in the pipeline exist in the container: mounted, or shipped in the image. */
export function assertPipelineFiles(workload: K8sObject, p: LoadedPipeline): void {
  const c = container(workload, 'logwarden');
  const wanted: string[] = [];
  for (const f of p.loaded.filters) {
    const v = f.raw.values;
    if (typeof v.policy_file === 'string') wanted.push(v.policy_file);
    if (v.rules_file !== undefined) wanted.push(...(Array.isArray(v.rules_file) ? v.rules_file : [v.rules_file]).map(String));
  }
  assert.ok(wanted.length >= 2, 'the pipeline names a policy and rules');
  for (const path of wanted) {
    if (path.startsWith('/opt/logwarden/')) continue; // in the image (container.test.ts checks the COPY)
    assert.ok(p.files.has(path), `${path} is neither mounted nor in the image`);
  }
  const storage = String(p.loaded.service.values['storage.path']);
  const m = mountFor(c, storage);
  assert.ok(m, `storage.path ${storage} has no volume (the root filesystem is read-only)`);
  assert.notEqual(m.readOnly, true);
}

/** Every stage of the audit path matches the tag the sender uses. */
export function assertTagRouting(p: LoadedPipeline, tag: string): void {
  const byName = (name: string) => p.loaded.filters.filter((f) => f.name === name).map((f) => f.raw.values);
  for (const name of ['audit_policy', 'detect']) {
    const stages = byName(name);
    assert.equal(stages.length, 1, `one ${name} stage`);
    assert.equal(stages[0]!.match, tag, `${name} matches the sender's tag`);
  }
  const detect = byName('detect')[0]!;
  const alertTag = String(detect.alert_tag);
  const outs = p.loaded.outputs.map((o) => ({ name: o.name, match: String(o.raw.values.match) }));
  assert.ok(
    outs.some((o) => o.name === 'loki' && o.match === tag),
    'audit events go to Loki',
  );
  assert.ok(
    outs.some((o) => o.name === 'alertmanager' && o.match === alertTag),
    'alerts go to Alertmanager',
  );
  assert.ok(
    outs.some((o) => o.name === 'loki' && o.match === alertTag),
    'alerts go to Loki',
  );
}

export interface FluentBitConfig {
  service: Obj;
  inputs: Obj[];
  outputs: Obj[];
  parsers: Obj[];
}

export function fluentBitConfig(objects: K8sObject[], workload: K8sObject): { config: FluentBitConfig; files: Map<string, string>; env: Record<string, string>; c: Obj } {
  const c = container(workload, 'fluent-bit');
  assert.deepEqual(c.command, ['/fluent-bit/bin/fluent-bit']);
  assert.equal(c.args[0], '-c');
  const files = mountedFiles(objects, workload, c);
  const text = files.get(c.args[1]);
  assert.ok(text, `Fluent Bit's -c ${c.args[1]} is not mounted`);
  const doc = parse(text) as { service: Obj; pipeline: { inputs: Obj[]; outputs: Obj[] }; parsers?: Obj[] };
  return {
    config: { service: doc.service, inputs: doc.pipeline.inputs, outputs: doc.pipeline.outputs, parsers: doc.parsers ?? [] },
    files,
    env: containerEnv(objects, workload, c),
    c,
  };
}

/** Fluent Bit's `${VAR}` substitution (unset: empty). */
export function fbEnv(value: unknown, env: Record<string, string>): string {
  return String(value).replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => env[name] ?? '');
}

/** The Fluent Bit side tails the audit log from the hostPath, parses JSON and buffers on disk. */
export function assertAuditTail(workload: K8sObject, fb: ReturnType<typeof fluentBitConfig>): Obj {
  assert.equal(fb.config.inputs.length, 1);
  const tail = fb.config.inputs[0]!;
  assert.equal(tail.name, 'tail');
  assert.equal(tail['storage.type'], 'filesystem');
  const m = mountFor(fb.c, tail.path);
  assert.ok(m, `tail path ${tail.path} is not mounted`);
  assert.equal(m.readOnly, true, 'the audit log is mounted read-only');
  const vol = (pod(workload).volumes as Obj[]).find((v) => v.name === m.name)!;
  assert.ok(vol.hostPath, 'the audit log comes from the node');
  const parser = fb.config.parsers.find((x) => x.name === tail.parser);
  assert.ok(parser, `parser ${tail.parser} is defined`);
  assert.equal(parser.format, 'json');
  for (const path of [tail.db, fb.config.service['storage.path']]) {
    const mm = mountFor(fb.c, path);
    assert.ok(mm && mm.readOnly !== true, `${path} is on a writable volume`);
  }
  const forward = fb.config.outputs.find((o) => o.name === 'forward');
  assert.ok(forward);
  assert.equal(forward.match, tail.tag);
  assert.equal(forward.require_ack_response, true);
  return tail;
}

/**
 * The pipelines the manifests mount must pass `logwarden validate` as the container would run
 * it: the container's files (mounted ConfigMaps under a temporary root, the image's
 * /opt/logwarden as this repository) and its environment, against this build's plugins.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadConfigFile } from '../../../src/config/load.js';
import { Pipeline } from '../../../src/core/pipeline.js';
import { plan } from '../../../src/core/plan.js';
import { registry } from '../../../src/plugins.js';
import { repoRoot } from '../../support/paths.js';
import { kustomizeBuild, overlayWithComponents, type K8sObject } from '../../support/kustomize.js';
import { helmTemplate } from '../../support/helm-template.js';
import { container, containerEnv, find, materialize, mountedFiles } from '../../support/deploy.js';
import { runCli } from '../../support/cli.js';

const chart = join(repoRoot, 'deploy', 'helm', 'logwarden');
const helmValues = { forward: { sharedKey: { value: 'k3y-for-tests-0123456789abcdef' } } };

const cases: { name: string; objects: () => K8sObject[]; kind: string; workload: string }[] = [
  { name: 'kustomize sidecar', objects: () => kustomizeBuild(join(repoRoot, 'deploy/kustomize/overlays/sidecar')), kind: 'DaemonSet', workload: 'logwarden' },
  { name: 'kustomize aggregator', objects: () => kustomizeBuild(join(repoRoot, 'deploy/kustomize/overlays/aggregator')), kind: 'Deployment', workload: 'logwarden' },
  { name: 'helm sidecar', objects: () => helmTemplate(chart, { values: helmValues }).objects, kind: 'DaemonSet', workload: 'logwarden' },
  {
    name: 'helm aggregator',
    objects: () => helmTemplate(chart, { values: { ...helmValues, mode: 'aggregator' } }).objects,
    kind: 'Deployment',
    workload: 'logwarden',
  },
  {
    name: 'helm aggregator, persistent, filesystem-buffered',
    objects: () => helmTemplate(chart, { values: { ...helmValues, mode: 'aggregator', forward: { ...helmValues.forward, storageType: 'filesystem' }, persistence: { enabled: true } } }).objects,
    kind: 'StatefulSet',
    workload: 'logwarden',
  },
  {
    name: 'helm sidecar, persistent',
    objects: () => helmTemplate(chart, { values: { ...helmValues, persistence: { enabled: true } } }).objects,
    kind: 'DaemonSet',
    workload: 'logwarden',
  },
  {
    name: 'kustomize sidecar + persistence-sidecar',
    objects: () => kustomizeBuild(overlayWithComponents(join(repoRoot, 'deploy/kustomize'), 'sidecar', ['persistence-sidecar'])),
    kind: 'DaemonSet',
    workload: 'logwarden',
  },
  {
    name: 'helm aggregator with the web page',
    objects: () => [
      ...helmTemplate(chart, { values: { ...helmValues, mode: 'aggregator', ui: { enabled: true, auth: { existingSecret: 'page-creds', tokenKey: 'token' } } } }).objects,
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'page-creds' }, data: { username: 'YWRtaW4=', password: 'czNjcjN0', token: 'dDBr' } },
    ],
    kind: 'Deployment',
    workload: 'logwarden',
  },
  {
    name: 'helm aggregator with the page on a shared PostgreSQL store',
    objects: () => [
      ...helmTemplate(chart, {
        values: {
          ...helmValues,
          mode: 'aggregator',
          persistence: { enabled: true },
          ui: { enabled: true, auth: { anonymous: true }, postgres: { existingSecret: 'alert-store', passwordKey: 'password' } },
        },
      }).objects,
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'alert-store' },
        data: { url: Buffer.from('postgres://logwarden@postgres.db.svc:5432/logwarden?sslmode=require').toString('base64'), password: 'czNjcjN0' },
      },
    ],
    kind: 'StatefulSet',
    workload: 'logwarden',
  },
  {
    name: 'kustomize aggregator + ui-postgres',
    objects: () => kustomizeBuild(overlayWithComponents(join(repoRoot, 'deploy/kustomize'), 'aggregator', ['persistence', 'ui-postgres'])),
    kind: 'Deployment',
    workload: 'logwarden',
  },
];

/**
 * The container's files under a temporary root, with its absolute paths re-rooted: mounts under
 * `root`, storage.path there too, the image's /opt/logwarden at this repository. A variable
 * naming a mounted file (an include switched on by the environment) is re-rooted with it.
 */
function containerLayout(c: (typeof cases)[number]): { file: string; env: Record<string, string> } {
  const objects = c.objects();
  const workload = find(objects, c.kind, c.workload);
  const ctr = container(workload, 'logwarden');
  const root = mkdtempSync(join(tmpdir(), 'logwarden-container-'));
  const files = mountedFiles(objects, workload, ctr);
  materialize(files, root);
  mkdirSync(join(root, 'var/lib/logwarden'), { recursive: true });
  const file = join(root, 'etc/logwarden/pipeline.yaml');
  const text = readFileSync(file, 'utf8')
    .replaceAll('/etc/logwarden/', `${join(root, 'etc/logwarden')}/`)
    .replaceAll('/var/lib/logwarden', join(root, 'var/lib/logwarden'))
    .replaceAll('/opt/logwarden/', repoRoot.endsWith('/') ? repoRoot : `${repoRoot}/`);
  writeFileSync(file, text);
  const env = Object.fromEntries(Object.entries(containerEnv(objects, workload, ctr)).map(([k, v]) => [k, files.has(v) ? join(root, v) : v]));
  return { file, env };
}

describe('deployed pipelines validate against this build', () => {
  for (const c of cases) {
    it(c.name, async (t) => {
      const { file, env } = containerLayout(c);
      const loaded = loadConfigFile(file, env);
      const missing: string[] = [];
      const known = <T extends { kind: 'input' | 'filter' | 'output'; name: string }>(s: T) => {
        if (registry.find(s.kind, s.name)) return true;
        missing.push(`${s.kind} ${s.name}`);
        return false;
      };
      loaded.inputs = loaded.inputs.filter(known);
      loaded.filters = loaded.filters.filter(known);
      loaded.outputs = loaded.outputs.filter(known);
      if (missing.length) t.diagnostic(`not registered in this build yet, not validated: ${missing.join(', ')}`);
      assert.ok(loaded.inputs.length === 1 && loaded.outputs.length >= 1, 'the forward input and at least one output are validated');

      const p = plan(loaded, registry);
      const sink = new Writable({ write: (_c, _e, cb) => cb() });
      const pipeline = new Pipeline(p, { logger: pino({ level: 'silent' }, sink) });
      await pipeline.build();
      await pipeline.close();
    });
  }
});

describe("deployed pipelines pass `logwarden validate` with the container's environment", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const { file, env } = containerLayout(c);
      const r = await runCli(['validate', '-c', file], { env });
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /^OK/m);
    });
  }
});

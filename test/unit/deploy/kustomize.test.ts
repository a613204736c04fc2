import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { repoRoot } from '../../support/paths.js';
import { kustomizeBuild, overlayWithComponents, parseManifests, type K8sObject } from '../../support/kustomize.js';
import { container, dataOf, find, mountFor, parseClassic, pod, portNumber, selects, volume, type Obj } from '../../support/deploy.js';
import { assertAuditTail, assertHardened, assertPipelineFiles, assertProbes, assertRestricted, assertTagRouting, fbEnv, fluentBitConfig, loadContainerPipeline } from '../../support/deploy-checks.js';

const kdir = join(repoRoot, 'deploy', 'kustomize');
const sidecar = kustomizeBuild(join(kdir, 'overlays', 'sidecar'));
const aggregator = kustomizeBuild(join(kdir, 'overlays', 'aggregator'));

function nsLabels(objects: K8sObject[], name: string): Record<string, string> {
  return find(objects, 'Namespace', name).metadata.labels ?? {};
}

const withComponents = (overlay: string, components: string[]) => overlayWithComponents(kdir, overlay, components);

const componentBuilds = [
  { name: 'aggregator + persistence', overlay: 'aggregator', components: ['persistence'] },
  { name: 'aggregator + ui-postgres', overlay: 'aggregator', components: ['ui-postgres'] },
  { name: 'aggregator + persistence + ui-postgres', overlay: 'aggregator', components: ['persistence', 'ui-postgres'] },
  { name: 'sidecar + persistence-sidecar', overlay: 'sidecar', components: ['persistence-sidecar'] },
];

describe('kustomize: sidecar overlay', () => {
  const ds = find(sidecar, 'DaemonSet', 'logwarden', 'logwarden');
  const p = loadContainerPipeline(sidecar, ds);
  const fb = fluentBitConfig(sidecar, ds);

  it('runs on control-plane nodes, tolerating their taint', () => {
    assert.deepEqual(pod(ds).nodeSelector, { 'node-role.kubernetes.io/control-plane': '' });
    const keys = (pod(ds).tolerations as Obj[]).map((t) => `${t.key}:${t.operator}:${t.effect}`);
    assert.ok(keys.includes('node-role.kubernetes.io/control-plane:Exists:NoSchedule'));
  });

  it('pins both images', () => {
    assert.equal(container(ds, 'logwarden').image, 'logwarden:0.1.0');
    assert.equal(container(ds, 'fluent-bit').image, 'fluent/fluent-bit:4.0.3');
  });

  it('logwarden meets the restricted profile; Fluent Bit only differs in running as uid 0', () => {
    assertRestricted(ds, container(ds, 'logwarden'));
    const c = container(ds, 'fluent-bit');
    assertHardened(ds, c);
    assert.equal(c.securityContext.runAsUser, 0);
    // The namespace admits the hostPath, and still warns and audits against restricted.
    const labels = nsLabels(sidecar, 'logwarden');
    assert.equal(labels['pod-security.kubernetes.io/enforce'], 'privileged');
    assert.equal(labels['pod-security.kubernetes.io/warn'], 'restricted');
    assert.equal(labels['pod-security.kubernetes.io/audit'], 'restricted');
  });

  it('probes /healthz and /readyz on the pipeline http_port', () => {
    assertProbes(ds, p);
    // Fluent Bit shares the network namespace: its HTTP server must use another port.
    assert.notEqual(Number(fb.config.service.http_port), Number(p.loaded.service.values.http_port));
    assert.equal(portNumber(fb.c, fb.c.livenessProbe.httpGet.port), Number(fb.config.service.http_port));
    assert.ok(['on', true].includes(fb.config.service.health_check));
  });

  it('logwarden listens on loopback only, and Fluent Bit forwards there with the shared key', () => {
    assert.equal(p.input.listen, '127.0.0.1');
    const tail = assertAuditTail(ds, fb);
    const out = fb.config.outputs.find((o) => o.name === 'forward')!;
    assert.equal(out.host, '127.0.0.1');
    assert.equal(Number(out.port), Number(p.input.port));
    assert.equal(Number(p.input.port), 24224);
    // Both sides resolve the shared key to the same non-empty Secret value.
    const key = fbEnv(out.shared_key, fb.env);
    assert.ok(key.length >= 16);
    assert.equal(p.input.shared_key, key);
    assertTagRouting(p, tail.tag);
  });

  it('the forward input is not reachable from outside: no container port, and the policy opens only metrics', () => {
    const ports = (container(ds, 'logwarden').ports as Obj[]).map((x) => x.containerPort);
    assert.ok(!ports.includes(24224));
    const np = find(sidecar, 'NetworkPolicy', 'logwarden', 'logwarden');
    assert.ok(selects(np.spec.podSelector, (ds.spec as Obj).template.metadata.labels));
    const opened = (np.spec.ingress as Obj[]).flatMap((r) => (r.ports as Obj[]).map((x) => x.port)).sort();
    assert.deepEqual(opened, [2020, 2021]);
  });

  it('mounts the pipeline, policy and rules, and a writable storage.path', () => {
    assertPipelineFiles(ds, p);
    assert.ok(mountFor(container(ds, 'logwarden'), '/tmp'), '/tmp is writable for a read-only root');
  });

  it('alerts name the node (spec.nodeName), not the pod that changes on every rollout', () => {
    assert.equal(p.loaded.filters.find((f) => f.name === 'detect')!.raw.values.hostname, '<spec.nodeName>');
  });

  it('scrapes both HTTP servers through the ServiceMonitor', () => {
    const svc = find(sidecar, 'Service', 'logwarden-metrics', 'logwarden');
    const sm = find(sidecar, 'ServiceMonitor', 'logwarden', 'logwarden');
    assert.ok(selects(sm.spec.selector, svc.metadata.labels));
    assert.ok(selects({ matchLabels: svc.spec.selector }, (ds.spec as Obj).template.metadata.labels));
    const svcPorts = new Map((svc.spec.ports as Obj[]).map((x) => [x.name, x]));
    for (const ep of sm.spec.endpoints as Obj[]) assert.ok(svcPorts.has(ep.port), `Service port ${ep.port}`);
    assert.equal(svcPorts.get('http')?.port, 2020);
  });
});

describe('kustomize: aggregator overlay', () => {
  const dep = find(aggregator, 'Deployment', 'logwarden', 'logwarden');
  const shipper = find(aggregator, 'DaemonSet', 'fluent-bit', 'logwarden-shipper');
  const p = loadContainerPipeline(aggregator, dep);
  const fb = fluentBitConfig(aggregator, shipper);
  const podLabels = (dep.spec as Obj).template.metadata.labels as Record<string, string>;

  it('alerts name the replica that evaluated them (the pod name)', () => {
    assert.equal(p.loaded.filters.find((f) => f.name === 'detect')!.raw.values.hostname, '<metadata.name>');
  });

  it('runs several replicas, restricted, behind a Service on the forward port', () => {
    assert.ok(Number((dep.spec as Obj).replicas) >= 2);
    assertRestricted(dep, container(dep, 'logwarden'));
    assert.equal(container(dep, 'logwarden').image, 'logwarden:0.1.0');
    assert.equal(nsLabels(aggregator, 'logwarden')['pod-security.kubernetes.io/enforce'], 'restricted');
    const svc = find(aggregator, 'Service', 'logwarden', 'logwarden');
    assert.ok(selects({ matchLabels: svc.spec.selector }, podLabels));
    const fwd = (svc.spec.ports as Obj[]).find((x) => x.name === 'forward')!;
    assert.equal(portNumber(container(dep, 'logwarden'), fwd.targetPort), Number(p.input.port));
    assert.equal(p.input.listen, '0.0.0.0');
  });

  it('probes and mounts like the sidecar', () => {
    assertProbes(dep, p);
    assertPipelineFiles(dep, p);
  });

  it('a PodDisruptionBudget covers the replicas', () => {
    const pdb = find(aggregator, 'PodDisruptionBudget', 'logwarden', 'logwarden');
    assert.ok(selects(pdb.spec.selector, podLabels));
    assert.equal(pdb.spec.maxUnavailable, 1);
  });

  it('the shipper tails the audit log and spreads over upstream nodes that reach the Service with the same key', () => {
    assert.equal(container(shipper, 'fluent-bit').image, 'fluent/fluent-bit:4.0.3');
    assertHardened(shipper, container(shipper, 'fluent-bit'));
    assert.equal(nsLabels(aggregator, 'logwarden-shipper')['pod-security.kubernetes.io/enforce'], 'privileged');
    const tail = assertAuditTail(shipper, fb);
    assertTagRouting(p, tail.tag);
    const out = fb.config.outputs.find((o) => o.name === 'forward')!;
    assert.equal(out.host, undefined, 'host comes from the upstream nodes');
    const upstream = fb.files.get(out.upstream);
    assert.ok(upstream, `upstream file ${out.upstream} is mounted`);
    const sections = parseClassic(upstream);
    assert.equal(sections[0]!.name, 'UPSTREAM');
    const nodes = sections.filter((s) => s.name === 'NODE');
    assert.ok(nodes.length >= 2);
    const svc = find(aggregator, 'Service', 'logwarden', 'logwarden');
    const forwardKey = dataOf(aggregator, 'Secret', container(dep, 'logwarden').env.find((e: Obj) => e.name === 'FORWARD_SHARED_KEY').valueFrom.secretKeyRef.name, 'logwarden');
    for (const n of nodes) {
      assert.equal(n.props.host, `${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local`);
      assert.equal(Number(n.props.port), (svc.spec.ports as Obj[]).find((x) => x.name === 'forward')?.port);
      assert.equal(n.props.shared_key, forwardKey.FORWARD_SHARED_KEY, 'upstream key equals the aggregator key');
      assert.equal(n.props.shared_key, p.input.shared_key);
    }
    assert.equal(new Set(nodes.map((n) => n.props.name)).size, nodes.length, 'node names are unique');
    // The upstream file holds the key, so it is a Secret, readable only by its owner.
    assert.equal(volume(shipper, mountFor(fb.c, out.upstream)!.name).secret.defaultMode, 0o400);
  });

  it('the NetworkPolicy lets exactly the shippers reach the forward port', () => {
    const np = find(aggregator, 'NetworkPolicy', 'logwarden', 'logwarden');
    assert.ok(selects(np.spec.podSelector, podLabels));
    const rule = (np.spec.ingress as Obj[]).find((r) => (r.ports as Obj[]).some((x) => x.port === 24224))!;
    assert.equal(rule.ports.length, 1);
    const peer = rule.from[0];
    const shipperNs = find(aggregator, 'Namespace', 'logwarden-shipper');
    assert.equal(peer.namespaceSelector.matchLabels['kubernetes.io/metadata.name'], shipperNs.metadata.name);
    assert.ok(selects(peer.podSelector, (shipper.spec as Obj).template.metadata.labels));
    const metrics = (np.spec.ingress as Obj[]).find((r) => (r.ports as Obj[]).some((x) => x.port === 2020))!;
    assert.equal(metrics.from[0].namespaceSelector.matchLabels['kubernetes.io/metadata.name'], 'monitoring');
  });
});

describe('kustomize: shared configuration', () => {
  it('the shared key Secret is a visible placeholder, never a real key', () => {
    const secret = aggregator.find((o) => o.kind === 'Secret' && o.metadata.name.startsWith('logwarden-forward-'));
    assert.ok(secret);
    const key = dataOf(aggregator, 'Secret', secret.metadata.name, 'logwarden');
    assert.match(key.FORWARD_SHARED_KEY!, /^REPLACE-ME/);
  });

  it('the chart ships the same policy and rules as the kustomize base', () => {
    for (const f of ['audit-policy.yaml', 'custom_rules.yaml']) {
      assert.equal(readFileSync(join(repoRoot, 'deploy/helm/logwarden/files', f), 'utf8'), readFileSync(join(kdir, 'base/config', f), 'utf8'), f);
    }
  });

  it('generated ConfigMaps and Secrets are referenced by their hashed names', () => {
    for (const objects of [sidecar, aggregator, ...componentBuilds.map((b) => kustomizeBuild(withComponents(b.overlay, b.components)))]) {
      const names = new Set(objects.filter((o) => o.kind === 'ConfigMap' || o.kind === 'Secret').map((o) => `${o.metadata.namespace}/${o.metadata.name}`));
      for (const o of objects.filter((x) => x.kind === 'DaemonSet' || x.kind === 'Deployment')) {
        const ns = o.metadata.namespace;
        const refs: string[] = [];
        for (const v of pod(o).volumes as Obj[]) {
          if (v.configMap) refs.push(v.configMap.name);
          if (v.secret) refs.push(v.secret.secretName);
          for (const s of v.projected?.sources ?? []) refs.push(s.configMap?.name ?? s.secret?.name);
        }
        for (const c of pod(o).containers as Obj[]) {
          for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) refs.push(e.valueFrom.secretKeyRef.name);
          for (const e of c.envFrom ?? []) refs.push(e.configMapRef?.name ?? e.secretRef?.name);
        }
        for (const r of refs) assert.ok(names.has(`${ns}/${r}`), `${o.kind}/${o.metadata.name} refers to missing ${ns}/${r}`);
      }
    }
  });
});

describe('kustomize: components/persistence (aggregator)', () => {
  const objects = kustomizeBuild(withComponents('aggregator', ['persistence']));
  const dep = find(objects, 'Deployment', 'logwarden', 'logwarden');
  const p = loadContainerPipeline(objects, dep);
  const c = container(dep, 'logwarden');

  it("storage.path, the dead letters and the SQLite directory are on the claim, in the workload's namespace", () => {
    const storage = String(p.loaded.service.values['storage.path']);
    const m = mountFor(c, storage)!;
    const claim = volume(dep, m.name).persistentVolumeClaim;
    assert.ok(claim, 'storage.path is a PersistentVolumeClaim');
    assert.equal(volume(dep, m.name).emptyDir, undefined, 'the emptyDir is gone, not beside the claim');
    const pvc = find(objects, 'PersistentVolumeClaim', claim.claimName, dep.metadata.namespace);
    assert.deepEqual(pvc.spec.accessModes, ['ReadWriteOnce']);
    assert.equal(pvc.spec.resources.requests.storage, '5Gi');
    for (const path of [storage, `${storage}/dead-letter/alertmanager.0.jsonl`, `${storage}/ui/alerts.db`]) assert.equal(mountFor(c, path)?.name, m.name, path);
    assertPipelineFiles(dep, p);
    assertProbes(dep, p);
    assertRestricted(dep, c);
  });

  it('one replica on the ReadWriteOnce claim, replaced with Recreate', () => {
    assert.equal((dep.spec as Obj).replicas, 1);
    assert.deepEqual((dep.spec as Obj).strategy, { type: 'Recreate' });
    // Without the component: the replicas and the surge of the overlay, on an emptyDir.
    const plain = find(aggregator, 'Deployment', 'logwarden', 'logwarden');
    assert.ok(Number((plain.spec as Obj).replicas) >= 2);
    assert.equal(volume(plain, 'storage').emptyDir.sizeLimit, '2Gi');
    assert.ok(!aggregator.some((o) => o.kind === 'PersistentVolumeClaim'));
  });
});

describe('kustomize: components/persistence-sidecar', () => {
  const objects = kustomizeBuild(withComponents('sidecar', ['persistence-sidecar']));
  const ds = find(objects, 'DaemonSet', 'logwarden', 'logwarden');
  const p = loadContainerPipeline(objects, ds);
  const c = container(ds, 'logwarden');

  it("storage.path is a node directory beside, not inside, Fluent Bit's state", () => {
    const m = mountFor(c, String(p.loaded.service.values['storage.path']))!;
    const v = volume(ds, m.name);
    assert.deepEqual(v.hostPath, { path: '/var/lib/logwarden/data', type: 'DirectoryOrCreate' });
    assert.equal(v.emptyDir, undefined);
    const fbState = volume(ds, 'fluent-bit-state').hostPath.path as string;
    assert.ok(!v.hostPath.path.startsWith(`${fbState}/`) && v.hostPath.path !== fbState && !fbState.startsWith(`${v.hostPath.path}/`));
    assertPipelineFiles(ds, p);
    assertRestricted(ds, c);
  });

  it('an init container hands the directory to the logwarden uid with CHOWN and FOWNER only', () => {
    const inits = pod(ds).initContainers as Obj[];
    assert.equal(inits.length, 1);
    const init = inits[0]!;
    assert.equal(init.image, c.image, 'the pinned logwarden image');
    const m = mountFor(c, String(p.loaded.service.values['storage.path']))!;
    assert.deepEqual(init.volumeMounts, [{ name: m.name, mountPath: m.mountPath }]);
    assert.deepEqual(init.command, ['sh', '-c', `chown ${c.securityContext.runAsUser}:${c.securityContext.runAsGroup} ${m.mountPath} && chmod 0750 ${m.mountPath}`]);
    assert.equal(init.securityContext.runAsUser, 0);
    assert.deepEqual(init.securityContext.capabilities, { drop: ['ALL'], add: ['CHOWN', 'FOWNER'] });
    assert.equal(init.securityContext.allowPrivilegeEscalation, false);
    assert.equal(init.securityContext.readOnlyRootFilesystem, true);
  });
});

describe('kustomize: components/ui-postgres (aggregator)', () => {
  const objects = kustomizeBuild(withComponents('aggregator', ['ui-postgres']));
  const dep = find(objects, 'Deployment', 'logwarden', 'logwarden');
  const p = loadContainerPipeline(objects, dep);
  const svc = p.loaded.service.values;
  const secret = dataOf(objects, 'Secret', container(dep, 'logwarden').env.find((e: Obj) => e.name === 'LOGWARDEN_UI_STORE').valueFrom.secretKeyRef.name, 'logwarden');

  it('the page is on, its alerts in the store named by the Secret, its credentials from the same Secret', () => {
    assert.equal(svc.ui, 'on');
    assert.equal(svc['ui.store'], secret.LOGWARDEN_UI_STORE);
    assert.match(String(svc['ui.store']), /^postgres:\/\/[^@]*REPLACE-ME@/, 'a visible placeholder, never a real password');
    assert.equal(svc['ui.db_path'], undefined, 'no per-pod SQLite file');
    assert.deepEqual([svc['ui.http_user'], svc['ui.http_passwd']], [secret.UI_HTTP_USER, secret.UI_HTTP_PASSWD]);
    assert.match(String(svc['ui.http_passwd']), /^REPLACE-ME/);
    const detect = p.loaded.filters.find((f) => f.name === 'detect')!.raw.values;
    assert.equal(detect.include_event, 'on');
    assert.equal(p.loaded.outputs.find((o) => o.name === 'ui')?.raw.values.match, detect.alert_tag);
    assertTagRouting(p, 'kube.audit');
    assertRestricted(dep, container(dep, 'logwarden'));
  });

  it('the page Service reaches every replica with no session affinity', () => {
    assert.ok(Number((dep.spec as Obj).replicas) >= 2);
    const page = find(objects, 'Service', 'logwarden-ui', 'logwarden');
    assert.equal(page.spec.sessionAffinity, undefined);
    assert.ok(selects({ matchLabels: page.spec.selector }, (dep.spec as Obj).template.metadata.labels));
    assert.equal(portNumber(container(dep, 'logwarden'), page.spec.ports[0].targetPort), Number(svc.http_port));
  });

  it('without the component the overlays have no page: nothing included, no event in alerts', () => {
    for (const [objs, kind] of [
      [aggregator, 'Deployment'],
      [sidecar, 'DaemonSet'],
    ] as const) {
      const q = loadContainerPipeline(objs, find(objs, kind, 'logwarden', 'logwarden'));
      assert.ok(!Object.keys(q.loaded.service.values).some((k) => k === 'ui' || k.startsWith('ui.')));
      assert.ok(!q.loaded.outputs.some((o) => o.name === 'ui'));
      assert.equal(q.loaded.filters.find((f) => f.name === 'detect')!.raw.values.include_event, 'off');
      assert.ok(!objs.some((o) => o.metadata.name === 'logwarden-ui'));
    }
  });

  it('with persistence too: one replica on the claim, the page still on the store', () => {
    const both = kustomizeBuild(withComponents('aggregator', ['persistence', 'ui-postgres']));
    const d = find(both, 'Deployment', 'logwarden', 'logwarden');
    const q = loadContainerPipeline(both, d);
    assert.equal(q.loaded.service.values['ui.store'], secret.LOGWARDEN_UI_STORE);
    assert.ok(volume(d, 'storage').persistentVolumeClaim);
    assert.ok(volume(d, 'ui-config').configMap);
  });
});

function realKustomize(): ((dir: string) => string) | undefined {
  if (spawnSync('kustomize', ['version'], { stdio: 'ignore' }).status === 0) return (dir) => execFileSync('kustomize', ['build', dir], { encoding: 'utf8' });
  if (spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0) {
    return (dir) => execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  }
  return undefined;
}

describe('kustomize: the test renderer agrees with the real kustomize', () => {
  const real = realKustomize();
  const builds = [
    ...['sidecar', 'aggregator'].map((overlay) => ({ name: overlay, dir: () => join(kdir, 'overlays', overlay) })),
    ...componentBuilds.map((b) => ({ name: b.name, dir: () => withComponents(b.overlay, b.components) })),
  ];
  for (const b of builds) {
    it(b.name, { skip: real ? false : 'neither kustomize nor kubectl is installed' }, () => {
      const dir = b.dir();
      const expected = parseManifests(real!(dir));
      const mine = kustomizeBuild(dir);
      const key = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
      assert.deepEqual(mine.map(key).sort(), expected.map(key).sort());
      const byKey = new Map(mine.map((o) => [key(o), JSON.parse(JSON.stringify(o))]));
      for (const o of expected) assert.ok(isDeepStrictEqual(byKey.get(key(o)), o), `${key(o)} differs`);
    });
  }
});

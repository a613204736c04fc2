import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { repoRoot } from '../../support/paths.js';
import { helmTemplate } from '../../support/helm-template.js';
import type { K8sObject } from '../../support/kustomize.js';
import { container, find, mountedFiles, mountFor, pod, portNumber, selects, volume, type Obj } from '../../support/deploy.js';
import { assertAuditTail, assertHardened, assertPipelineFiles, assertProbes, assertRestricted, assertTagRouting, fbEnv, fluentBitConfig, loadContainerPipeline } from '../../support/deploy-checks.js';

const chart = join(repoRoot, 'deploy', 'helm', 'logwarden');
const key = { forward: { sharedKey: { value: 'k3y-for-tests-0123456789abcdef' } } };

function render(values: Record<string, unknown> = {}, releaseName = 'audit') {
  return helmTemplate(chart, { releaseName, namespace: 'logwarden', values: { ...key, ...values } }).objects;
}

function kinds(objects: K8sObject[]): string[] {
  return objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
}

describe('helm: sidecar mode (default)', () => {
  const objects = render();
  const ds = find(objects, 'DaemonSet', 'audit-logwarden');
  const p = loadContainerPipeline(objects, ds);
  const fb = fluentBitConfig(objects, ds);

  it('renders the sidecar set of objects', () => {
    assert.deepEqual(kinds(objects), [
      'ConfigMap/audit-logwarden-fluent-bit',
      'ConfigMap/audit-logwarden-pipeline',
      'ConfigMap/audit-logwarden-policy',
      'ConfigMap/audit-logwarden-rules',
      'DaemonSet/audit-logwarden',
      'NetworkPolicy/audit-logwarden',
      'Secret/audit-logwarden-forward',
      'Service/audit-logwarden-metrics',
      'ServiceAccount/audit-logwarden',
    ]);
  });

  it('images default to the chart appVersion and the pinned Fluent Bit', () => {
    assert.equal(container(ds, 'logwarden').image, 'logwarden:0.1.0');
    assert.equal(container(ds, 'fluent-bit').image, 'fluent/fluent-bit:4.0.3');
    const tagged = find(render({ image: { repository: 'registry.example/logwarden', tag: '1.2.3' } }), 'DaemonSet', 'audit-logwarden');
    assert.equal(container(tagged, 'logwarden').image, 'registry.example/logwarden:1.2.3');
  });

  it('security contexts: logwarden restricted, Fluent Bit uid 0 without capabilities', () => {
    assertRestricted(ds, container(ds, 'logwarden'));
    assertHardened(ds, container(ds, 'fluent-bit'));
    assert.equal(container(ds, 'fluent-bit').securityContext.runAsUser, 0);
    assert.deepEqual(pod(ds).nodeSelector, { 'node-role.kubernetes.io/control-plane': '' });
  });

  it('probes, mounts and routing', () => {
    assertProbes(ds, p);
    assertPipelineFiles(ds, p);
    const tail = assertAuditTail(ds, fb);
    assertTagRouting(p, tail.tag);
  });

  it('Fluent Bit forwards to the loopback listener with the key from the same Secret', () => {
    assert.equal(p.input.listen, '127.0.0.1');
    const out = fb.config.outputs.find((o) => o.name === 'forward')!;
    assert.equal(out.host, '127.0.0.1');
    assert.equal(Number(out.port), Number(p.input.port));
    assert.equal(fbEnv(out.shared_key, fb.env), key.forward.sharedKey.value);
    assert.equal(p.input.shared_key, key.forward.sharedKey.value);
    assert.notEqual(Number(fb.config.service.http_port), Number(p.loaded.service.values.http_port));
  });

  it('the NetworkPolicy opens only the two metrics ports', () => {
    const np = find(objects, 'NetworkPolicy', 'audit-logwarden');
    assert.ok(selects(np.spec.podSelector, ds.spec.template.metadata.labels));
    assert.deepEqual((np.spec.ingress as Obj[]).flatMap((r) => (r.ports as Obj[]).map((x) => x.port)).sort(), [2020, 2021]);
  });

  it('a config change rolls the pods (checksum annotation)', () => {
    const before = ds.spec.template.metadata.annotations['checksum/config'];
    const after = find(render({ policy: 'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n' }), 'DaemonSet', 'audit-logwarden');
    assert.match(before, /^[0-9a-f]{64}$/);
    assert.notEqual(after.spec.template.metadata.annotations['checksum/config'], before);
  });
});

describe('helm: aggregator mode', () => {
  const objects = render({ mode: 'aggregator', aggregator: { replicas: 4 } });
  const dep = find(objects, 'Deployment', 'audit-logwarden');
  const p = loadContainerPipeline(objects, dep);
  const labels = dep.spec.template.metadata.labels as Record<string, string>;

  it('renders a Deployment, forward Service and PDB, and no Fluent Bit', () => {
    assert.equal(dep.spec.replicas, 4);
    assert.ok(!objects.some((o) => o.kind === 'DaemonSet' || o.metadata.name.endsWith('-fluent-bit')));
    assertRestricted(dep, container(dep, 'logwarden'));
    const svc = find(objects, 'Service', 'audit-logwarden');
    assert.ok(selects({ matchLabels: svc.spec.selector }, labels));
    const fwd = (svc.spec.ports as Obj[]).find((x) => x.name === 'forward')!;
    assert.equal(portNumber(container(dep, 'logwarden'), fwd.targetPort), Number(p.input.port));
    assert.equal(p.input.listen, '0.0.0.0');
    const pdb = find(objects, 'PodDisruptionBudget', 'audit-logwarden');
    assert.ok(selects(pdb.spec.selector, labels));
  });

  it('probes and mounts', () => {
    assertProbes(dep, p);
    assertPipelineFiles(dep, p);
  });

  it('the NetworkPolicy admits the configured forward peers on the forward port', () => {
    const np = find(objects, 'NetworkPolicy', 'audit-logwarden');
    const rule = (np.spec.ingress as Obj[]).find((r) => (r.ports as Obj[]).some((x) => x.port === 24224))!;
    assert.equal(rule.from[0].namespaceSelector.matchLabels['kubernetes.io/metadata.name'], 'logwarden-shipper');
    assert.deepEqual(rule.from[0].podSelector.matchLabels, { 'app.kubernetes.io/name': 'fluent-bit' });
  });

  it('TLS mounts the certificate Secret where the pipeline reads it', () => {
    const tlsObjects = render({ mode: 'aggregator', forward: { ...key.forward, tls: { enabled: true, secretName: 'fwd-tls', verifyClients: true } } });
    // The certificate Secret comes from outside the chart (cert-manager, kubectl create secret tls).
    tlsObjects.push({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'fwd-tls' },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': 'Y3J0', 'tls.key': 'a2V5', 'ca.crt': 'Y2E=' },
    });
    const d = find(tlsObjects, 'Deployment', 'audit-logwarden');
    const tp = loadContainerPipeline(tlsObjects, d);
    assert.equal(tp.input.tls, 'on');
    assert.equal(tp.input['tls.verify_client_cert'], 'on');
    assert.equal(tp.input['tls.verify'], undefined, 'tls.verify stays at its default, on');
    const files = mountedFiles(tlsObjects, d, container(d, 'logwarden'));
    for (const opt of ['tls.crt_file', 'tls.key_file', 'tls.ca_file']) {
      assert.ok(files.has(String(tp.input[opt])), `${opt} ${String(tp.input[opt])} is mounted`);
    }
    assert.throws(() => render({ mode: 'aggregator', forward: { ...key.forward, tls: { enabled: true } } }), /secretName/);
  });
});

describe('helm: values', () => {
  it('refuses to render without a shared key, and never invents one', () => {
    assert.throws(() => helmTemplate(chart, { values: {} }), /forward\.sharedKey\.value .* is required/);
  });

  it('an existing Secret replaces the generated one', () => {
    const objects = render({ forward: { sharedKey: { existingSecret: 'my-key', existingSecretKey: 'key' } } });
    assert.ok(!objects.some((o) => o.kind === 'Secret'));
    const ds = find(objects, 'DaemonSet', 'audit-logwarden');
    for (const c of ['logwarden', 'fluent-bit']) {
      const ref = container(ds, c).env.find((e: Obj) => e.name === 'FORWARD_SHARED_KEY').valueFrom.secretKeyRef;
      assert.deepEqual(ref, { name: 'my-key', key: 'key' });
    }
    assert.throws(() => render({ forward: { sharedKey: { existingSecret: 'my-key', value: 'x' } } }), /not both/);
  });

  it('rules files: ConfigMap keys, mounted paths and rules_file agree, in name order', () => {
    const rules = {
      'b-local.yaml': '- list: allowed_namespaces\n  items: [b]\n  override:\n    items: append\n',
      'a-site.yaml': '- list: allowed_k8s_users\n  items: [ci]\n  override:\n    items: append\n',
    };
    const objects = render({ rules });
    const ds = find(objects, 'DaemonSet', 'audit-logwarden');
    assert.deepEqual(Object.keys(find(objects, 'ConfigMap', 'audit-logwarden-rules').data).sort(), ['a-site.yaml', 'b-local.yaml']);
    const p = loadContainerPipeline(objects, ds);
    const detect = p.loaded.filters.find((f) => f.name === 'detect')!.raw.values;
    assert.deepEqual(detect.rules_file, ['/opt/logwarden/rules/k8s_audit_rules.yaml', '/etc/logwarden/rules/a-site.yaml', '/etc/logwarden/rules/b-local.yaml']);
    assert.equal(p.files.get('/etc/logwarden/rules/a-site.yaml'), rules['a-site.yaml']);
    assertPipelineFiles(ds, p);
  });

  it('a pipeline value replaces the generated pipeline verbatim', () => {
    const pipeline = 'pipeline:\n  inputs:\n    - name: forward\n      port: 24224\n  outputs:\n    - name: stdout\n      match: "*"\n';
    const cm = find(render({ pipeline }), 'ConfigMap', 'audit-logwarden-pipeline');
    assert.equal(cm.data['pipeline.yaml'], pipeline);
  });

  it('without Loki and Alertmanager the pipeline prints to stdout instead of having no output', () => {
    const objects = render({ loki: { enabled: false }, alertmanager: { enabled: false } });
    const p = loadContainerPipeline(objects, find(objects, 'DaemonSet', 'audit-logwarden'));
    assert.deepEqual(
      p.loaded.outputs.map((o) => o.name),
      ['stdout'],
    );
  });

  it('the audit log folder is mounted where Fluent Bit tails it, for any auditLogDir', () => {
    for (const dir of ['/var/log/kube-audit', '/var/log/kubernetes/audit']) {
      const objects = render({ sidecar: { fluentBit: { auditLogDir: dir, auditLogFile: 'kube-apiserver-audit.log' } } });
      const ds = find(objects, 'DaemonSet', 'audit-logwarden');
      const fb = fluentBitConfig(objects, ds);
      const tail = assertAuditTail(ds, fb);
      assert.equal(tail.path, `${dir}/kube-apiserver-audit.log`);
      const m = mountFor(fb.c, tail.path)!;
      const vol = (pod(ds).volumes as Obj[]).find((v) => v.name === m.name)!;
      // The file Fluent Bit opens is the node's file the API server writes.
      assert.equal(`${vol.hostPath.path}${tail.path.slice(m.mountPath.length)}`, `${dir}/kube-apiserver-audit.log`);
    }
  });

  it('the ServiceMonitor is off by default (an install must not need the Prometheus Operator CRDs) and renders when enabled', () => {
    assert.ok(!render().some((o) => o.kind === 'ServiceMonitor'));
    assert.ok(!render({ mode: 'aggregator' }).some((o) => o.kind === 'ServiceMonitor'));
    const sm = find(render({ serviceMonitor: { enabled: true } }), 'ServiceMonitor', 'audit-logwarden');
    assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
    assert.deepEqual(
      (sm.spec.endpoints as Obj[]).map((e) => e.port),
      ['http', 'fb-http'],
    );
  });

  it('the PrometheusRule is off by default and, enabled, holds deploy/prometheus/logwarden-rules.yaml', () => {
    assert.ok(!render().some((o) => o.kind === 'PrometheusRule'));
    assert.ok(!render({ mode: 'aggregator', serviceMonitor: { enabled: true } }).some((o) => o.kind === 'PrometheusRule'));
    const shipped = readFileSync(join(repoRoot, 'deploy', 'prometheus', 'logwarden-rules.yaml'));
    // The chart reads its copy (a chart cannot read files outside its folder): the same bytes.
    assert.ok(
      readFileSync(join(chart, 'files', 'logwarden-rules.yaml')).equals(shipped),
      'deploy/helm/logwarden/files/logwarden-rules.yaml differs from deploy/prometheus/logwarden-rules.yaml: copy it over',
    );
    for (const mode of ['sidecar', 'aggregator']) {
      const pr = find(render({ mode, prometheusRule: { enabled: true, labels: { release: 'kube-prometheus-stack' } } }), 'PrometheusRule', 'audit-logwarden');
      assert.equal(pr.apiVersion, 'monitoring.coreos.com/v1');
      assert.equal(pr.metadata.labels!.release, 'kube-prometheus-stack');
      assert.equal(pr.metadata.labels!['app.kubernetes.io/instance'], 'audit');
      assert.deepEqual(pr.spec, parse(shipped.toString('utf8')), mode);
      const rules = (pr.spec.groups as Array<{ rules: Array<{ alert: string; annotations: { summary: string } }> }>).flatMap((g) => g.rules);
      assert.ok(rules.length > 0);
      // Prometheus' templates are data to Helm: they reach the object as written.
      assert.equal(rules.find((r) => r.alert === 'LogwardenDown')!.annotations.summary, 'logwarden {{ $labels.pod }} is not scraped: audit events are not processed there');
    }
  });

  it('alert hostname: the node name in sidecar mode, the pod (the process host name) in aggregator mode', () => {
    const side = render();
    const sp = loadContainerPipeline(side, find(side, 'DaemonSet', 'audit-logwarden'));
    assert.equal(sp.loaded.filters.find((f) => f.name === 'detect')!.raw.values.hostname, '<spec.nodeName>');
    const agg = render({ mode: 'aggregator' });
    const ap = loadContainerPipeline(agg, find(agg, 'Deployment', 'audit-logwarden'));
    assert.equal(ap.loaded.filters.find((f) => f.name === 'detect')!.raw.values.hostname, undefined);
  });

  it('serviceMonitor, networkPolicy and pdb can be turned off', () => {
    const objects = render({ mode: 'aggregator', serviceMonitor: { enabled: false }, networkPolicy: { enabled: false }, pdb: { enabled: false } });
    for (const kind of ['ServiceMonitor', 'NetworkPolicy', 'PodDisruptionBudget']) assert.ok(!objects.some((o) => o.kind === kind), kind);
  });

  it('the web page is off by default: no ui options, no ui output, no ui Service', () => {
    const objects = render();
    const p = loadContainerPipeline(objects, find(objects, 'DaemonSet', 'audit-logwarden'));
    assert.ok(!Object.keys(p.loaded.service.values).some((k) => k === 'ui' || k.startsWith('ui.')));
    assert.ok(!p.loaded.outputs.some((o) => o.name === 'ui'));
    assert.ok(!objects.some((o) => o.metadata.name.endsWith('-ui')));
  });

  it('ui.alertmanagerSilences off, or no alertmanager output: mutes stay on the page', () => {
    for (const values of [
      { ui: { enabled: true, alertmanagerSilences: false, auth: { existingSecret: 'page-creds' } } },
      { ui: { enabled: true, auth: { existingSecret: 'page-creds' } }, alertmanager: { enabled: false } },
    ]) {
      const objects = render({ mode: 'aggregator', ...values });
      objects.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'page-creds' }, data: { username: 'YWRtaW4=', password: 'czNjcjN0' } });
      const p = loadContainerPipeline(objects, find(objects, 'Deployment', 'audit-logwarden'));
      assert.equal(p.loaded.service.values.ui, 'on');
      assert.equal(p.loaded.service.values['ui.alertmanager_url'], undefined, JSON.stringify(values));
    }
  });

  it('ui.enabled: the page on http.port behind a ClientIP-affine Service, credentials from the Secret, alerts to a ui output', () => {
    const ui = { enabled: true, servicePort: 8080, maxAlerts: 5000, retention: '3d', auth: { existingSecret: 'page-creds', tokenKey: 'token' } };
    const objects = render({ mode: 'aggregator', ui, networkPolicy: { uiFrom: [{ namespaceSelector: { matchLabels: { team: 'security' } } }] } });
    // The credentials Secret comes from outside the chart.
    objects.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'page-creds' }, data: { username: 'YWRtaW4=', password: 'czNjcjN0', token: 'dDBr' } });
    const dep = find(objects, 'Deployment', 'audit-logwarden');
    const p = loadContainerPipeline(objects, dep);
    const svc = p.loaded.service.values;
    assert.equal(svc.ui, 'on');
    assert.equal(Number(svc['ui.max_alerts']), 5000);
    assert.equal(svc['ui.retention'], '3d');
    assert.equal(svc['ui.db_path'], '/var/lib/logwarden/ui/alerts.db');
    assert.deepEqual([svc['ui.http_user'], svc['ui.http_passwd'], svc['ui.bearer_token']], ['admin', 's3cr3t', 't0k'], 'read from the Secret through the environment');
    const am = p.loaded.outputs.find((o) => o.name === 'alertmanager')!;
    assert.equal(svc['ui.alertmanager_url'], am.raw.values.url, 'mutes on the page become silences in the Alertmanager the alerts go to');
    assert.ok(mountFor(container(dep, 'logwarden'), String(svc['ui.db_path'])), 'the alert file is on a writable volume');
    const out = p.loaded.outputs.find((o) => o.name === 'ui')!;
    const detect = p.loaded.filters.find((f) => f.name === 'detect')!.raw.values;
    assert.equal(out.raw.values.match, detect.alert_tag, 'the ui output takes the detect alerts');
    assert.equal(detect.include_event, 'on', 'alerts carry their audit event for the page');

    const page = find(objects, 'Service', 'audit-logwarden-ui');
    assert.equal(page.spec.sessionAffinity, 'ClientIP');
    assert.ok(selects({ matchLabels: page.spec.selector }, dep.spec.template.metadata.labels));
    const port = (page.spec.ports as Obj[])[0]!;
    assert.equal(port.port, 8080);
    assert.equal(portNumber(container(dep, 'logwarden'), port.targetPort), Number(svc.http_port));
    const np = find(objects, 'NetworkPolicy', 'audit-logwarden');
    const rule = (np.spec.ingress as Obj[]).find((r) => r.from[0].namespaceSelector?.matchLabels?.team === 'security')!;
    assert.deepEqual(
      (rule.ports as Obj[]).map((x) => x.port),
      [Number(svc.http_port)],
    );
  });

  it('ui.enabled refuses to render a page without credentials unless it is declared anonymous', () => {
    assert.throws(() => render({ ui: { enabled: true } }), /ui\.enabled needs ui\.auth\.existingSecret/);
    assert.throws(() => render({ ui: { enabled: true, auth: { existingSecret: 's', anonymous: true } } }), /not both/);
    assert.throws(() => render({ ui: { enabled: true, auth: { existingSecret: 's', userKey: '', tokenKey: '' } } }), /needs ui\.auth\.userKey/);
    const objects = render({ ui: { enabled: true, dbPath: '', auth: { anonymous: true } } });
    const p = loadContainerPipeline(objects, find(objects, 'DaemonSet', 'audit-logwarden'));
    const svc = p.loaded.service.values;
    assert.equal(svc.ui, 'on');
    for (const k of ['ui.http_user', 'ui.http_passwd', 'ui.bearer_token', 'ui.db_path']) assert.equal(svc[k], undefined, k);
    assert.ok(!container(find(objects, 'DaemonSet', 'audit-logwarden'), 'logwarden').env.some((e: Obj) => String(e.name).startsWith('UI_')));
  });

  it('rejects an unknown mode', () => {
    assert.throws(() => render({ mode: 'daemon' }), /mode must be sidecar or aggregator/);
  });

  it('a release named like the chart keeps the short names', () => {
    assert.ok(find(render({}, 'logwarden'), 'DaemonSet', 'logwarden'));
  });
});

describe('helm: persistence', () => {
  const page = { enabled: true, auth: { anonymous: true } };

  /** What storage.path is backed by in a workload: the pod volume, or the claim template of that name. */
  function storageOf(w: K8sObject): { mount: Obj; volume?: Obj; claim?: Obj; path: string } {
    const c = container(w, 'logwarden');
    const path = '/var/lib/logwarden';
    const mount = mountFor(c, path)!;
    assert.ok(mount, 'storage.path is mounted');
    return {
      mount,
      path,
      volume: ((pod(w).volumes ?? []) as Obj[]).find((v) => v.name === mount.name),
      claim: ((w.spec.volumeClaimTemplates ?? []) as Obj[]).find((t) => t.metadata.name === mount.name),
    };
  }

  it('is off by default: storage.path is an emptyDir in both modes, no claims, no init container', () => {
    for (const mode of ['sidecar', 'aggregator']) {
      const objects = render({ mode, ui: page });
      const w = objects.find((o) => o.kind === 'DaemonSet' || o.kind === 'Deployment')!;
      assert.ok(!objects.some((o) => o.kind === 'StatefulSet' || o.kind === 'PersistentVolumeClaim'), mode);
      const p = loadContainerPipeline(objects, w);
      const s = storageOf(w);
      assert.equal(p.loaded.service.values['storage.path'], s.path);
      assert.deepEqual(s.volume?.emptyDir, { sizeLimit: '1Gi' }, mode);
      assert.equal(pod(w).initContainers, undefined, mode);
    }
  });

  it('aggregator: a StatefulSet with one claim per replica holding storage.path, the dead letters and the SQLite file', () => {
    const objects = render({ mode: 'aggregator', aggregator: { replicas: 3 }, ui: page, persistence: { enabled: true, size: '20Gi', storageClass: 'fast-ssd' } });
    assert.ok(!objects.some((o) => o.kind === 'Deployment'), 'no Deployment beside the StatefulSet');
    const sts = find(objects, 'StatefulSet', 'audit-logwarden');
    assert.equal(sts.spec.replicas, 3);
    assert.equal(sts.spec.podManagementPolicy, 'Parallel');
    const p = loadContainerPipeline(objects, sts);
    assertProbes(sts, p);
    assertPipelineFiles(sts, p);
    assertRestricted(sts, container(sts, 'logwarden'));
    const s = storageOf(sts);
    assert.equal(s.volume, undefined, 'no pod volume shadows the claim template');
    assert.ok(s.claim, 'storage.path is a volumeClaimTemplate');
    assert.deepEqual(s.claim.spec, { accessModes: ['ReadWriteOnce'], storageClassName: 'fast-ssd', resources: { requests: { storage: '20Gi' } } });
    const svc = p.loaded.service.values;
    // The dead letters default to <storage.path>/dead-letter/, the SQLite file is ui.db_path.
    for (const path of [String(svc['storage.path']), `${String(svc['storage.path'])}/dead-letter/loki_alerts.jsonl`, String(svc['ui.db_path'])]) {
      assert.equal(mountFor(container(sts, 'logwarden'), path)?.name, s.mount.name, `${path} is on the claim`);
    }
    // The governing Service exists, is headless and selects the pods; the PDB covers them.
    const labels = sts.spec.template.metadata.labels as Record<string, string>;
    const gov = find(objects, 'Service', sts.spec.serviceName);
    assert.equal(gov.spec.clusterIP, 'None');
    assert.ok(selects({ matchLabels: gov.spec.selector }, labels));
    assert.ok(selects(find(objects, 'PodDisruptionBudget', 'audit-logwarden').spec.selector, labels));
    assert.ok(selects({ matchLabels: find(objects, 'Service', 'audit-logwarden').spec.selector }, labels), 'the forward Service still reaches the replicas');
    assert.ok(selects(sts.spec.selector, labels));
  });

  it('storageClass: "" is the cluster default, "-" is no class (pre-provisioned volumes)', () => {
    const claim = (storageClass: string) =>
      (find(render({ mode: 'aggregator', persistence: { enabled: true, storageClass } }), 'StatefulSet', 'audit-logwarden').spec.volumeClaimTemplates as Obj[])[0]!.spec;
    assert.ok(!('storageClassName' in claim('')));
    assert.equal(claim('-').storageClassName, '');
    assert.deepEqual(
      (find(render({ mode: 'aggregator', persistence: { enabled: true, accessModes: ['ReadWriteOncePod'] } }), 'StatefulSet', 'audit-logwarden').spec.volumeClaimTemplates as Obj[])[0]!.spec
        .accessModes,
      ['ReadWriteOncePod'],
    );
  });

  it('aggregator with an existing claim: one replica, Recreate rollouts; several replicas fail the render', () => {
    const objects = render({ mode: 'aggregator', aggregator: { replicas: 1 }, persistence: { enabled: true, existingClaim: 'logwarden-data' } });
    assert.ok(!objects.some((o) => o.kind === 'StatefulSet'));
    const dep = find(objects, 'Deployment', 'audit-logwarden');
    assert.equal(dep.spec.replicas, 1);
    assert.deepEqual(dep.spec.strategy, { type: 'Recreate' });
    assert.deepEqual(storageOf(dep).volume, { name: 'storage', persistentVolumeClaim: { claimName: 'logwarden-data' } });
    assertPipelineFiles(dep, loadContainerPipeline(objects, dep));
    assert.throws(
      () => render({ mode: 'aggregator', persistence: { enabled: true, existingClaim: 'logwarden-data' } }),
      /persistence\.existingClaim logwarden-data is one volume.*aggregator\.replicas: 1/,
    );
    // Without persistence the rolling update keeps its surge.
    assert.equal(find(render({ mode: 'aggregator' }), 'Deployment', 'audit-logwarden').spec.strategy.rollingUpdate.maxSurge, 1);
  });

  it('sidecar: a node directory per control-plane node, handed to the logwarden uid by an init container', () => {
    const objects = render({ ui: page, persistence: { enabled: true, hostPath: '/srv/logwarden' } });
    assert.ok(!objects.some((o) => o.kind === 'PersistentVolumeClaim' || o.kind === 'StatefulSet'));
    const ds = find(objects, 'DaemonSet', 'audit-logwarden');
    const s = storageOf(ds);
    assert.deepEqual(s.volume?.hostPath, { path: '/srv/logwarden', type: 'DirectoryOrCreate' });
    const p = loadContainerPipeline(objects, ds);
    assertPipelineFiles(ds, p);
    assert.equal(mountFor(container(ds, 'logwarden'), String(p.loaded.service.values['ui.db_path']))?.name, s.mount.name);
    assert.notEqual(s.volume?.hostPath.path, volume(ds, 'fluent-bit-state').hostPath.path, 'Fluent Bit keeps its own directory');

    const inits = pod(ds).initContainers as Obj[];
    assert.equal(inits.length, 1);
    const init = inits[0]!;
    assert.equal(init.image, container(ds, 'logwarden').image);
    assert.deepEqual(init.volumeMounts, [{ name: s.mount.name, mountPath: s.mount.mountPath }]);
    const lw = container(ds, 'logwarden').securityContext;
    assert.deepEqual(init.command, ['sh', '-c', `chown ${lw.runAsUser}:${lw.runAsGroup} ${s.mount.mountPath} && chmod 0750 ${s.mount.mountPath}`]);
    // Root for the chown, and nothing but the two capabilities it needs.
    assert.equal(init.securityContext.runAsUser, 0);
    assert.deepEqual(init.securityContext.capabilities, { drop: ['ALL'], add: ['CHOWN', 'FOWNER'] });
    assert.equal(init.securityContext.allowPrivilegeEscalation, false);
    assert.equal(init.securityContext.readOnlyRootFilesystem, true);
    assert.equal(init.securityContext.seccompProfile.type, 'RuntimeDefault');
  });

  it("sidecar refuses a claim, an empty hostPath and Fluent Bit's state directory", () => {
    assert.throws(() => render({ persistence: { enabled: true, existingClaim: 'x' } }), /existingClaim is for aggregator mode/);
    assert.throws(() => render({ persistence: { enabled: true, hostPath: '' } }), /needs persistence\.hostPath/);
    assert.throws(() => render({ persistence: { enabled: true, hostPath: '/var/lib/logwarden/fluent-bit/' } }), /must differ from sidecar\.fluentBit\.stateDir/);
  });
});

describe('helm: shared alert store (ui.postgres)', () => {
  const url = 'postgres://logwarden:pw@postgres.db.svc:5432/logwarden?sslmode=require';
  const storeSecret = (data: Record<string, string>): K8sObject => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'alert-store' },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  });
  const ui = (postgres: Record<string, unknown>) => ({ enabled: true, auth: { anonymous: true }, postgres: { existingSecret: 'alert-store', ...postgres } });

  it('the URL comes from the Secret through LOGWARDEN_UI_STORE into ui.store; no SQLite file, no session affinity', () => {
    const objects = render({ mode: 'aggregator', aggregator: { replicas: 3 }, ui: ui({}) });
    objects.push(storeSecret({ url }));
    const dep = find(objects, 'Deployment', 'audit-logwarden');
    assert.equal(dep.spec.replicas, 3);
    const p = loadContainerPipeline(objects, dep);
    const svc = p.loaded.service.values;
    assert.equal(svc.ui, 'on');
    assert.equal(svc['ui.store'], url);
    assert.equal(p.env.LOGWARDEN_UI_STORE, url);
    assert.equal(svc['ui.db_path'], undefined, 'the shared store replaces the per-pod SQLite file');
    assert.deepEqual(container(dep, 'logwarden').env.find((e: Obj) => e.name === 'LOGWARDEN_UI_STORE').valueFrom.secretKeyRef, { name: 'alert-store', key: 'url' });
    assert.ok(!container(dep, 'logwarden').env.some((e: Obj) => e.name === 'PGUSER' || e.name === 'PGPASSWORD'));
    const pageSvc = find(objects, 'Service', 'audit-logwarden-ui');
    assert.equal(pageSvc.spec.sessionAffinity, undefined, 'any replica serves the whole page');
    assert.ok(selects({ matchLabels: pageSvc.spec.selector }, dep.spec.template.metadata.labels));
  });

  it('libpq credentials beside a URL without them, and another key for the URL (CloudNativePG: uri)', () => {
    const objects = render({ mode: 'aggregator', ui: ui({ secretKey: 'uri', userKey: 'username', passwordKey: 'password' }) });
    objects.push(storeSecret({ uri: 'postgresql://pg-rw.db.svc/app', username: 'app', password: 's3cr3t' }));
    const p = loadContainerPipeline(objects, find(objects, 'Deployment', 'audit-logwarden'));
    assert.equal(p.loaded.service.values['ui.store'], 'postgresql://pg-rw.db.svc/app');
    assert.equal(p.env.PGUSER, 'app');
    assert.equal(p.env.PGPASSWORD, 's3cr3t');
  });

  it("in sidecar mode too: every control-plane node's pod writes to the one store", () => {
    const objects = render({ ui: ui({}) });
    objects.push(storeSecret({ url }));
    const p = loadContainerPipeline(objects, find(objects, 'DaemonSet', 'audit-logwarden'));
    assert.equal(p.loaded.service.values['ui.store'], url);
    assert.equal(find(objects, 'Service', 'audit-logwarden-ui').spec.sessionAffinity, undefined);
  });

  it('without it the pods keep their own alerts: SQLite at ui.dbPath and ClientIP affinity', () => {
    const objects = render({ mode: 'aggregator', ui: { enabled: true, auth: { anonymous: true } } });
    const p = loadContainerPipeline(objects, find(objects, 'Deployment', 'audit-logwarden'));
    assert.equal(p.loaded.service.values['ui.store'], undefined);
    assert.equal(p.loaded.service.values['ui.db_path'], '/var/lib/logwarden/ui/alerts.db');
    assert.equal(find(objects, 'Service', 'audit-logwarden-ui').spec.sessionAffinity, 'ClientIP');
    assert.ok(!container(find(objects, 'Deployment', 'audit-logwarden'), 'logwarden').env.some((e: Obj) => e.name === 'LOGWARDEN_UI_STORE'));
  });

  it('refuses a store without the page, and a Secret without a key', () => {
    assert.throws(() => render({ ui: { postgres: { existingSecret: 'alert-store' } } }), /ui\.postgres\.existingSecret has no effect unless ui\.enabled/);
    assert.throws(() => render({ ui: ui({ secretKey: '' }) }), /needs ui\.postgres\.secretKey/);
  });

  it('with persistence the claims keep the buffer and dead letters, and still no SQLite file', () => {
    const objects = render({ mode: 'aggregator', ui: ui({}), persistence: { enabled: true } });
    objects.push(storeSecret({ url }));
    const sts = find(objects, 'StatefulSet', 'audit-logwarden');
    const p = loadContainerPipeline(objects, sts);
    assert.equal(p.loaded.service.values['ui.db_path'], undefined);
    assert.equal(p.loaded.service.values['ui.store'], url);
    assert.equal(mountFor(container(sts, 'logwarden'), String(p.loaded.service.values['storage.path']))?.name, (sts.spec.volumeClaimTemplates as Obj[])[0]!.metadata.name);
  });
});

describe('helm: forward.storageType', () => {
  it('memory by default; filesystem buffers the forward input under storage.path, on the claim', () => {
    const plain = render({ mode: 'aggregator' });
    assert.equal(loadContainerPipeline(plain, find(plain, 'Deployment', 'audit-logwarden')).input['storage.type'], undefined);
    const objects = render({ mode: 'aggregator', forward: { ...key.forward, storageType: 'filesystem' }, persistence: { enabled: true } });
    const sts = find(objects, 'StatefulSet', 'audit-logwarden');
    const p = loadContainerPipeline(objects, sts);
    assert.equal(p.input['storage.type'], 'filesystem');
    assert.equal(mountFor(container(sts, 'logwarden'), String(p.loaded.service.values['storage.path']))?.name, (sts.spec.volumeClaimTemplates as Obj[])[0]!.metadata.name);
  });

  it('filesystem without persistence fails the render: acked chunks would die with the pod', () => {
    assert.throws(() => render({ forward: { ...key.forward, storageType: 'filesystem' } }), /needs persistence\.enabled/);
    assert.throws(() => render({ forward: { ...key.forward, storageType: 'disk' } }), /memory or filesystem, not disk/);
  });
});

/**
 * Kubernetes audit events (audit.k8s.io/v1 Event) for interop tests and benchmarks: realistic in
 * shape and size (users, verbs, resources, object references, annotations, a few request and
 * response objects, some non-ASCII text), deterministic in `seq`, each with a unique auditID that
 * the receiving side counts.
 */

const users = [
  { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'] },
  { username: 'system:kube-scheduler', groups: ['system:authenticated'] },
  { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
  { username: 'jürgen@example.com', groups: ['developers', 'system:authenticated'] },
  { username: 'system:node:worker-3', groups: ['system:nodes', 'system:authenticated'] },
];
const verbs = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const resources = [
  { resource: 'pods', apiGroup: '', apiVersion: 'v1' },
  { resource: 'secrets', apiGroup: '', apiVersion: 'v1' },
  { resource: 'configmaps', apiGroup: '', apiVersion: 'v1' },
  { resource: 'deployments', apiGroup: 'apps', apiVersion: 'v1' },
  { resource: 'leases', apiGroup: 'coordination.k8s.io', apiVersion: 'v1' },
  { resource: 'rolebindings', apiGroup: 'rbac.authorization.k8s.io', apiVersion: 'v1' },
];
const namespaces = ['default', 'kube-system', 'payments', 'monitoring', 'ci-ñandú'];

/** A stable UUID-shaped id for `seq`. */
export function auditId(seq: number, run = 0): string {
  const h = (seq * 2654435761 + run * 40503) >>> 0;
  const s = seq.toString(16).padStart(12, '0');
  return `${h.toString(16).padStart(8, '0')}-${(run & 0xffff).toString(16).padStart(4, '0')}-4${s.slice(0, 3)}-a${s.slice(3, 6)}-${s.slice(0, 12)}`;
}

export function auditEvent(seq: number, run = 0, base = Date.UTC(2026, 0, 15, 12, 0, 0)): Record<string, unknown> {
  const user = users[seq % users.length]!;
  const verb = verbs[seq % verbs.length]!;
  const r = resources[seq % resources.length]!;
  const ns = namespaces[seq % namespaces.length]!;
  const name = `${r.resource.replace(/s$/, '')}-${(seq * 7919) % 10007}`;
  const received = new Date(base + seq * 3).toISOString().replace('Z', '000Z');
  const done = new Date(base + seq * 3 + 2).toISOString().replace('Z', '000Z');
  const path = `/${r.apiGroup ? `apis/${r.apiGroup}` : 'api'}/${r.apiVersion}/namespaces/${ns}/${r.resource}${verb === 'list' || verb === 'watch' || verb === 'create' ? '' : `/${name}`}`;
  const write = verb === 'create' || verb === 'update' || verb === 'patch';
  const code = seq % 29 === 0 ? 403 : seq % 17 === 0 ? 404 : verb === 'create' ? 201 : 200;
  const ev: Record<string, unknown> = {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: write ? 'RequestResponse' : 'Metadata',
    auditID: auditId(seq, run),
    stage: 'ResponseComplete',
    requestURI: verb === 'watch' ? `${path}?allowWatchBookmarks=true&resourceVersion=${1000 + seq}&watch=true` : path,
    verb,
    user,
    sourceIPs: [`10.${(seq >> 8) & 255}.${seq & 255}.${(seq * 13) % 250}`],
    userAgent:
      seq % 3 === 0 ? 'kubectl/v1.30.2 (linux/amd64) kubernetes/3968350' : 'kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/3968350/system:serviceaccount:kube-system:replicaset-controller',
    objectRef: { resource: r.resource, namespace: ns, name, apiGroup: r.apiGroup || undefined, apiVersion: r.apiVersion },
    responseStatus:
      code >= 400
        ? { metadata: {}, status: 'Failure', message: `${r.resource} "${name}" is forbidden — Zugriff verweigert`, reason: code === 403 ? 'Forbidden' : 'NotFound', code }
        : { metadata: {}, code },
    requestReceivedTimestamp: received,
    stageTimestamp: done,
    annotations: {
      'authorization.k8s.io/decision': code === 403 ? 'forbid' : 'allow',
      'authorization.k8s.io/reason': `RBAC: allowed by ClusterRoleBinding "system:controller:${r.resource}" of ClusterRole "edit" to Group "${user.groups[0]}"`,
    },
    seq,
  };
  if (write) {
    ev.requestObject = {
      kind: 'ConfigMap',
      apiVersion: 'v1',
      metadata: { name, namespace: ns, labels: { app: 'checkout', 'app.kubernetes.io/part-of': 'shop' } },
      data: { 'config.yaml': `replicas: ${seq % 5}\nmessage: "grüße aus ${ns}"\n` },
    };
  }
  return JSON.parse(JSON.stringify(ev)) as Record<string, unknown>;
}

/** `count` events as JSON lines (what a kube-apiserver audit log file holds). */
export function auditLines(count: number, run = 0, from = 0): string {
  let s = '';
  for (let i = from; i < from + count; i++) s += `${JSON.stringify(auditEvent(i, run))}\n`;
  return s;
}

/** The auditIDs in `text` (JSON lines or any JSON), each with how many times it occurs. */
export function countAuditIds(text: string): Map<string, number> {
  const seen = new Map<string, number>();
  for (const m of text.matchAll(/"auditID":"([0-9a-f-]{36})"/g)) seen.set(m[1]!, (seen.get(m[1]!) ?? 0) + 1);
  return seen;
}

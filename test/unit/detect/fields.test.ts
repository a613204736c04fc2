/**
 * The field table against test/fixtures/conformance/falco-k8saudit/FIELDS.md (every field, its list
 * type and argument), and extraction as the k8saudit and json plugins do it, including the
 * places where logwarden fixes an upstream extraction bug.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { newAuditEvent } from '../../../src/falco/event.js';
import { FIELDS, imageRepository, type FieldValue } from '../../../src/falco/fields.js';
import { falcoCorpus } from '../../support/paths.js';
import { auditEvent } from './helpers.js';

const corpus = join(falcoCorpus);

function extract(name: string, event: Record<string, unknown>, arg?: string): FieldValue {
  const f = FIELDS.get(name);
  assert.ok(f, name);
  return f.make(arg)(newAuditEvent(event, 'test'));
}

interface Row {
  names: string[];
  list: boolean;
  arg: 'none' | 'key' | 'index';
}

function fieldsMd(): Row[] {
  const rows: Row[] = [];
  for (const line of readFileSync(join(corpus, 'FIELDS.md'), 'utf8').split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 5 || !cells[1]!.startsWith('`')) continue;
    const names = [...cells[1]!.matchAll(/`([a-z][\w.]*)`/g)].map((m) => m[1]!);
    const arg = cells[3]!.startsWith('key') ? 'key' : cells[3]!.startsWith('index') ? 'index' : 'none';
    rows.push({ names, list: cells[2] === 'string list', arg });
  }
  return rows;
}

describe('field table', () => {
  it('has every field of FIELDS.md with its type and argument kind', () => {
    const rows = fieldsMd();
    assert.ok(rows.length >= 103, `${rows.length} rows read`);
    for (const r of rows) {
      for (const n of r.names) {
        const f = FIELDS.get(n);
        assert.ok(f, `missing field ${n}`);
        assert.equal(f.type === 'list', r.list, `${n}: list type`);
        assert.equal(f.arg, r.arg, `${n}: argument`);
      }
    }
  });
});

describe('extraction', () => {
  const pod = JSON.parse(readFileSync(join(corpus, 'events', 'create_nginx_pod_privileged_2nd_container.json'), 'utf8').trim()) as Record<string, unknown>;

  it('reads a pod creation as the k8saudit plugin does', () => {
    assert.deepEqual(extract('ka.req.pod.containers.image', pod), ['nginx', 'mysql:latest']);
    assert.deepEqual(extract('ka.req.pod.containers.image.repository', pod), ['nginx', 'mysql']);
    assert.deepEqual(extract('ka.req.pod.containers.privileged', pod), ['false', 'true']);
    assert.equal(extract('ka.req.container.privileged', pod), 'true');
    assert.equal(extract('ka.req.container.image', pod), 'nginx');
    assert.equal(extract('ka.verb', pod), 'create');
    assert.equal(extract('ka.response.code', pod), '201', 'numbers as decimal text');
    assert.equal(extract('ka.target.pod.name', pod), 'nginx-deployment-544b59f8b8-ffkxm', 'responseObject.metadata.name of a plain pod request');
    assert.equal(extract('ka.target.pod.name', auditEvent()), undefined, 'not for a subresource');
    assert.equal(extract('jevt.rawtime', pod), '1540489987006845000', 'stageTimestamp 2018-10-25T17:53:07.006845Z in ns');
    assert.match(extract('jevt.obj', pod) as string, /^\{\n {2}"annotations": \{/);
  });

  it('walks container lists with an index, skips missing values, renders objects as compact JSON', () => {
    const ev = auditEvent({
      requestObject: {
        spec: {
          containers: [
            {
              name: 'a',
              image: 'a:1',
              command: ['sh', '-c', 'x'],
              securityContext: { capabilities: { add: ['NET_ADMIN', 'SYS_TIME'] } },
              ports: [{ containerPort: 80 }, { containerPort: 443, hostPort: 8443 }],
            },
            { name: 'b', image: 'b:2' },
          ],
          ports: [{ port: 80 }, { port: 443 }],
          volumes: [
            { name: 'v', hostPath: { path: '/etc' } },
            { name: 'w', configMap: {}, secret: {} },
          ],
        },
      },
    });
    assert.deepEqual(extract('ka.req.pod.containers.name', ev, '1'), ['b']);
    assert.deepEqual(extract('ka.req.pod.containers.command', ev), ['sh -c x']);
    assert.deepEqual(extract('ka.req.pod.containers.add_capabilities', ev), ['["NET_ADMIN","SYS_TIME"]']);
    assert.deepEqual(extract('ka.req.pod.containers.host_port', ev), ['80', '8443']);
    assert.deepEqual(extract('ka.req.pod.containers.privileged', ev), undefined, 'no value at all: absent');
    assert.deepEqual(extract('ka.req.pod.volumes.volume_type', ev), ['hostPath', 'configMap', 'secret']);
    assert.deepEqual(extract('ka.req.service.ports', ev), ['[{"port":80},{"port":443}]']);
    assert.deepEqual(extract('ka.req.pod.containers.image', auditEvent({ requestObject: { spec: { containers: [{ name: 'x' }] } } })), undefined, 'a container without image: absent, as upstream');
  });

  it('ka.* fields need a top-level auditID; json fields do not', () => {
    const ev = { kind: 'Event', verb: 'get', stageTimestamp: '2024-05-01T12:00:00Z' };
    assert.equal(extract('ka.verb', ev), undefined);
    assert.equal(extract('jevt.value', ev, '/verb'), 'get');
    assert.equal(extract('ka.req.binding.subject.has_name', auditEvent(), 'x'), 'true', 'upstream returns true for every audit event');
  });

  it('binding subjects by kind', () => {
    const ev = auditEvent({
      requestObject: {
        subjects: [
          { kind: 'User', name: 'u1' },
          { kind: 'ServiceAccount', name: 'sa', namespace: 'ns' },
          { kind: 'ServiceAccount', name: 'nons' },
          { kind: 'Group', name: 'g' },
        ],
      },
    });
    assert.deepEqual(extract('ka.req.binding.subjects.user_names', ev), ['u1']);
    assert.deepEqual(extract('ka.req.binding.subjects.serviceaccount_names', ev), ['sa', 'nons']);
    assert.deepEqual(extract('ka.req.binding.subjects.serviceaccount_ns_names', ev), ['ns:sa']);
    assert.deepEqual(extract('ka.req.binding.subjects.group_names', ev), ['g']);
    assert.equal((extract('ka.req.binding.subjects', ev) as string[])[0], '{"kind":"User","name":"u1"}');
  });

  it('fixes the upstream extraction bugs listed in docs/detect.md', () => {
    assert.deepEqual(extract('ka.sourceips', auditEvent()), ['10.0.0.7', '10.0.0.8'], 'the top-level sourceIPs');
    assert.deepEqual(extract('ka.sourceips', auditEvent(), '1'), ['10.0.0.8']);
    const ev = auditEvent({
      requestObject: {
        spec: {
          securityContext: { runAsUser: 2000 },
          containers: [
            { name: 'a', image: 'a', securityContext: { runAsUser: 1000 } },
            { name: 'b', image: 'b' },
          ],
          volumes: [
            { name: 'x', emptyDir: {} },
            { name: 'y', hostPath: { path: '/var/run/docker.sock' } },
          ],
        },
      },
    });
    assert.deepEqual(extract('ka.req.pod.containers.eff_run_as_user', ev), ['1000', '2000'], 'securityContext of the container, else of the pod');
    assert.equal(extract('ka.req.volume.hostpath', ev, '/var/run/docker.sock'), 'true', 'every volume, not only the first');
    assert.equal(extract('ka.req.volume.hostpath', ev, '/var/*'), 'true');
    assert.equal(extract('ka.req.volume.hostpath', ev, '/etc'), 'false');
    assert.equal(imageRepository('registry.example.com:5000/team/app:1.2'), 'registry.example.com:5000/team/app');
    assert.equal(imageRepository('nginx@sha256:abcd'), 'nginx');
    assert.equal(imageRepository('docker.io/calico/node:v3.27'), 'docker.io/calico/node');
  });
});

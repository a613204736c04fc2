/**
 * Falco alert records → Alertmanager alerts (falcosidekick's shape), and the output's load-time
 * checks with file:line:col.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigErrors } from '../../../src/config/errors.js';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import type { AnyPlugin } from '../../../src/core/plugin.js';
import { buildAlert, DEFAULT_SEVERITY, fingerprint, priorityRank, safeLabelName, type AlertOptions } from '../../../src/outputs/alertmanager/alert.js';
import { alertmanagerOutput } from '../../../src/outputs/alertmanager/index.js';
import { lokiOutput } from '../../../src/outputs/loki/index.js';
import { startPipeline } from '../../support/output-pipeline.js';
import { repoRoot } from '../../support/paths.js';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

const opts: AlertOptions = { severity: DEFAULT_SEVERITY, expiresAfter: 0, extraLabels: [], extraAnnotations: [] };

function ev(record: Record<string, unknown>): LogEvent {
  return { tag: 'falco', time: new EventTime(1_700_000_000, 250_000_000), record };
}

test("label names are rewritten as falcosidekick's alertmanagerSafeLabel does", () => {
  assert.equal(safeLabelName('ka.user.name'), 'ka_user_name');
  assert.equal(safeLabelName('ka.req.pod.containers.image[0]'), 'ka_req_pod_containers_image_0');
  assert.equal(safeLabelName('jevt.value[/user/extra/x]'), 'jevt_value_user_extra_x');
  assert.equal(safeLabelName('__a__b__'), 'a_b');
  assert.equal(safeLabelName('a___b'), 'a__b', 'one ReplaceAll pass leaves a double underscore from three');
});

test('priorities rank as Falco orders them; info is an alias', () => {
  assert.ok(priorityRank('Emergency') > priorityRank('critical'));
  assert.equal(priorityRank('info'), priorityRank('Informational'));
  assert.ok(priorityRank('WARNING') > priorityRank('notice'));
  assert.equal(priorityRank('bogus'), -1);
  assert.equal(priorityRank(3), -1);
});

test('an alert has the fixed labels, output field labels and annotations', () => {
  const built = buildAlert(
    ev({
      time: '2026-01-02T03:04:05.123456789Z',
      rule: 'Create Privileged Pod',
      priority: 'Warning',
      source: 'k8s_audit',
      tags: ['k8s', 'container', 'MITRE'],
      output: 'Pod started with privileged container (user=alice)',
      output_fields: { 'ka.user.name': 'alice', 'ka.resp.code': 201, n_evts: 10, 'ka.req.pod.containers.privileged': [true], 'ka.x': null, rule: 'shadowed' },
      hostname: 'node-1',
    }),
    opts,
  );
  assert.ok(typeof built === 'object');
  assert.deepEqual(built.alert, {
    labels: {
      ka_user_name: 'alice',
      ka_resp_code: '201',
      rule: 'Create Privileged Pod',
      source: 'falco',
      alertname: 'Create Privileged Pod',
      eventsource: 'k8s_audit',
      hostname: 'node-1',
      tags: 'MITRE,container,k8s',
      priority: 'Warning',
      severity: 'warning',
    },
    annotations: {
      info: 'Pod started with privileged container (user=alice)',
      description: 'Pod started with privileged container (user=alice)',
      summary: 'Create Privileged Pod',
    },
    startsAt: '2026-01-02T03:04:05.123456789Z',
  });
  assert.equal(built.endsAtMs, undefined);
});

test('severity map, extra labels last, endsAt = time + expires_after', () => {
  const built = buildAlert(ev({ rule: 'R', priority: 'Emergency', output: 'o' }), {
    severity: { ...DEFAULT_SEVERITY, emergency: 'page' },
    expiresAfter: 90,
    extraLabels: [
      ['severity', 'override'],
      ['cluster', 'prod'],
    ],
    extraAnnotations: [['summary', 'custom']],
  });
  assert.ok(typeof built === 'object');
  assert.equal(built.alert.labels.severity, 'override');
  assert.equal(built.alert.labels.cluster, 'prod');
  assert.equal(built.alert.annotations.summary, 'custom');
  assert.equal(built.alert.startsAt, '2023-11-14T22:13:20.250000000Z');
  assert.equal(built.alert.endsAt, '2023-11-14T22:14:50.250Z');
  assert.equal(built.endsAtMs, 1_700_000_090_250);
  for (const [p, s] of [
    ['alert', 'critical'],
    ['critical', 'critical'],
    ['error', 'warning'],
    ['notice', 'information'],
    ['debug', 'information'],
  ]) {
    const b = buildAlert(ev({ rule: 'R', priority: p }), opts);
    assert.ok(typeof b === 'object' && b.alert.labels.severity === s, p);
  }
});

test('records that are not Falco alerts are refused with a reason; field names are data', () => {
  assert.match(buildAlert(ev({ msg: 'x' }), opts) as string, /no string "rule"/);
  assert.match(buildAlert(ev({ rule: 'R', priority: 'loud' }), opts) as string, /unknown priority "loud"/);
  const b = buildAlert(ev({ rule: 'R', priority: 'Error', output_fields: JSON.parse('{"__proto__":"p","constructor":"c"}') }), opts);
  assert.ok(typeof b === 'object');
  assert.equal(Object.getPrototypeOf(b.alert.labels), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(b.alert.labels, 'proto')?.value, 'p');
  assert.equal(Object.getOwnPropertyDescriptor(b.alert.labels, 'constructor')?.value, 'c');
  assert.equal(fingerprint({ b: '1', a: '2' }), fingerprint({ a: '2', b: '1' }));
});

const amYaml = (extra: string) => `pipeline:
  outputs:
    - name: alertmanager
      match: falco
${extra}
`;

async function configError(yaml: string, plugin: AnyPlugin = alertmanagerOutput): Promise<string> {
  try {
    await startPipeline(yaml, [plugin]);
  } catch (e) {
    assert.ok(e instanceof ConfigErrors, String(e));
    return e.message;
  }
  assert.fail('expected a configuration error');
}

test('configuration errors name the file, line, column and option', async () => {
  assert.match(await configError(amYaml('      url: http://a:9093\n      host: b')), /pipeline\.yaml:\d+:\d+.*url \(one or a list\) or host/s);
  assert.match(await configError(amYaml('      url: ftp://a')), /pipeline\.yaml:5:12.*expected an http\(s\) URL/s);
  assert.match(await configError(amYaml('      host: a\n      extra_labels: "bad-name:x"')), /pipeline\.yaml:6:21.*invalid name 'bad-name'/s);
  assert.match(await configError(amYaml('      host: a\n      severity_map: "loud:critical"')), /unknown priority 'loud'/);
  assert.match(await configError(amYaml('      host: a\n      minimum_priority: loud')), /expected one of debug, .*emergency, info/);
  assert.match(await configError(amYaml('      host: a\n      http_user: u\n      bearer_token: t')), /not both/);
  const loki = (extra: string) => `pipeline:\n  outputs:\n    - name: loki\n      match: '*'\n${extra}\n`;
  assert.match(await configError(loki('      compress: gzip'), lokiOutput), /pipeline\.yaml:5:17.*compress gzip applies to encoding json/s);
  assert.match(await configError(loki('      label_keys: level'), lokiOutput), /must start with '\$'/);
  assert.match(await configError(loki('      labels: job=a, job=b'), lokiOutput), /label 'job' is declared twice/);
  assert.match(await configError(loki('      tls.ca_file: /nonexistent/ca.pem'), lokiOutput), /cannot read \/nonexistent\/ca\.pem: ENOENT/);
});

test('url separated by commas (as ALERTMANAGER_URL is documented): every Alertmanager gets every alert, with the header option', async () => {
  const got: string[][] = [[], []];
  const servers = got.map((bodies) =>
    createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        bodies.push(`${req.method} ${req.url} ${String(req.headers['x-scope-orgid'])} ${body}`);
        res.writeHead(200).end();
      });
    }),
  );
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  const [a, b] = servers.map((s) => (s.address() as AddressInfo).port);
  const p = await startPipeline(amYaml(`      url: http://127.0.0.1:${a}, http://127.0.0.1:${b}/api/v2/alerts\n      header: X-Scope-OrgID tenant-a\n      retry_limit: 1`), [alertmanagerOutput]);
  try {
    const alert = { output: 'x', priority: 'Warning', rule: 'Test Rule', source: 'k8s_audit', time: new Date().toISOString(), output_fields: {}, hostname: 'h', tags: [] };
    assert.deepEqual(await p.ingest([ev(alert)]), { ok: true });
    for (const bodies of got) {
      assert.equal(bodies.length, 1);
      assert.match(bodies[0]!, /^POST \/api\/v2\/alerts tenant-a \[.*"rule":"Test Rule"/);
    }
  } finally {
    await p.stop(0);
    for (const s of servers) s.close();
  }
});

test('pipelines/default.yaml validates with a comma-separated ALERTMANAGER_URL', () => {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'logwarden.js'), 'validate', '-c', join(repoRoot, 'pipelines', 'default.yaml')], {
    encoding: 'utf8',
    env: { ...process.env, ALERTMANAGER_URL: 'http://am-0:9093,http://am-1:9093' },
  });
  assert.equal(r.status, 0, r.stderr + r.stdout);
});

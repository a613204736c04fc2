/** The CLI as a child process against YAML pipelines, counting what reaches the files. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, runCli, startDaemon } from '../support/cli.js';
import { falcoCorpus } from '../support/paths.js';

const events = (name: string) => join(falcoCorpus, 'events', name);

function pipeline(dir: string, port: number, httpPort: number): string {
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(
    file,
    `service:
  http_server: on
  http_listen: 127.0.0.1
  http_port: ${httpPort}
  grace: 3
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: ${port}
      shared_key: \${KEY}
  outputs:
    - name: file
      match: 'kube.*'
      path: out
      mkdir: on
      format: json_lines
      json_date_key: false
`,
  );
  return file;
}

test('run + send: records sent with ack, gzip and shared key reach the file; metrics; SIGTERM exits 0', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-cli-'));
  const port = await freePort();
  const httpPort = await freePort();
  const file = pipeline(dir, port, httpPort);
  const d = await startDaemon(file, { KEY: 'k3y' });
  try {
    // 200 generated records in four modes, plus real audit events.
    const recs = Array.from({ length: 200 }, (_, i) => JSON.stringify({ i, msg: `line ${i}` })).join('\n');
    writeFileSync(join(dir, 'recs.jsonl'), recs);
    for (const mode of ['message', 'forward', 'packed']) {
      const r = await runCli(['send', '-p', String(port), '-t', `kube.${mode}`, '--mode', mode, '--ack', '--shared-key', 'k3y', join(dir, 'recs.jsonl')]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(JSON.parse(r.stdout).sent, 200);
    }
    const gz = await runCli(['send', '-p', String(port), '-t', 'kube.gzip', '--compress', 'gzip', '--ack', '--shared-key', 'k3y', join(dir, 'recs.jsonl')]);
    assert.equal(gz.code, 0, gz.stderr);
    const audit = await runCli(['send', '-p', String(port), '-t', 'kube.audit', '--ack', '--shared-key', 'k3y', events('create_nginx_pod_privileged.json')]);
    assert.equal(audit.code, 0, audit.stderr);
    const unrouted = await runCli(['send', '-p', String(port), '-t', 'other', '--ack', '--shared-key', 'k3y', join(dir, 'recs.jsonl')]);
    assert.equal(unrouted.code, 0);

    for (const mode of ['message', 'forward', 'packed', 'gzip']) {
      const lines = readFileSync(join(dir, 'out', `kube.${mode}`), 'utf8')
        .trim()
        .split('\n');
      assert.equal(lines.length, 200, mode);
      assert.deepEqual(JSON.parse(lines[199]!), { i: 199, msg: 'line 199' });
    }
    const auditLine = JSON.parse(readFileSync(join(dir, 'out', 'kube.audit'), 'utf8').trim()) as { kind: string; verb: string };
    assert.equal(auditLine.kind, 'Event');
    assert.equal(auditLine.verb, 'create');

    const wrongKey = await runCli(['send', '-p', String(port), '-t', 'kube.x', '--ack', '--timeout', '3', '--shared-key', 'nope', join(dir, 'recs.jsonl')]);
    assert.notEqual(wrongKey.code, 0);

    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    assert.match(metrics, /logwarden_input_records_total\{name="forward\.0"\} 1001/);
    assert.match(metrics, /logwarden_output_proc_records_total\{name="file\.0"\} 801/);
    assert.match(metrics, /logwarden_router_unrouted_records_total 200/);
    assert.match(metrics, /logwarden_input_auth_failures_total\{name="forward\.0",reason="shared_key"\} 1/);
    assert.equal((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status, 200);
  } finally {
    const code = await d.stop('SIGTERM');
    assert.equal(code, 0, d.logs.join('\n'));
    assert.ok(d.logs.some((l) => l.includes('"msg":"stopped"')));
  }
});

test('validate: OK with a summary; errors as file:line:col and exit 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-cli-'));
  const ok = await runCli(['validate', '-c', 'pipelines/default.yaml']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^OK .*default\.yaml/);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, `pipeline:\n  inputs:\n    - name: forward\n      buffer_max_size: lots\n`);
  const r = await runCli(['validate', '-c', bad]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${bad.replace(/[.]/g, '\\.')}:4:24: buffer_max_size: found "lots", expected a size`));
  const missing = await runCli(['run', '-c', join(dir, 'nope.yaml')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot read config file/);
});

test('replay prints what leaves the filters as {tag, time, record}; EventLists are split', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-cli-'));
  const file = pipeline(dir, 1, 1);
  const list = {
    kind: 'EventList',
    apiVersion: 'audit.k8s.io/v1',
    items: [
      { kind: 'Event', auditID: 'a', stageTimestamp: '2024-05-01T10:00:00.123456789Z', verb: 'get' },
      { kind: 'Event', auditID: 'b', stageTimestamp: '2024-05-01T10:00:01Z', verb: 'list' },
    ],
  };
  writeFileSync(join(dir, 'list.json'), JSON.stringify(list));
  const r = await runCli(['replay', '-c', file, '-i', join(dir, 'list.json'), '--tag', 'kube.audit'], { env: { KEY: 'x' } });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { tag: string; time: string; record: { auditID: string } });
  assert.deepEqual(
    lines.map((l) => [l.tag, l.time, l.record.auditID]),
    [
      ['kube.audit', '2024-05-01T10:00:00.123456789Z', 'a'],
      ['kube.audit', '2024-05-01T10:00:01.000000000Z', 'b'],
    ],
  );
});

test('help and usage errors', async () => {
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  for (const c of ['run', 'validate', 'replay', 'send']) {
    assert.match(top.stdout, new RegExp(`\\n  ${c} `));
    const h = await runCli([c, '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, new RegExp(`^Usage: logwarden ${c}`));
  }
  const unknown = await runCli(['frobnicate']);
  assert.equal(unknown.code, 2);
  const noConfig = await runCli(['run']);
  assert.equal(noConfig.code, 2);
  assert.match(noConfig.stderr, /missing -c/);
});

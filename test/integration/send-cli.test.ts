/**
 * `logwarden send`, `detect` and `replay` on what users have: several files at once, files larger
 * than the heap (streamed, in JSON lines and as one pretty-printed EventList), and a forward
 * listener with TLS and client certificates (--tls-ca/--tls-cert/--tls-key/--tls-vhost), whose
 * failures are named.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pki, selfSigned, writePki } from '../support/certs.js';
import { bin, freePort, runCli, startDaemon } from '../support/cli.js';
import { tempDir } from '../support/harness.js';
import { falcoCorpus, repoRoot } from '../support/paths.js';

const events = (name: string) => join(falcoCorpus, 'events', name);

function receiver(dir: string, port: number, tls = ''): string {
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(
    file,
    `service:
  grace: 2
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: ${port}
${tls}
  outputs:
    - name: file
      match: '*'
      path: out
      mkdir: on
      format: json_lines
      json_date_key: false
`,
  );
  return file;
}

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim()).length;

test('send FILE FILE...: every file is sent, in order, with a count per file', async () => {
  const dir = tempDir();
  const port = await freePort();
  const d = await startDaemon(receiver(dir, port));
  try {
    const gen = join(dir, 'gen.jsonl');
    writeFileSync(gen, Array.from({ length: 50 }, (_, i) => JSON.stringify({ i })).join('\n'));
    const files = [events('exec_pod.json'), events('create_configmap_sensitive_values.json'), gen];
    const r = await runCli(['send', '-p', String(port), '-t', 'multi', '--ack', ...files]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const summary = JSON.parse(r.stdout) as { records: number; sent: number; files: Array<{ file: string; records: number }> };
    const want = [lines(files[0]!), lines(files[1]!), 50];
    assert.deepEqual(
      summary.files.map((f) => f.records),
      want,
    );
    assert.equal(summary.sent, want[0]! + want[1]! + 50);
    assert.equal(lines(join(dir, 'out', 'multi')), summary.sent);
  } finally {
    await d.stop();
  }
});

test('detect, replay and send stream files larger than the heap: JSON lines and a pretty-printed EventList', { timeout: 240_000 }, async () => {
  const dir = tempDir();
  const pad = 'x'.repeat(900);
  const event = (i: number) =>
    JSON.stringify({
      kind: 'Event',
      apiVersion: 'audit.k8s.io/v1',
      level: 'Metadata',
      auditID: `id-${i}`,
      stage: 'ResponseComplete',
      verb: 'get',
      requestURI: '/healthz',
      user: { username: 'probe' },
      stageTimestamp: '2024-05-01T10:00:00.000000Z',
      annotations: { pad },
    });
  const N = 64_000; // about 64 MB each: more than the 64 MB heap the commands get below
  const jsonl = join(dir, 'big.jsonl');
  const list = join(dir, 'big-list.json');
  let fd = openSync(jsonl, 'w');
  for (let i = 0; i < N; i += 1000) writeSync(fd, `${Array.from({ length: 1000 }, (_, k) => event(i + k)).join('\n')}\n`);
  closeSync(fd);
  fd = openSync(list, 'w');
  writeSync(fd, '{\n  "kind": "EventList",\n  "apiVersion": "audit.k8s.io/v1",\n  "metadata": {},\n  "items": [\n');
  for (let i = 0; i < N; i += 1000) writeSync(fd, `${Array.from({ length: 1000 }, (_, k) => `    ${event(i + k)}`).join(',\n')}${i + 1000 < N ? ',' : ''}\n`);
  writeSync(fd, '  ]\n}\n');
  closeSync(fd);
  const small = ['--max-old-space-size=64', bin];
  for (const f of [jsonl, list]) {
    const r = spawnSync(process.execPath, [...small, 'detect', '-e', f], { encoding: 'utf8', timeout: 200_000, stdio: ['ignore', 'ignore', 'pipe'] });
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    assert.match(r.stderr, new RegExp(`Events read: ${N} \\(1 file\\)`), f);
  }
  // replay: every event through the default pipeline's filters, printed as it goes.
  const rp = spawnSync(process.execPath, [...small, 'replay', '-c', join(repoRoot, 'pipelines', 'default.yaml'), '-i', list], {
    encoding: 'buffer',
    timeout: 200_000,
    maxBuffer: 1 << 30,
  });
  assert.equal(rp.status, 0, rp.stderr.toString().slice(-2000));
  assert.ok(rp.stdout.length > 0);
  // send: to a receiver, acked.
  const port = await freePort();
  const d = await startDaemon(receiver(dir, port));
  try {
    const r = spawnSync(process.execPath, [...small, 'send', '-p', String(port), '-t', 'big', '--ack', jsonl], { encoding: 'utf8', timeout: 200_000, maxBuffer: 1 << 24 });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.equal((JSON.parse(r.stdout) as { sent: number }).sent, N);
  } finally {
    await d.stop();
  }
});

test('send --tls-ca/--tls-cert/--tls-key/--tls-vhost to a listener that requires client certificates; failures say what failed', async () => {
  const p = await pki({ host: 'logwarden.example', ip: false, clientName: 'sender' });
  const other = await selfSigned('other-ca');
  const dir = tempDir();
  const files = writePki(dir, p, { 'other.pem': other.cert });
  const caFile = files['ca.pem'];
  const cert = files['client.pem'];
  const key = files['client.key'];
  const otherCa = files['other.pem'];
  const port = await freePort();
  const d = await startDaemon(receiver(dir, port, '      tls: on\n      tls.crt_file: server.pem\n      tls.key_file: server.key\n      tls.ca_file: ca.pem\n      tls.verify_client_cert: on'));
  try {
    const base = ['send', '-H', '127.0.0.1', '-p', String(port), '-t', 'tls', '--ack', '--timeout', '5', events('exec_pod.json')];
    const ok = await runCli([...base, '--tls-ca', caFile, '--tls-cert', cert, '--tls-key', key, '--tls-vhost', 'logwarden.example']);
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.equal(lines(join(dir, 'out', 'tls')), 1);

    const noVhost = await runCli([...base, '--tls-ca', caFile, '--tls-cert', cert, '--tls-key', key]);
    assert.equal(noVhost.code, 1);
    assert.match(noVhost.stderr, /TLS: the server certificate does not name the host \(--tls-vhost sets the name to check\): 127\.0\.0\.1:\d+: .*ERR_TLS_CERT_ALTNAME_INVALID/);

    const wrongCa = await runCli([...base, '--tls-ca', otherCa, '--tls-cert', cert, '--tls-key', key, '--tls-vhost', 'logwarden.example']);
    assert.equal(wrongCa.code, 1);
    assert.match(wrongCa.stderr, /TLS: the server certificate was not accepted \(--tls-ca names the CA that signed it\)/);

    const noCert = await runCli([...base, '--tls-ca', caFile, '--tls-vhost', 'logwarden.example']);
    assert.equal(noCert.code, 1);
    assert.match(noCert.stderr, /TLS: the server requires a client certificate \(--tls-cert, --tls-key\)/);
    assert.doesNotMatch(noCert.stderr, /no answer/);

    const half = await runCli([...base, '--tls-cert', cert]);
    assert.equal(half.code, 2);
    assert.match(half.stderr, /--tls-cert and --tls-key go together/);
  } finally {
    await d.stop();
  }
});

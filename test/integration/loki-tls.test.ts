/**
 * The HTTP client the loki and alertmanager outputs share, over TLS: a CA-signed server
 * certificate checked with tls.ca_file, a client certificate (mutual TLS), verification
 * failures classified as retryable `tls` errors, and tls.verify off.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigFile } from '../../src/config/load.js';
import { Commit } from '../../src/core/commit.js';
import { Pipeline } from '../../src/core/pipeline.js';
import { plan } from '../../src/core/plan.js';
import { lokiOutput } from '../../src/outputs/loki/index.js';
import { jsonLogger, registryOf } from '../support/harness.js';
import { LokiServer } from '../support/loki-server.js';
import { events, startPipeline, tempDir } from '../support/output-pipeline.js';

const dir = tempDir('logwarden-tls-');
const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
function makeCertificates(): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=logwarden test CA');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const name of ['server', 'client']) {
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', ...(name === 'server' ? ['-extfile', 'san.ext'] : []));
  }
}

let mtls: LokiServer;
let plain: LokiServer;

before(async () => {
  makeCertificates();
  const read = (f: string) => readFileSync(join(dir, f));
  mtls = await new LokiServer({ tls: { key: read('server.key'), cert: read('server.pem'), ca: read('ca.pem') } }).start();
  plain = await new LokiServer({ tls: { key: read('server.key'), cert: read('server.pem') } }).start();
});
after(async () => {
  await mtls.stop();
  await plain.stop();
});

const yaml = (port: number, extra: string) => `service:
  scheduler.base: 0.05
pipeline:
  outputs:
    - name: loki
      match: '*'
      port: ${port}
      tls: on
      labels: job=tls
      batch_wait: 10ms
${extra}
`;

test('tls.ca_file verifies the server; tls.crt_file/tls.key_file authenticate the client', async () => {
  const p = await startPipeline(yaml(mtls.port, `      tls.ca_file: ${join(dir, 'ca.pem')}\n      tls.crt_file: ${join(dir, 'client.pem')}\n      tls.key_file: ${join(dir, 'client.key')}`), [
    lokiOutput,
  ]);
  try {
    assert.deepEqual(await p.ingest(events('t', [{ a: 1 }])), { ok: true });
    assert.equal(mtls.entries().length, 1);
  } finally {
    await p.stop(1);
  }
});

test('an unverifiable server certificate is a retryable tls error', async () => {
  const p = await startPipeline(yaml(plain.port, '      retry_limit: 1'), [lokiOutput]);
  try {
    const outcome = await p.ingest(events('t', [{ a: 1 }]));
    assert.equal(outcome.ok, false);
    assert.match(outcome.reason!, /TLS error .*(self.signed|local issuer|UNABLE_TO_GET_ISSUER|unable to verify)/i);
    assert.equal(await p.counter('logwarden_output_errors_total', { reason: 'tls' }), 2);
    assert.equal(plain.requests, 0);
  } finally {
    await p.stop(1);
  }
});

test('tls.verify off accepts the certificate', async () => {
  const p = await startPipeline(yaml(plain.port, '      tls.verify: off'), [lokiOutput]);
  try {
    assert.deepEqual(await p.ingest(events('t', [{ a: 2 }])), { ok: true });
    assert.equal(plain.entries().length, 1);
  } finally {
    await p.stop(1);
  }
});

test('the TLS files and label_map_path are read once, when the plan is made: removed before the output starts, they are not missed', async () => {
  const own = tempDir('logwarden-tls-once-');
  for (const f of ['ca.pem', 'client.pem', 'client.key']) copyFileSync(join(dir, f), join(own, f));
  writeFileSync(join(own, 'labelmap.json'), JSON.stringify({ app: 'app' }));
  const file = join(own, 'pipeline.yaml');
  writeFileSync(file, yaml(mtls.port, '      tls.ca_file: ca.pem\n      tls.crt_file: client.pem\n      tls.key_file: client.key\n      label_map_path: labelmap.json'));
  const planned = plan(loadConfigFile(file, {}), registryOf(lokiOutput));
  for (const f of ['ca.pem', 'client.pem', 'client.key', 'labelmap.json']) rmSync(join(own, f));
  const pipeline = new Pipeline(planned, { logger: jsonLogger().logger });
  await pipeline.start();
  try {
    const before = mtls.entries().length;
    const outcome = await new Promise<boolean>((done) => {
      const c = new Commit((ok) => done(ok));
      pipeline.ingest(events('t', [{ app: 'once', a: 3 }]), c, 100);
      c.release();
    });
    assert.equal(outcome, true);
    const sent = mtls.entries().slice(before);
    assert.equal(sent.length, 1);
    // The label the removed label map declared.
    assert.equal(sent[0]!.labels.app, 'once');
  } finally {
    await pipeline.stop(1);
  }
});

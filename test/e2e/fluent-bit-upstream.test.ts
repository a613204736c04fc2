/**
 * The real Fluent Bit expands ${VARIABLES} in an upstream file (docs/deploy.md says so): a
 * [NODE] whose host, port and shared_key come from the environment delivers to a logwarden
 * forward input that requires that key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startDaemon } from '../support/cli.js';
import { tempDir, until } from '../support/harness.js';
import { peerBinary } from '../support/peers.js';

test('Fluent Bit upstream file: host, port and shared_key from ${VARIABLES}', { timeout: 120_000 }, async () => {
  const fluentBit = peerBinary('fluent-bit');
  const dir = tempDir();
  const port = await freePort();
  writeFileSync(
    join(dir, 'recv.yaml'),
    `pipeline:\n  inputs:\n    - name: forward\n      listen: 127.0.0.1\n      port: ${port}\n      shared_key: s3cret-from-env\n  outputs:\n    - name: file\n      match: '*'\n      path: out\n      mkdir: on\n      format: json_lines\n      json_date_key: false\n`,
  );
  writeFileSync(join(dir, 'upstream.conf'), '[UPSTREAM]\n    name  test\n\n[NODE]\n    name        n1\n    host        ${UP_HOST}\n    port        ${UP_PORT}\n    shared_key  ${UP_KEY}\n');
  writeFileSync(
    join(dir, 'fluent-bit.yaml'),
    `service:\n  flush: 1\n  grace: 2\npipeline:\n  inputs:\n    - name: dummy\n      tag: up.test\n      dummy: '{"msg":"hello"}'\n      samples: 3\n  outputs:\n    - name: forward\n      match: '*'\n      upstream: ${join(dir, 'upstream.conf')}\n      retry_limit: 2\n`,
  );
  const d = await startDaemon(join(dir, 'recv.yaml'));
  const fb = spawn(fluentBit, ['-c', join(dir, 'fluent-bit.yaml')], {
    env: { ...process.env, UP_HOST: '127.0.0.1', UP_PORT: String(port), UP_KEY: 's3cret-from-env' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let fbLog = '';
  fb.stdout.on('data', (b) => (fbLog += b));
  fb.stderr.on('data', (b) => (fbLog += b));
  const out = join(dir, 'out', 'up.test');
  try {
    await until(() => existsSync(out) && readFileSync(out, 'utf8').split('\n').filter(Boolean).length === 3, `3 records via the upstream node\n${fbLog}`, 60_000, 200);
    assert.deepEqual(
      readFileSync(out, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
      [{ msg: 'hello' }, { msg: 'hello' }, { msg: 'hello' }],
    );
  } finally {
    fb.kill('SIGTERM');
    await d.stop();
  }
});

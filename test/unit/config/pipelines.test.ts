/** Every bundled pipeline builds, as `logwarden validate` builds it (rules, policies and all). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfigFile } from '../../../src/config/load.js';
import { Pipeline } from '../../../src/core/pipeline.js';
import { plan } from '../../../src/core/plan.js';
import { registry } from '../../../src/plugins.js';
import { repoRoot } from '../../support/paths.js';

const env = { FORWARD_SHARED_KEY: 'test-key', STORAGE_PATH: '/tmp/logwarden-pipelines-test' };

for (const name of readdirSync(join(repoRoot, 'pipelines')).filter((f) => f.endsWith('.yaml'))) {
  test(`pipelines/${name} validates and builds`, async () => {
    const p = plan(loadConfigFile(join(repoRoot, 'pipelines', name), { ...process.env, ...env }), registry);
    assert.ok(p.inputs.length > 0);
    const pipeline = new Pipeline(p, { logger: pino({ level: 'silent' }) });
    await pipeline.build();
    await pipeline.close();
  });
}

test('default.yaml switches Loki and Alertmanager on with LOKI_URL / ALERTMANAGER_URL', () => {
  const file = join(repoRoot, 'pipelines', 'default.yaml');
  const off = plan(loadConfigFile(file, {}), registry);
  assert.deepEqual(off.outputs.map((o) => o.plugin.name).sort(), ['file', 'file', 'stdout', 'ui']);
  const on = plan(loadConfigFile(file, { LOKI_URL: 'https://loki.example:3100/loki/api/v1/push', ALERTMANAGER_URL: 'http://am:9093' }), registry);
  assert.deepEqual(on.outputs.map((o) => o.plugin.name).sort(), ['alertmanager', 'file', 'file', 'loki', 'stdout', 'ui']);
});

test('default.yaml rotates its files (100 MB, 5 kept, gzipped) instead of growing them forever', () => {
  const p = plan(loadConfigFile(join(repoRoot, 'pipelines', 'default.yaml'), {}), registry);
  const files = p.outputs.filter((o) => o.plugin.name === 'file');
  assert.equal(files.length, 2);
  for (const f of files) {
    assert.equal(f.config.rotate, true);
    assert.equal(f.config.rotate_max_size, 100_000_000); // 100M, read as Fluent Bit reads it
    assert.equal(f.config.rotate_max_files, 5);
    assert.equal(f.config.rotate_gzip, true);
  }
});

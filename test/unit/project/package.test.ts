/**
 * What package.json promises: the Node versions it declares are ones every locked dependency
 * supports (so `npm ci` prints no EBADENGINE on them), and the test runner fails a hung test
 * instead of waiting forever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import semver from 'semver';
import { repoRoot } from '../../support/paths.js';

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  engines: { node: string };
  scripts: Record<string, string>;
};
const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
};

test('every locked dependency supports every Node version package.json declares', () => {
  const declared = pkg.engines.node;
  assert.ok(semver.satisfies(process.version, declared), `this Node (${process.version}) is outside ${declared}`);
  const unsupported: string[] = [];
  for (const [path, p] of Object.entries(lock.packages)) {
    const wants = Array.isArray(p.engines) ? undefined : p.engines?.node;
    if (!path || !wants) continue;
    // Each declared line (^20.18.1, ^22.9.0, ...) must lie inside what the package accepts.
    for (const line of declared.split('||')) {
      if (!semver.subset(line.trim(), wants)) unsupported.push(`${path.replace(/^.*node_modules\//, '')}@${p.version} wants ${wants}, package.json allows ${line.trim()}`);
    }
  }
  assert.deepEqual(unsupported, []);
});

test('the test scripts set a per-test timeout, and the runner fails a hung test with it', () => {
  for (const name of ['test', 'test:e2e']) {
    assert.match(pkg.scripts[name]!, /node --test --test-timeout=\d+ /, `${name} has --test-timeout`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'lw-timeout-'));
  try {
    const file = join(dir, 'hang.test.mjs');
    writeFileSync(file, "import { test } from 'node:test';\ntest('hangs', () => new Promise(() => setInterval(() => {}, 1000)));\n");
    // The same flag as the scripts, with a short value so the check is quick.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT; // a runner of its own, not a subtest of this one
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', '--test-timeout=300', file], { encoding: 'utf8', env, timeout: 60_000 });
    assert.equal(r.signal, null, 'the runner exited on its own');
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stdout, /timed out after 300ms/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { configurationReference } from '../../../src/tools/gen-docs.js';
import { plugins } from '../../../src/plugins.js';
import { repoRoot } from '../../support/paths.js';

test('docs/configuration.md is generated from the current option tables (run npm run docs)', () => {
  const committed = readFileSync(join(repoRoot, 'docs', 'configuration.md'), 'utf8');
  assert.equal(committed, configurationReference());
});

test('every option of every plugin has a description and a valid default', () => {
  for (const p of plugins) {
    for (const [name, spec] of Object.entries(p.options)) {
      assert.ok(spec.description.length > 5, `${p.kind} ${p.name}: option ${name} has no description`);
      if (spec.type === 'enum') assert.ok(spec.values?.length, `${p.name}.${name}: enum without values`);
    }
  }
});

test('the reference does not depend on the machine that generated it (detect hostname)', () => {
  const text = configurationReference();
  assert.ok(!text.includes(`\`${hostname()}\``), "a default shows this machine's host name");
  assert.match(text, /\| `hostname` \| string \| the host name of the machine logwarden runs on \|/);
});

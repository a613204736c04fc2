import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile, substituteEnv } from '../../../src/config/load.js';
import { ConfigErrors } from '../../../src/config/errors.js';
import { plan } from '../../../src/core/plan.js';
import { registry } from '../../../src/plugins.js';

function write(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'logwarden-config-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function errorsOf(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  assert.fail('expected configuration errors');
}

const base = `pipeline:
  inputs:
    - name: forward
      port: 24224
  outputs:
    - name: stdout
      match: '*'
`;

test('${VAR} and ${VAR:-default} are substituted; default applies when unset or empty', () => {
  const env = { A: 'x', EMPTY: '' };
  assert.equal(
    substituteEnv('${A}-${B:-d}-${EMPTY:-e}', env, () => assert.fail('no missing var')),
    'x-d-e',
  );
  const missing: string[] = [];
  substituteEnv('${NOPE}', env, (n) => missing.push(n));
  assert.deepEqual(missing, ['NOPE']);
});

test('a pipeline with env, includes and variables loads and plans', () => {
  const dir = write({
    'main.yaml': `env:\n  PORT: "24230"\nincludes:\n  - outputs.yaml\nservice:\n  log_level: \${LEVEL:-debug}\npipeline:\n  inputs:\n    - name: forward\n      port: \${PORT}\n      tag: \${TAG}\n`,
    'outputs.yaml': `pipeline:\n  outputs:\n    - name: file\n      match: '*'\n      path: out\n`,
  });
  const p = plan(loadConfigFile(join(dir, 'main.yaml'), { TAG: 'kube.audit' }), registry);
  assert.equal(p.service.log_level, 'debug');
  assert.equal(p.inputs[0]!.config.port, 24230);
  assert.equal(p.inputs[0]!.config.tag, 'kube.audit');
  assert.equal(p.inputs[0]!.id, 'forward.0');
  assert.equal(p.outputs[0]!.id, 'file.0');
  assert.equal(p.outputs[0]!.config.format, 'out_file', 'defaults come from the schema');
});

test('an unset variable without default is an error at its file:line:col', () => {
  const dir = write({ 'p.yaml': base.replace('port: 24224', 'port: ${FORWARD_PORT}') });
  const errs = errorsOf(() => loadConfigFile(join(dir, 'p.yaml'), {}));
  assert.equal(errs.length, 1);
  assert.match(errs[0]!, /p\.yaml:4:13: environment variable 'FORWARD_PORT' is not set/);
});

test('unknown plugin, unknown option, bad value: file:line:col, the option, what was found and what is expected', () => {
  const dir = write({
    'p.yaml': `pipeline:
  inputs:
    - name: forwrd
    - name: forward
      port: abc
      shaerd_key: x
  outputs:
    - name: file
      match: '*'
      format: yaml
`,
  });
  const errs = errorsOf(() => plan(loadConfigFile(join(dir, 'p.yaml'), {}), registry));
  assert.ok(
    errs.some((e) => /p\.yaml:3:13: name: unknown input plugin 'forwrd'; available: .*forward/.test(e)),
    errs.join('\n'),
  );
  assert.ok(
    errs.some((e) => /p\.yaml:5:13: port: found "abc", expected an integer/.test(e)),
    errs.join('\n'),
  );
  assert.ok(
    errs.some((e) => /p\.yaml:6:7: shaerd_key: unknown option for input 'forward' \(did you mean 'shared_key'\?\)/.test(e)),
    errs.join('\n'),
  );
  assert.ok(
    errs.some((e) => /p\.yaml:10:15: format: found "yaml", expected one of out_file, plain/.test(e)),
    errs.join('\n'),
  );
});

test('an output without match is an error (no event would reach it)', () => {
  const dir = write({ 'p.yaml': base.replace("      match: '*'\n", '') });
  const errs = errorsOf(() => plan(loadConfigFile(join(dir, 'p.yaml'), {}), registry));
  assert.match(errs[0]!, /p\.yaml:6:7: match: output 'stdout.0' has no match or match_regex/);
});

test('missing config file, missing include, YAML syntax errors, unknown sections', () => {
  assert.match(errorsOf(() => loadConfigFile('/nonexistent/p.yaml'))[0]!, /cannot read config file \/nonexistent\/p\.yaml/);
  const dir = write({
    'inc.yaml': `includes: [nope.yaml]\n`,
    'syntax.yaml': `pipeline:\n  inputs:\n    - name: forward\n   bad: indent\n`,
    'sections.yaml': `service: {}\noutputs: []\n`,
  });
  assert.match(errorsOf(() => loadConfigFile(join(dir, 'inc.yaml')))[0]!, /inc\.yaml:1:12: includes: included file not found: .*nope\.yaml/);
  assert.match(errorsOf(() => loadConfigFile(join(dir, 'syntax.yaml')))[0]!, /syntax\.yaml:\d+:\d+: YAML syntax error/);
  assert.match(errorsOf(() => loadConfigFile(join(dir, 'sections.yaml')))[0]!, /sections\.yaml:2:1: outputs: unknown section 'outputs'/);
});

test('forward input cross-option checks: tls without certificate, users without password', () => {
  const dir = write({ 'p.yaml': base.replace('port: 24224', 'port: 24224\n      tls: on\n      security.users: alice') });
  const errs = errorsOf(() => plan(loadConfigFile(join(dir, 'p.yaml'), {}), registry));
  assert.match(errs.join('\n'), /p\.yaml:5:7: tls: tls on needs tls\.crt_file and tls\.key_file/);
});

test('option names are case-insensitive as in Fluent Bit; sizes and booleans take Fluent Bit forms', () => {
  const dir = write({ 'p.yaml': base.replace('port: 24224', 'Port: 24224\n      Buffer_Max_Size: 6M\n      Empty_Shared_Key: On') });
  const p = plan(loadConfigFile(join(dir, 'p.yaml'), {}), registry);
  assert.equal(p.inputs[0]!.config.buffer_max_size, 6_000_000); // 6M: Fluent Bit reads it as 6000000
  assert.equal(p.inputs[0]!.config.empty_shared_key, true);
});

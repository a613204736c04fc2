/**
 * Option names are case-insensitive (as in Fluent Bit) all the way to what the instance and the
 * delivery engine get, and each output's delivery defaults are the ones its table declares.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { ConfigError } from '../../../src/config/errors.js';
import { loadConfigFile } from '../../../src/config/load.js';
import { applySchema, type OptionSpec, type RawSection } from '../../../src/config/schema.js';
import { deliveryOptionTable, optionTableFor } from '../../../src/core/common-options.js';
import { Pipeline } from '../../../src/core/pipeline.js';
import { plan, type PlannedPlugin } from '../../../src/core/plan.js';
import { plugins, registry } from '../../../src/plugins.js';

const dir = mkdtempSync(join(tmpdir(), 'logwarden-option-case-'));

/** The smallest section of each output that plans and builds without a peer. */
const outputBase: Record<string, Record<string, unknown>> = {
  file: { path: dir },
  loki: { host: '127.0.0.1', port: 3100 },
  alertmanager: { url: 'http://127.0.0.1:9093' },
  stdout: {},
  ui: {},
  forward: { host: '127.0.0.1', port: 24224 },
  null: {},
};

const spellings = [(k: string) => k, (k: string) => k.toUpperCase(), (k: string) => k.replace(/(^|[_.])([a-z])/g, (_, s, c) => s + c.toUpperCase())];

function yamlOutput(name: string, options: Record<string, unknown>): string {
  // The ui output needs the page it shows alerts on.
  const service = name === 'ui' ? ['service:', '  http_server: on', '  ui: on'] : [];
  const lines = [...service, `pipeline:`, `  outputs:`, `    - name: ${name}`, `      match: '*'`];
  for (const [k, v] of Object.entries(options)) lines.push(`      ${k}: ${JSON.stringify(v)}`);
  return `${lines.join('\n')}\n`;
}

let n = 0;
async function engineOf(name: string, options: Record<string, unknown>) {
  const file = join(dir, `p${n++}.yaml`);
  writeFileSync(file, yamlOutput(name, { ...outputBase[name], ...options }));
  const p = plan(loadConfigFile(file, {}), registry);
  const pipeline = new Pipeline(p, { logger: pino({ level: 'silent' }) });
  await pipeline.build();
  try {
    return { opts: { ...pipeline.outputs[0]!.engine.opts }, config: p.outputs[0]!.config };
  } finally {
    await pipeline.close();
  }
}

const outputs = plugins.filter((p) => p.kind === 'output');

test('the fixtures cover every output of src/plugins.ts', () => {
  assert.deepEqual(outputs.map((p) => p.name).sort(), Object.keys(outputBase).sort());
});

for (const out of outputs) {
  test(`output ${out.name}: every shared delivery option reaches the engine in any spelling`, async () => {
    const set = {
      retry_limit: 7,
      workers: 5,
      batch_size: 123,
      batch_bytes: '64Ki',
      batch_wait: '250ms',
      'scheduler.base': 2,
      'scheduler.cap': 30,
      queue_max_records: 4321,
      queue_max_bytes: '8Mi',
      dead_letter_file: 'dead.jsonl',
    };
    for (const spell of spellings) {
      const written = Object.fromEntries(Object.entries(set).map(([k, v]) => [spell(k), v]));
      const { opts, config } = await engineOf(out.name, written);
      const why = `${out.name} with ${Object.keys(written).join(', ')}`;
      assert.deepEqual(
        opts,
        {
          batchSize: 123,
          batchBytes: 65536,
          batchWait: 0.25,
          workers: 5,
          retryLimit: 7,
          base: 2,
          cap: 30,
          queueRecords: 4321,
          queueBytes: 8 * 1024 * 1024,
          deadLetterFile: join(dir, 'dead.jsonl'),
        },
        why,
      );
      // What the instance is created with (forward and Loki size their connection pools by it).
      assert.equal(config.workers, 5, why);
      assert.equal(config.retry_limit, '7', why);
    }
  });

  test(`output ${out.name}: unset delivery options take the defaults its option table declares`, async () => {
    const { opts } = await engineOf(out.name, {});
    const table = optionTableFor(out);
    const retry = String(table.retry_limit!.default);
    assert.equal(opts.retryLimit, retry === 'no_limits' ? Infinity : Number(retry));
    assert.equal(opts.workers, table.workers!.default);
    assert.equal(opts.batchSize, table.batch_size!.default);
    assert.equal(opts.batchBytes, 1024 * 1024);
    assert.equal(opts.batchWait, table.batch_wait!.default ?? 1); // service flush defaults to 1
    for (const k of Object.keys(deliveryOptionTable)) assert.ok(table[k], `${out.name}: ${k}`);
  });
}

test('each output keeps its delivery defaults (alertmanager retries 3 times, ui without limit, loki and forward 2 workers)', async () => {
  const expect: Record<string, Partial<Record<string, number>>> = {
    alertmanager: { batchSize: 500, batchWait: 1, workers: 1, retryLimit: 3 },
    file: { batchSize: 5000, batchWait: 0, workers: 1, retryLimit: 1 },
    forward: { batchSize: 5000, batchWait: 1, workers: 2, retryLimit: 1 },
    loki: { batchSize: 5000, batchWait: 1, workers: 2, retryLimit: 1 },
    null: { batchSize: 5000, batchWait: 0, workers: 1, retryLimit: 1 },
    stdout: { batchSize: 2000, batchWait: 0, workers: 1, retryLimit: 1 },
    ui: { batchSize: 500, batchWait: 0, workers: 1, retryLimit: Infinity },
  };
  for (const [name, want] of Object.entries(expect)) {
    const { opts } = await engineOf(name, {});
    for (const [k, v] of Object.entries(want)) assert.equal(opts[k as keyof typeof opts], v, `${name} ${k}`);
    assert.equal(opts.batchBytes, 1024 * 1024, name);
  }
});

/** A value of the option's type that its own checks accept where they can. */
function sample(spec: OptionSpec): unknown {
  if (spec.default !== undefined) return spec.default;
  switch (spec.type) {
    case 'enum':
      return spec.values![spec.values!.length - 1];
    case 'bool':
      return true;
    case 'int':
    case 'float':
      return spec.min ?? 1;
    case 'size':
      return String(Math.max(spec.min ?? 0, 4096));
    case 'duration':
      return Math.max(spec.min ?? 0, 1);
    case 'list':
      return ['a', 'b'];
    case 'multi':
      return ['a b'];
    case 'any':
      return { a: 'b' };
    default:
      return 'x';
  }
}

function section(values: Record<string, unknown>): RawSection {
  const pos = { file: 'case.yaml', line: 1, col: 1 };
  return { values, keyPos: {}, valuePos: {}, pos, baseDir: dir };
}

for (const p of plugins) {
  test(`${p.kind} ${p.name}: every option name is matched case-insensitively`, () => {
    const table = optionTableFor(p);
    const lower = Object.fromEntries(Object.entries(table).map(([k, s]) => [k, sample(s)]));
    const resolve = (spell: (k: string) => string) => {
      const errors: ConfigError[] = [];
      const config = applySchema(table, section(Object.fromEntries(Object.entries(lower).map(([k, v]) => [spell(k), v]))), p.name, errors);
      return { config: { ...config }, errors: errors.map((e) => e.message) };
    };
    const want = resolve((k) => k);
    for (const [k] of Object.entries(table)) {
      assert.ok(k in want.config || want.errors.some((m) => m.includes(`${k}:`)), `${p.name}: ${k} neither resolved nor refused`);
    }
    for (const spell of spellings.slice(1)) assert.deepEqual(resolve(spell), want);
  });
}

test('the plan hands each plugin the same config for upper-case and mixed-case option names', () => {
  writeFileSync(join(dir, 'users.csv'), 'user,team\nana,core\n');
  const sections: Array<[kind: string, body: Record<string, unknown>]> = [
    ['inputs', { name: 'forward', port: 0, tag: 'a', buffer_chunk_size: '64Ki' }],
    ['inputs', { name: 'http', port: 0, successful_response_code: 200 }],
    ['inputs', { name: 'k8s_audit_webhook', port: 0, path: '/audit' }],
    ['filters', { name: 'grep', match: '*', regex: 'log x' }],
    ['filters', { name: 'modify', match: '*', add: 'a b' }],
    ['filters', { name: 'record_modifier', match: '*', record: 'a b' }],
    ['filters', { name: 'nest', match: '*', operation: 'lift', nested_under: 'x' }],
    ['filters', { name: 'rewrite_tag', match: '*', rule: '$a ^x$ new false' }],
    ['filters', { name: 'throttle', match: '*', rate: 5, window: 3 }],
    ['filters', { name: 'audit_policy', match: '*', policy: { rules: [{ level: 'Metadata' }] }, non_audit: 'drop' }],
    ['filters', { name: 'parser', match: '*', key_name: 'log', parser: 'json', reserve_data: true }],
    ['filters', { name: 'lookup', match: '*', file: 'users.csv', lookup_key: 'user', result_key: 'team', ignore_case: true }],
    ['filters', { name: 'detect', match: '*', rule_matching: 'all', alert_tag: 'alerts', keep_events: false }],
    ...Object.entries(outputBase).map(([name, o]): [string, Record<string, unknown>] => ['outputs', { name, match: '*', retry_limit: 4, workers: 3, ...o }]),
  ];
  const planned = sections.map(([kind, body]) => `${kind.slice(0, -1)} ${String(body.name)}`).sort();
  assert.deepEqual(planned, plugins.map((p) => `${p.kind} ${p.name}`).sort(), 'one section of every registered plugin');
  const render = (spell: (k: string) => string) => {
    const lines = ['pipeline:'];
    for (const kind of ['inputs', 'filters', 'outputs']) {
      lines.push(`  ${kind}:`);
      for (const [k, body] of sections.filter(([x]) => x === kind)) {
        void k;
        let first = true;
        for (const [key, v] of Object.entries(body)) {
          const name = key === 'name' ? key : spell(key);
          lines.push(`    ${first ? '-' : ' '} ${name}: ${JSON.stringify(v)}`);
          first = false;
        }
      }
    }
    const file = join(dir, `plan-${n++}.yaml`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    const p = plan(loadConfigFile(file, {}), registry);
    // What create() gets: the config, or what prepare() made of it (with the config it used).
    const handed = (x: PlannedPlugin) => {
      if (x.prepared === x.config) return 'the config';
      const c = (x.prepared as { config?: Record<string, unknown> }).config;
      return c === undefined ? 'compiled' : { ...c };
    };
    return [...p.inputs, ...p.filters, ...p.outputs].map((x) => ({ id: x.id, config: { ...x.config }, handed: handed(x) }));
  };
  const lower = render(spellings[0]!);
  assert.equal(lower.length, sections.length);
  for (const spell of spellings.slice(1)) assert.deepEqual(render(spell), lower);
});

test('cross-option checks see an option however its name is spelled (loki url with HOST, forward upstream with PORT, http TLS.CRT_FILE without tls)', () => {
  writeFileSync(join(dir, 'up.conf'), '[UPSTREAM]\n  name u\n[NODE]\n  name a\n  host 127.0.0.1\n  port 1\n');
  const cases: Array<[kind: string, body: Record<string, unknown>, error: RegExp]> = [
    ['outputs', { name: 'loki', match: '*', url: 'http://127.0.0.1:3100', host: '127.0.0.2' }, /set url or host, not both/],
    ['outputs', { name: 'forward', match: '*', upstream: 'up.conf', port: 24224 }, /set upstream or port, not both/],
    ['inputs', { name: 'http', port: 0, 'tls.crt_file': 'x.pem' }, /tls\.crt_file has no effect without tls: on/],
    ['inputs', { name: 'http', port: 0, buffer_chunk_size: '8M', buffer_max_size: '4M' }, /buffer_chunk_size must not exceed buffer_max_size/],
  ];
  for (const [kind, body, error] of cases) {
    for (const spell of spellings) {
      const lines = ['pipeline:', `  ${kind}:`];
      let first = true;
      for (const [key, v] of Object.entries(body)) {
        lines.push(`    ${first ? '-' : ' '} ${key === 'name' ? key : spell(key)}: ${JSON.stringify(v)}`);
        first = false;
      }
      const file = join(dir, `cross-${n++}.yaml`);
      writeFileSync(file, `${lines.join('\n')}\n`);
      assert.throws(
        () => plan(loadConfigFile(file, {}), registry),
        (e: unknown) => error.test(String((e as Error).message)),
        `${body.name} ${spell('x_y')}`,
      );
    }
  }
});

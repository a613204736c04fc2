/**
 * Hostile Falco rule files given to `logwarden validate`, `run` and `detect` as child
 * processes: macro and list graphs chaining 10,000 deep or doubling 40 times, and 100,000 nested
 * parentheses. Each loads, or ends with exit 1 and one file:line:col error (no stack trace).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { freePort, runCli } from '../support/cli.js';
import { falcoCorpus } from '../support/paths.js';

const events = join(falcoCorpus, 'events', 'create_nginx_pod_privileged.json');

function rule(condition: string): string {
  return `- rule: Hostile\n  desc: d\n  condition: ${JSON.stringify(condition)}\n  output: "hostile (user=%ka.user.name)"\n  priority: WARNING\n  source: k8s_audit\n`;
}

function items(kind: 'macro' | 'list', n: number, first: string, next: (i: number) => string): string {
  const key = kind === 'macro' ? 'condition' : 'items';
  const wrap = (v: string) => (kind === 'macro' ? v : `[${v}]`);
  let s = `- ${kind}: ${kind[0]}0\n  ${key}: ${wrap(first)}\n`;
  for (let i = 1; i < n; i++) s += `- ${kind}: ${kind[0]}${i}\n  ${key}: ${wrap(next(i))}\n`;
  return s;
}

const cases: Array<{ name: string; text: string; error?: (file: string) => string }> = [
  { name: 'macro chain 10,000', text: items('macro', 10_000, 'ka.verb = create', (i) => `m${i - 1}`) + rule('m9999') },
  {
    name: 'macro and-chain 10,000',
    text: items('macro', 10_000, 'ka.verb = create', (i) => `m${i - 1} and ka.user.name != u${i}`) + rule('m9999'),
    error: (f) => `${f}:2002:14: rules_file: macro 'm1000': exceeded max depth limit of 1000 once macro 'm999' is expanded (condition line 1 column 1) [LOAD_ERR_COMPILE_CONDITION]`,
  },
  { name: 'macros doubling 40 levels', text: items('macro', 41, 'ka.verb = create', (i) => `m${i - 1} or m${i - 1}`) + rule('m40') },
  { name: 'list chain 10,000', text: items('list', 10_000, 'create', (i) => `l${i - 1}`) + rule('ka.verb in (l9999)') },
  {
    name: 'lists doubling 40 levels',
    text: items('list', 41, 'create', (i) => `l${i - 1}, l${i - 1}`) + rule('ka.verb in (l40)'),
    error: (f) => `${f}:35:3: rules_file: list 'l17': list expands to more than 100000 items [LOAD_ERR_VALIDATE]`,
  },
  {
    name: '100,000 nested parentheses',
    text: rule(`${'('.repeat(100_000)}ka.verb = create${')'.repeat(100_000)}`),
    error: (f) => `${f}:3:14: rules_file: rule 'Hostile': exceeded max depth limit of 1000 (condition line 1 column 201) [LOAD_ERR_COMPILE_CONDITION]`,
  },
];

describe('hostile rule files (child process)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'detect-hostile-'));
  for (const c of cases) {
    it(`${c.name}: validate, run and detect ${c.error ? 'fail with file:line:col' : 'load'}`, async () => {
      const rules = join(dir, `${c.name.replace(/[^a-z0-9]+/gi, '-')}.yaml`);
      writeFileSync(rules, c.text);
      const config = `${rules}.pipeline.yaml`;
      writeFileSync(
        config,
        `pipeline:\n  inputs:\n    - name: forward\n      listen: 127.0.0.1\n      port: ${await freePort()}\n  filters:\n    - name: detect\n      match: 'kube.*'\n      rules_file: ${rules}\n  outputs:\n    - name: stdout\n      match: '*'\n`,
      );
      const v = await runCli(['validate', '-c', config], { timeoutMs: 60_000 });
      const d = await runCli(['detect', '-r', rules, '-e', events], { timeoutMs: 60_000 });
      if (!c.error) {
        assert.equal(v.code, 0, v.stderr);
        assert.match(v.stdout, /^OK /);
        assert.equal(d.code, 0, d.stderr);
        const alerts = d.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { rule: string });
        assert.ok(alerts.length > 0 && alerts.every((a) => a.rule === 'Hostile'), d.stdout);
        return;
      }
      const r = await runCli(['run', '-c', config], { timeoutMs: 60_000 });
      const want = c.error(rules);
      for (const [what, res] of [
        ['validate', v],
        ['run', r],
      ] as const) {
        assert.equal(res.code, 1, `${what}: ${res.stderr}`);
        assert.ok(res.stderr.includes(want), `${what}: ${res.stderr}`);
        assert.doesNotMatch(res.stderr, /\n\s+at /, `${what}: no stack trace`);
      }
      assert.equal(d.code, 1, d.stderr);
      assert.ok(d.stderr.includes(want.replace(' rules_file: ', ' error: ')), d.stderr);
      assert.doesNotMatch(d.stderr, /\n\s+at /);
    });
  }
});

/**
 * Tag routing as Fluent Bit does it: `match` with '*' wildcards (anything, dots included) or
 * `match_regex`; filters run in order on the events whose tag they match, each output gets the
 * events whose tag it matches, and events a filter emits under a new tag are routed again from
 * the first filter. Pipelines are started from YAML as `logwarden run` does (real plugins, gate
 * outputs that record what they receive).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileMatch } from '../../../src/core/match.js';
import { EventTime, type LogEvent, type LogRecord } from '../../../src/core/event.js';
import { modifyFilter } from '../../../src/filters/modify/index.js';
import { rewriteTagFilter } from '../../../src/filters/rewrite_tag/index.js';
import { gateOutput, gates, Gate } from '../../support/gate-output.js';
import { startPipeline } from '../../support/output-pipeline.js';

const plugins = [modifyFilter, rewriteTagFilter, gateOutput];

test('match: * is any run of characters, dots included; everything else is literal', () => {
  const m = (pattern: string) => compileMatch(pattern, undefined)!;
  assert.equal(compileMatch(undefined, undefined), null, 'no match, no matcher');
  assert.ok(m('*')('') && m('*')('a.b.c'));
  assert.ok(m('kube.audit')('kube.audit'));
  assert.ok(!m('kube.audit')('kube.audit.x') && !m('kube.audit')('Kube.audit'), 'exact and case-sensitive');
  assert.ok(m('kube.*')('kube.audit') && m('kube.*')('kube.a.b') && m('kube.*')('kube.'));
  assert.ok(!m('kube.*')('kube') && !m('kube.*')('kubeXaudit'), 'the dot is literal');
  assert.ok(m('*.audit')('kube.audit') && !m('*.audit')('kube.audit.log'));
  assert.ok(m('a*b*c')('abc') && m('a*b*c')('a.x.b.y.c') && !m('a*b*c')('a.c'));
  for (const special of ['a+b', 'a?b', '(a)', '[ab]', 'a|b', 'a^b$', 'a\\b', '{a}']) {
    assert.ok(m(special)(special), `${special} is literal`);
    assert.ok(m(`${special}.*`)(`${special}.x`), `${special}.* is literal but for the star`);
  }
  assert.ok(!m('a+b')('aab') && !m('[ab]')('a') && !m('a|b')('a'));
});

test('match_regex: searched in the tag (anchor it to match the whole tag), and it wins over match', () => {
  const r = (re: string) => compileMatch(undefined, re)!;
  assert.ok(r('audit')('kube.audit.log'), 'unanchored');
  assert.ok(r('^kube\\.(audit|events)$')('kube.events'));
  assert.ok(!r('^kube\\.(audit|events)$')('kube.events.x'));
  assert.ok(r('^app\\.[0-9]+$')('app.42') && !r('^app\\.[0-9]+$')('app.x'));
  const both = compileMatch('nothing', '^app\\.');
  assert.ok(both!('app.web') && !both!('nothing'));
});

const ev = (tag: string, record: LogRecord): LogEvent => ({ tag, time: new EventTime(1_700_000_000, 0), record });

/** A gate output block recording into `gates.get(name)`. */
function gate(name: string, match: string): string {
  gates.set(name, new Gate());
  return `    - name: gate\n      ${match}\n      gate: ${name}\n      retry_limit: no_retries`;
}

const delivered = (name: string) => gates.get(name)!.delivered.map((e) => [e.tag, e.record]);

test('each output gets the events its match selects; filters change only the events they match', async () => {
  const r = await startPipeline(
    `
pipeline:
  filters:
    - name: modify
      match: 'app.*'
      add: app_filter yes
    - name: modify
      match_regex: '^(app\\.web|kube\\..*\\.audit)$'
      add: regex_filter yes
  outputs:
${gate('rt-app', "match: 'app.*'")}
${gate('rt-kube', "match: 'kube.*.audit'")}
${gate('rt-regex', "match_regex: '^(audit|kube)\\.'")}
${gate('rt-all', "match: '*'")}
`,
    plugins,
  );
  try {
    const outcome = await r.ingest([ev('app.web', { n: 1 }), ev('app.api', { n: 2 }), ev('kube.x.audit', { n: 3 }), ev('kube.audit', { n: 4 }), ev('audit.k8s', { n: 5 }), ev('other', { n: 6 })]);
    assert.deepEqual(outcome, { ok: true });
    assert.deepEqual(delivered('rt-app'), [
      ['app.web', { n: 1, app_filter: 'yes', regex_filter: 'yes' }],
      ['app.api', { n: 2, app_filter: 'yes' }],
    ]);
    assert.deepEqual(delivered('rt-kube'), [['kube.x.audit', { n: 3, regex_filter: 'yes' }]]);
    assert.deepEqual(delivered('rt-regex'), [
      ['kube.x.audit', { n: 3, regex_filter: 'yes' }],
      ['kube.audit', { n: 4 }],
      ['audit.k8s', { n: 5 }],
    ]);
    assert.deepEqual(
      delivered('rt-all').map(([tag]) => tag),
      ['app.web', 'app.api', 'kube.x.audit', 'kube.audit', 'audit.k8s', 'other'],
    );
    assert.equal(await r.counter('logwarden_router_unrouted_records_total'), 0);
  } finally {
    await r.stop(1);
  }
});

test('an event that matches no output is counted as unrouted, and the chunk is still committed', async () => {
  const r = await startPipeline(`\npipeline:\n  outputs:\n${gate('rt-only', "match: 'app.*'")}\n`, plugins);
  try {
    assert.deepEqual(await r.ingest([ev('app.a', { n: 1 }), ev('nowhere', { n: 2 }), ev('nowhere.else', { n: 3 })]), { ok: true });
    assert.deepEqual(delivered('rt-only'), [['app.a', { n: 1 }]]);
    assert.equal(await r.counter('logwarden_router_unrouted_records_total'), 2);
  } finally {
    await r.stop(1);
  }
});

test('events emitted under a new tag are routed again from the first filter, to the outputs of their new tag', async () => {
  const r = await startPipeline(
    `
pipeline:
  filters:
    - name: modify
      match: 'alert.*'
      add: before_rewrite yes
    - name: modify
      match: '*'
      add: first_filter yes
    - name: rewrite_tag
      match: app.web
      rule:
        - $level ^(error)$ alert.$TAG false
        - $level ^(warn)$ alert.$TAG true
    - name: modify
      match_regex: '^alert\\.'
      add: alert_filter yes
  outputs:
${gate('re-app', "match: 'app.*'")}
${gate('re-alert', "match: 'alert.*'")}
`,
    plugins,
  );
  try {
    const outcome = await r.ingest([ev('app.web', { level: 'info' }), ev('app.web', { level: 'error' }), ev('app.web', { level: 'warn' }), ev('app.api', { level: 'error' })]);
    assert.deepEqual(outcome, { ok: true });
    // KEEP false took the error event out of app.web; KEEP true left the warn one there too.
    assert.deepEqual(delivered('re-app'), [
      ['app.web', { level: 'info', first_filter: 'yes' }],
      ['app.web', { level: 'warn', first_filter: 'yes' }],
      ['app.api', { level: 'error', first_filter: 'yes' }],
    ]);
    // The copies went through the filters again under their new tag, from the first one (which
    // matches only alert.*, so nothing else reached it): before_rewrite and alert_filter are theirs.
    assert.deepEqual(delivered('re-alert'), [
      ['alert.app.web', { level: 'error', before_rewrite: 'yes', first_filter: 'yes', alert_filter: 'yes' }],
      ['alert.app.web', { level: 'warn', before_rewrite: 'yes', first_filter: 'yes', alert_filter: 'yes' }],
    ]);
    assert.equal(await r.counter('logwarden_filter_records_total', { name: 'rewrite_tag.0', result: 'emitted' }), 2);
  } finally {
    await r.stop(1);
  }
});

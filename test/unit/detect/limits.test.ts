/**
 * Hostile rule files: macro and list graphs that chain 10,000 deep or double 40 times, deeply
 * nested conditions and YAML, and floods of warnings. Each loads, or fails with a file:line:col
 * error, and every macro and list is resolved once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newAuditEvent } from '../../../src/falco/event.js';
import { Engine } from '../../../src/falco/engine.js';
import { MAX_WARNINGS, RuleLoadError, RuleLoader, formatMessage, type RuleSet } from '../../../src/falco/loader.js';
import { LIMITS } from '../../../src/falco/resolve.js';
import { auditEvent, matches, ruleItem } from './helpers.js';

const ev = auditEvent();

function loadOne(text: string): RuleSet {
  const l = new RuleLoader();
  l.loadText(text, 'x.yaml');
  return l.result();
}

function loadError(text: string): string {
  try {
    loadOne(text);
  } catch (e) {
    assert.ok(e instanceof RuleLoadError, `a RuleLoadError, not ${String(e)}`);
    return formatMessage(e.first);
  }
  assert.fail('loaded');
}

/** `- macro: m<i>` items, two lines each, so macro i starts on line 2i+1 and its condition at column 14 of line 2i+2. */
function macros(n: number, first: string, next: (i: number) => string): string {
  let s = `- macro: m0\n  condition: ${first}\n`;
  for (let i = 1; i < n; i++) s += `- macro: m${i}\n  condition: ${next(i)}\n`;
  return s;
}

/** `- list: l<i>` items, two lines each: list i starts at line 2i+1, column 3. */
function lists(n: number, first: string, next: (i: number) => string): string {
  let s = `- list: l0\n  items: [${first}]\n`;
  for (let i = 1; i < n; i++) s += `- list: l${i}\n  items: [${next(i)}]\n`;
  return s;
}

describe('hostile rule files', () => {
  it('a chain of 10,000 macros loads, each macro resolved once', () => {
    const rs = loadOne(macros(10_000, 'ka.verb = create', (i) => `m${i - 1}`) + ruleItem('R', 'm9999'));
    assert.deepEqual(matches(rs, ev), ['R']);
    assert.deepEqual(matches(rs, auditEvent({ verb: 'delete' })), []);
    assert.equal(rs.stats.macros, 10_000);
  });

  it('a chain of 10,000 macros that nests and/or deeper than the limit fails at the macro that crosses it', () => {
    const text = macros(10_000, 'ka.verb = create', (i) => `m${i - 1} and ka.user.name != u${i}`) + ruleItem('R', 'm9999');
    const at = LIMITS.depth;
    assert.equal(
      loadError(text),
      `x.yaml:${2 * at + 2}:14: error: macro 'm${at}': exceeded max depth limit of ${at} once macro 'm${at - 1}' is expanded (condition line 1 column 1) [LOAD_ERR_COMPILE_CONDITION]`,
    );
    // At the limit the rule loads and evaluation (which recurses through the nesting) works.
    const rs = loadOne(macros(at, 'ka.verb = create', (i) => `m${i - 1} and ka.user.name != u${i}`) + ruleItem('R', `m${at - 1}`));
    assert.deepEqual(matches(rs, ev), ['R']);
    assert.deepEqual(matches(rs, auditEvent({ user: { username: 'u7' } })), []);
  });

  it('macros that double 40 times load as 41 shared nodes and evaluate once per event', () => {
    const rs = loadOne(macros(41, 'ka.verb = create', (i) => `m${i - 1} or m${i - 1}`) + ruleItem('R', 'm40'));
    assert.equal(rs.stats.macros, 41, 'each macro resolved once');
    assert.ok(rs.stats.nodes <= 42, `${rs.stats.nodes} DAG nodes`);
    const root = rs.rules[0]!.node;
    assert.equal(root.kind, 'or');
    assert.equal(root.children[0], root.children[1], 'both uses of m39 are one node');
    assert.deepEqual(matches(rs, ev), ['R']);
    assert.deepEqual(matches(rs, auditEvent({ verb: 'get' })), [], 'a false result needs every level evaluated: memoised, not 2^40 calls');
  });

  it('a macro shared by many rules is resolved and planned once', () => {
    let text = '- macro: shared\n  condition: ka.verb in (create, update) and ka.target.resource = pods\n';
    for (let i = 0; i < 50; i++) text += ruleItem(`R${i}`, `shared and ka.user.name != u${i}`);
    const rs = loadOne(text);
    assert.equal(rs.stats.macros, 1);
    const first = rs.rules[0]!.node.children[0]!;
    for (const r of rs.rules) assert.equal(r.node.children[0], first, `${r.name} uses the one node of the macro`);
    assert.equal(matches(rs, ev).length, 50);
  });

  it('a reference loop through 10,000 redefined macros is an error at the macro that closes it', () => {
    // m0..m9999 defined, then each redefined to use the next one (defined before it), the last one m0.
    let text = '';
    for (let i = 0; i < 10_000; i++) text += `- macro: m${i}\n  condition: ka.verb = create\n`;
    for (let i = 0; i < 10_000; i++) text += `- macro: m${i}\n  condition: m${(i + 1) % 10_000}\n`;
    assert.equal(loadError(text + ruleItem('R', 'm0')), `x.yaml:40000:14: error: macro 'm9999': reference loop in macro 'm0' (condition line 1 column 1) [LOAD_ERR_COMPILE_CONDITION]`);
    // Without the loop, the same 10,000-deep forward chain resolves.
    const ok = text.replace(/condition: m0\n$/, 'condition: ka.verb = create\n');
    assert.deepEqual(matches(loadOne(ok + ruleItem('R', 'm0')), ev), ['R']);
  });

  it('a chain of 10,000 lists loads, each list expanded once', () => {
    const rs = loadOne(lists(10_000, 'create', (i) => `l${i - 1}`) + ruleItem('R', 'ka.verb in (l9999)'));
    assert.deepEqual(matches(rs, ev), ['R']);
    assert.equal(rs.stats.lists, 10_000);
  });

  it('lists that double 40 times fail at the list that passes the item limit', () => {
    const text = lists(41, 'create', (i) => `l${i - 1}, l${i - 1}`) + ruleItem('R', 'ka.verb in (l40)');
    // l17 has 2^17 = 131,072 items, more than 100,000.
    assert.equal(LIMITS.listItems, 100_000);
    assert.equal(loadError(text), `x.yaml:35:3: error: list 'l17': list expands to more than 100000 items [LOAD_ERR_VALIDATE]`);
    const rs = loadOne(lists(17, 'create', (i) => `l${i - 1}, l${i - 1}`) + ruleItem('R', 'ka.verb in (l16)'));
    assert.deepEqual(matches(rs, ev), ['R'], '65,536 items load');
  });

  it('list items substituted into conditions are bounded per (...) and per rule set', () => {
    const base = lists(17, 'create', (i) => `l${i - 1}, l${i - 1}`);
    assert.equal(
      loadError(base + ruleItem('R', 'ka.verb in (l16, l16)')),
      `x.yaml:37:14: error: rule 'R': list expands to more than 100000 items once list 'l16' is substituted (condition line 1 column 18) [LOAD_ERR_COMPILE_CONDITION]`,
    );
    // Expanding l0..l16 produces 131,071 items; each rule adds 65,536: the 14th rule passes 1,000,000.
    let text = base;
    for (let i = 1; i <= 20; i++) text += ruleItem(`R${i}`, 'ka.verb in (l16)');
    assert.equal(LIMITS.totalListItems, 1_000_000);
    assert.equal(
      loadError(text),
      `x.yaml:${37 + 13 * 6}:14: error: rule 'R14': the conditions and lists of this rule set expand to more than 1000000 list items in total (condition line 1 column 13) [LOAD_ERR_COMPILE_CONDITION]`,
    );
  });

  it('100,000 nested parentheses, not( and transformers are a depth error with a position', () => {
    const deep = [
      `${'('.repeat(100_000)}ka.verb = create${')'.repeat(100_000)}`,
      `${'not('.repeat(100_000)}ka.verb = create${')'.repeat(100_000)}`,
      `${'tolower('.repeat(100_000)}ka.verb${')'.repeat(100_000)} = create`,
      `${'ka.verb = create and ('.repeat(100_000)}ka.verb = create${')'.repeat(100_000)}`,
    ];
    for (const cond of deep) {
      assert.match(loadError(ruleItem('R', cond)), /^x\.yaml:3:14: error: rule 'R': exceeded max depth limit of 1000 \(condition line 1 column \d+\) \[LOAD_ERR_COMPILE_CONDITION\]$/);
    }
    // The same in a macro names the macro.
    assert.match(
      loadError(`- macro: m\n  condition: ${'('.repeat(100_000)}ka.verb = create${')'.repeat(100_000)}\n`),
      /^x\.yaml:2:14: error: macro 'm': exceeded max depth limit of 1000 \(condition line 1 column 201\)/,
    );
  });

  it('YAML nested past what its parser can take is a parse error with a position', () => {
    const msg = loadError(`- list: a\n  items: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`);
    assert.match(msg, /^x\.yaml:2:\d+: error: YAML nesting too deep to parse \(Maximum call stack size exceeded\) \[LOAD_ERR_YAML_PARSE\]$/);
  });

  it('a flood of warnings is cut at the warning limit', () => {
    // 200 distinct warned checks in one macro, used by 100 rules: 20,000 warnings.
    let text = `- macro: w\n  condition: ${Array.from({ length: 200 }, (_, i) => `ka.req.role.rules.resources contains x${i}`).join(' or ')}\n`;
    for (let i = 0; i < 100; i++) text += ruleItem(`R${i}`, 'w');
    const rs = loadOne(text);
    assert.equal(rs.rules.length, 100);
    const warnings = rs.messages.filter((m) => m.severity === 'warning');
    assert.equal(warnings.length, MAX_WARNINGS + 1);
    assert.equal(warnings.at(-1)!.code, 'LOAD_TOO_MANY_WARNINGS');
    assert.match(formatMessage(warnings.at(-1)!), /more than 1000 warnings; further warnings are not reported \[LOAD_TOO_MANY_WARNINGS\]$/);
  });

  it('rules sharing a macro each get its warnings, as when the macro was inlined per rule', () => {
    const rs = loadOne(`- macro: w\n  condition: ka.req.role.rules.resources contains x\n${ruleItem('A', 'w')}${ruleItem('B', 'ka.verb = create and w')}`);
    const warned = rs.messages.filter((m) => m.code === 'LOAD_COMPILE_CONDITION').map((m) => m.item);
    assert.deepEqual(warned, ["rule 'A'", "rule 'B'"]);
  });

  it('rules sharing a macro with an unknown field are each skipped (skip-if-unknown-filter)', () => {
    let text = `- macro: bad\n  condition: ${Array.from({ length: 500 }, (_, i) => `ka.verb = v${i}`).join(' or ')} or ka.nope = 1\n`;
    for (let i = 0; i < 100; i++) text += ruleItem(`R${i}`, 'bad', '  skip-if-unknown-filter: true\n');
    text += ruleItem('Good', 'ka.verb = create');
    const rs = loadOne(text);
    assert.deepEqual(
      rs.rules.map((r) => r.name),
      ['Good'],
    );
    assert.equal(rs.summary.filter((s) => s.skipped?.startsWith('unknown field')).length, 100);
    const e = new Engine(rs, { ruleMatching: 'all', minPriority: 7, hostname: 'h' });
    let n = 0;
    e.evaluate(newAuditEvent(ev, 'h'), () => n++);
    assert.equal(n, 1);
  });
});

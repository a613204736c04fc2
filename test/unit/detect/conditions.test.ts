/**
 * Condition language semantics: libsinsp's grammar and errors, every operator, missing-field
 * behaviour, lists, macros, transformers, val(), field arguments, and RE2 regexes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConditionSyntaxError, parseCondition } from '../../../src/falco/parser.js';
import { auditEvent, holds, load, ruleItem } from './helpers.js';

const ev = auditEvent();
const pod = auditEvent({
  objectRef: { resource: 'pods', namespace: 'kube-system', name: 'p' },
  requestObject: {
    spec: {
      containers: [
        { name: 'a', image: 'registry.example.com:5000/team/app:1.2@sha256:abc', securityContext: { privileged: true, runAsUser: 1000 } },
        { name: 'b', image: 'nginx:1.25', ports: [{ containerPort: 80 }, { containerPort: 443, hostPort: 8443 }] },
      ],
      securityContext: { runAsUser: 2000 },
      volumes: [
        { name: 'v1', configMap: { name: 'c' } },
        { name: 'v2', hostPath: { path: '/var/run/docker.sock' } },
      ],
    },
  },
});

function syntaxError(cond: string): string {
  try {
    parseCondition(cond);
  } catch (e) {
    assert.ok(e instanceof ConditionSyntaxError);
    return e.message;
  }
  assert.fail(`'${cond}' parsed`);
}

describe('condition parser (libsinsp grammar)', () => {
  it('parses and/or/not precedence, parentheses and not( )', () => {
    assert.equal(holds('ka.verb=create or ka.verb=delete and ka.verb=get', ev), true, 'and binds tighter than or');
    assert.equal(holds('(ka.verb=create or ka.verb=delete) and ka.verb=get', ev), false);
    assert.equal(holds('not(ka.verb=get)', ev), true);
    assert.equal(holds('not not ka.verb=create', ev), true);
    assert.equal(holds('ka.verb=create and(ka.user.name=alice)', ev), true);
  });

  it('reports errors as libsinsp does', () => {
    assert.equal(syntaxError('ka.verb = create and'), "expected blank or '(' after 'and'");
    assert.equal(
      syntaxError('ka.verb create'),
      "expected a valid check operator: one of 'exists', '<=', '<', '>=', '>', '==', '=', '!=', 'glob', 'iglob', 'contains', 'icontains', 'bcontains', 'startswith', 'bstartswith', 'endswith', 'regex', 'intersects', 'in', 'pmatch'",
    );
    assert.equal(syntaxError('ka.verb = create )'), "unexpected token after 'create', expecting 'or', 'and'");
    assert.equal(syntaxError('(ka.verb = create'), "expected a ')' token");
    assert.equal(syntaxError('ka.verb in (a, b'), "expected a ')' token");
    assert.equal(syntaxError('ka.verb = "a\\d"'), 'unsupported string escape sequence: \\d');
    assert.equal(syntaxError(''), 'filter input string is empty');
  });

  it('reads quoted strings with escapes and bare words up to blanks, commas, parentheses and =', () => {
    assert.equal(holds('ka.user.name = "alice"', ev), true);
    assert.equal(holds("ka.auth.decision = 'allow'", ev), true);
    assert.equal(holds('ka.uri contains "command=sh&"', ev), true);
    assert.throws(() => load(ruleItem('R', 'ka.uri endswith container=app')), /unexpected token after 'container'/, 'a bare word stops at =');
    const e = parseCondition('ka.user.name = "a \\"b\\"\\n"');
    assert.equal(e.kind === 'binary' && e.right.kind === 'value' && e.right.value, 'a "b"\n');
  });
});

describe('operators and missing fields (Falco semantics)', () => {
  it('a comparison on an absent field is false, != included; not of it is true', () => {
    const e = auditEvent({ objectRef: { resource: 'pods', name: 'x' } });
    assert.equal(holds('ka.target.subresource = exec', e), false);
    assert.equal(holds('ka.target.subresource != exec', e), false);
    assert.equal(holds('not ka.target.subresource != exec', e), true);
    assert.equal(holds('ka.target.subresource exists', e), false);
    assert.equal(holds('not ka.target.subresource exists', e), true);
    assert.equal(holds('ka.target.subresource in (exec, attach)', e), false);
  });

  it('string operators', () => {
    assert.equal(holds('ka.uri contains "/pods/"', ev), true);
    assert.equal(holds('ka.useragent icontains KUBECTL', ev), true);
    assert.equal(holds('ka.uri startswith /api/v1', ev), true);
    assert.equal(holds('ka.uri endswith "container=app"', ev), true);
    assert.equal(holds('ka.uri glob "/api/*/namespaces/default/pods/*"', ev), true);
    assert.equal(holds('ka.uri glob "/api/v?/*"', ev), true);
    assert.equal(holds('ka.uri glob "/api/v[0-9]/*"', ev), true);
    assert.equal(holds('ka.uri glob "/apis/*"', ev), false);
    assert.equal(holds('ka.useragent iglob "KUBECTL*"', ev), true);
    assert.equal(holds('ka.response.code < 300', ev), true, 'text fields compare byte-wise, as strcmp');
    assert.equal(holds('ka.response.code >= 201', ev), true);
    assert.equal(holds('ka.response.code > 3', ev), false, '"201" sorts before "3"');
    assert.throws(() => load(ruleItem('R', 'ka.verb < get')), /expected a number value/);
    assert.equal(holds('ka.user.name bcontains 6c6963', ev), true, 'hex of "lic"');
    assert.equal(holds('ka.user.name bstartswith 616c', ev), true);
    assert.equal(holds('ka.user.name bstartswith 6c', ev), false);
    assert.equal(holds('ka.response.code = 201', ev), true, 'numbers are text in k8saudit fields');
  });

  it('pmatch matches a path or anything below it, component-wise', () => {
    const e = auditEvent({ requestURI: '/var/run/docker.sock' });
    assert.equal(holds('ka.uri pmatch (/var/run, /etc)', e), true);
    assert.equal(holds('ka.uri pmatch (/var/ru)', e), false);
    assert.equal(holds('ka.uri pmatch (/var/run/docker.sock)', e), true);
  });

  it('regex is RE2, anchored at both ends, and linear-time on hostile patterns', () => {
    assert.equal(holds('ka.user.name regex "al.*"', ev), true);
    assert.equal(holds('ka.user.name regex "lic"', ev), false, 'the whole value must match');
    const long = auditEvent({ user: { username: `${'a'.repeat(50_000)}!` } });
    const t0 = Date.now();
    assert.equal(holds('ka.user.name regex "(a+)+$"', long), false);
    assert.ok(Date.now() - t0 < 5000, 'no catastrophic backtracking');
    assert.throws(() => load(ruleItem('R', 'ka.user.name regex "(?<=a)b"')), /invalid regular expression/);
  });

  it('regex matches the whole value as RE2 ANCHOR_BOTH does: alternation, final newline, wrapped patterns', () => {
    assert.equal(holds('ka.user.name regex "ali|alice"', ev), true, 'an alternative that covers the whole value is found');
    assert.equal(holds('ka.user.name regex "(?i)ALICE"', ev), true);
    assert.equal(holds('ka.user.name regex "alice"', auditEvent({ user: { username: 'alice\n' } })), false, '$ is the end of the value, not a final newline');
    assert.equal(holds('ka.user.name regex "x*"', auditEvent({ user: { username: '' } })), true);
    assert.throws(() => load(ruleItem('R', 'ka.user.name regex "a)|(alice"')), /invalid regular expression 'a\)\|\(alice': unexpected \)/, 'not read as ^(?:a)|(alice)$');
  });

  it('in and intersects: membership for single values; all vs any for list fields', () => {
    assert.equal(holds('ka.verb in (get, create)', ev), true);
    assert.equal(holds('ka.verb intersects (create)', ev), true);
    assert.equal(holds('ka.user.groups in (dev, system:authenticated, other)', ev), true, 'every value in the set');
    assert.equal(holds('ka.user.groups in (dev)', ev), false);
    assert.equal(holds('ka.user.groups intersects (dev)', ev), true, 'some value in the set');
    assert.equal(holds('ka.verb in ()', ev), false);
    assert.equal(holds('not ka.verb in ()', ev), true);
    assert.equal(holds('ka.user.groups exists', ev), true);
    assert.equal(holds('ka.user.groups exists', auditEvent({ user: { username: 'x', groups: [] } })), false, 'an empty list is absent');
  });

  it('an operator a list field does not support loads with a warning and is false', () => {
    const rs = load(ruleItem('R', 'ka.user.groups contains dev'));
    assert.ok(rs.messages.some((m) => m.code === 'LOAD_COMPILE_CONDITION' && /not supported on list field/.test(m.message)));
  });

  it('transformers and val()', () => {
    assert.equal(holds('toupper(ka.verb) = CREATE', ev), true);
    assert.equal(holds('tolower(ka.useragent) startswith kubectl', auditEvent({ userAgent: 'KUBECTL/1' })), true);
    assert.equal(holds('len(ka.user.groups) = 2', ev), true);
    assert.equal(holds('len(ka.user.name) > 4', ev), true);
    assert.equal(holds('basename(ka.uri) startswith "exec?"', ev), true);
    assert.equal(holds('b64(ka.user.name) = hello', auditEvent({ user: { username: 'aGVsbG8=' } })), true);
    assert.equal(holds('ka.user.name = val(ka.impuser.name)', ev), true);
    assert.equal(holds('ka.user.name = val(ka.target.name)', ev), false);
    assert.equal(holds('ka.user.name != val(ka.cluster.name)', ev), false, 'absent right-hand field');
    assert.throws(() => load(ruleItem('R', 'len(ka.verb) contains 1')), /not supported for numeric filters/);
  });

  it('field arguments: JSON pointers with ~0/~1, indexes, keys', () => {
    assert.equal(holds('jevt.value[/annotations/a~1b] = slash', ev), true);
    assert.equal(holds('json.value[/annotations/a~0b] = tilde', ev), true);
    assert.equal(holds('jevt.value[stage] = ResponseComplete', ev), true, 'the leading / is optional');
    assert.equal(holds('jevt.value[/sourceIPs/1] = 10.0.0.8', ev), true);
    assert.equal(holds('jevt.value[/responseStatus/code] = 201', ev), true);
    assert.equal(holds('jevt.value[/nope] exists', ev), false);
    assert.equal(holds('jevt.value[/constructor] exists', ev), false, 'only own properties');
    assert.equal(holds('ka.uri.param[command] = sh', ev), true, 'the first value');
    assert.equal(holds('ka.uri.param[missing] exists', ev), false);
    assert.equal(holds('ka.req.pod.containers.image[1] in ("nginx:1.25")', pod), true, 'an index picks one entry; the field stays a list field');
    assert.equal(holds('ka.req.pod.containers.image[2] exists', pod), false);
    assert.throws(() => load(ruleItem('R', 'ka.uri.param exists')), /requires an argument/);
    assert.throws(() => load(ruleItem('R', 'ka.verb[1] exists')), /does not accept an argument/);
    assert.throws(() => load(ruleItem('R', 'ka.req.pod.containers.image[x] exists')), /numeric index/);
    assert.throws(() => load(ruleItem('R', 'ka.nope = 1')), /nonexistent field ka\.nope/);
  });
});

describe('lists and macros', () => {
  const lists = `
- list: inner
  items: [create, "update"]
- list: outer
  items: [inner, patch, "with space"]
- list: empty
  items: []
`;
  it('substitutes lists, nested lists and empty lists; other names in (...) are literals', () => {
    assert.equal(holds('ka.verb in (outer)', ev, lists), true);
    assert.equal(holds('ka.verb in outer', ev, lists), true, 'a bare list name after in');
    assert.equal(holds('ka.verb in (empty, create)', ev, lists), true);
    assert.equal(holds('ka.verb in (no_such_list, create)', ev, lists), true);
    assert.equal(holds('ka.verb in (no_such_list)', auditEvent({ verb: 'no_such_list' }), lists), true);
    assert.equal(holds('ka.verb in ("outer")', auditEvent({ verb: 'outer' }), lists), true, 'a quoted name is a literal');
    assert.equal(holds('ka.verb in (outer)', auditEvent({ verb: 'with space' }), lists), true);
  });

  it('macros resolve to their final definition, also in rules defined before the redefinition', () => {
    const rs = load(`- macro: m\n  condition: ka.verb = delete\n${ruleItem('R', 'm')}- macro: m\n  condition: ka.verb = create\n`);
    assert.equal(rs.rules.length, 1);
    assert.deepEqual(
      load(`- macro: m\n  condition: ka.verb = delete\n${ruleItem('R', 'm')}- macro: m\n  condition: ka.verb = create\n`).rules.map((r) => r.name),
      ['R'],
    );
    assert.equal(holds('m', ev, '- macro: m\n  condition: ka.verb = delete\n- macro: m\n  condition: (ka.verb = create)\n'), true);
  });

  it('a macro may only use macros defined before it; undefined macros and loops are errors', () => {
    assert.throws(() => load(`- macro: a\n  condition: b\n- macro: b\n  condition: ka.verb = create\n${ruleItem('R', 'a')}`), /Undefined macro 'b' used in filter/);
    assert.throws(
      () => load(ruleItem('R', 'nope and ka.verb = create')),
      /a\.yaml:3:14: error: rule 'R': Undefined macro 'nope' used in filter\. \(condition line 1 column 1\) \[LOAD_ERR_COMPILE_CONDITION\]/,
    );
    assert.throws(
      () => load(`- macro: a\n  condition: ka.verb = create\n- macro: a\n  condition: a\n${ruleItem('R', 'a')}`),
      /a\.yaml:4:14: error: macro 'a': reference loop in macro 'a' \(condition line 1 column 1\) \[LOAD_ERR_COMPILE_CONDITION\]/,
    );
  });
});

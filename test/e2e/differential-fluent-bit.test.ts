/**
 * Fluent Bit 5.1.1 as the oracle: each case feeds the same lines through the real Fluent Bit
 * (tail -> filters -> file output) and through `logwarden replay` with the same parser and
 * filter sections (cases marked `wire` also through Fluent Bit tail -> forward -> `logwarden
 * run` -> file output, the path logwarden runs in), and compares the outputs record by record: tag, time (the parsed time to the
 * nanosecond, or "read time" on both sides when no time was parsed) and the record with its key
 * order and any duplicate keys, numbers by value (a float with an integral value apart).
 *
 * Where logwarden differs on purpose (docs/parsers.md, docs/filters.md "Differences"), the case
 * names the difference and the records it touches are compared in the documented form.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../support/paths.js';
import { describe, runFluentBit, runLogwarden, runLogwardenForward, timeClass, type DiffCase, type RunResult } from '../support/fluent-bit-oracle.js';

const root = mkdtempSync(join(tmpdir(), 'logwarden-fbdiff-'));

/** A documented difference: one record of Fluent Bit's output and what logwarden writes instead. */
interface Differs {
  /** The record as Fluent Bit wrote it: `TIME RECORD`, TIME being the nanoseconds or `read time`. */
  fluentBit: string;
  logwarden: string;
  /** Where the difference is documented, and a phrase of that text. */
  doc: [file: string, phrase: string];
  /** The record's tag, when it is not the case's. */
  tag?: string;
}

interface Case extends DiffCase {
  name: string;
  differs?: Differs[];
  /** Replacements in both outputs before comparing (values that are random on both sides). */
  normalize?: Array<[RegExp, string]>;
  /** Also run the wire path: Fluent Bit tails and forwards the raw lines to `logwarden run`. */
  wire?: boolean;
}

function byTag(run: RunResult, normalize: Array<[RegExp, string]> = []): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of run.records) {
    const list = out.get(r.tag) ?? [];
    let line = `${timeClass(r.time, run)} ${r.text}`;
    for (const [re, to] of normalize) line = line.replace(re, to);
    list.push(line);
    out.set(r.tag, list);
  }
  return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

async function differential(c: Case): Promise<void> {
  const dir = join(root, c.name.replace(/[^a-z0-9]+/gi, '-'));
  const [fb, lw, wire] = await Promise.all([runFluentBit(join(dir, 'fb'), c), runLogwarden(join(dir, 'lw'), c), c.wire ? runLogwardenForward(join(dir, 'wire'), c) : undefined]);
  const want = byTag(fb, c.normalize);
  for (const d of c.differs ?? []) {
    const list = want.get(d.tag ?? c.tag) ?? [];
    const at = list.indexOf(d.fluentBit);
    assert.ok(at >= 0, `the documented difference is not in Fluent Bit's output any more: ${d.fluentBit}\n${describe(fb).join('\n')}`);
    list[at] = d.logwarden;
    assert.ok(readFileSync(join(repoRoot, d.doc[0]), 'utf8').includes(d.doc[1]), `${d.doc[0]} does not say "${d.doc[1]}"`);
  }
  assert.ok(fb.records.length > 0, `Fluent Bit wrote nothing\n${fb.log}`);
  for (const [label, run] of [
    ['logwarden replay', lw],
    ['Fluent Bit -> forward -> logwarden run', wire],
  ] as const) {
    if (!run) continue;
    const show = () =>
      `\n--- Fluent Bit\n${describe(fb).join('\n')}\n--- ${label}\n${describe(run).join('\n')}\n--- logs\n${[fb.log, run.log]
        .join('\n')
        .split('\n')
        .filter((l) => /\[(error|warn)\]|"level":(40|50)/.test(l))
        .join('\n')}`;
    if (process.env.FBDIFF_SHOW) process.stderr.write(`\n=== ${c.name}${show()}\n`);
    const got = byTag(run, c.normalize);
    assert.deepEqual([...got.keys()], [...want.keys()], `${label}: tags differ${show()}`);
    for (const [tag, records] of want) assert.deepEqual(got.get(tag), records, `${label}: records of ${tag} differ${show()}`);
  }
}

const w = (o: Record<string, unknown>) => JSON.stringify(o);

const cases: Case[] = [
  {
    name: 'json parser: types, escapes, unicode, nesting, lines that are not objects',
    wire: true,
    tag: 'app.json',
    differs: [
      {
        fluentBit: 'read time {"floats":[1.0,1000.0,-0.0025,0.1,100.25],"zero":0,"negzero":0}',
        logwarden: 'read time {"floats":[1,1000,-0.0025,0.1,100.25],"zero":0,"negzero":0}',
        doc: ['docs/parsers.md', 'A float with an integral value (`1.0`) is written as the integer `1`'],
      },
    ],
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [],
    lines: [
      '{"s":"x","i":1,"neg":-5,"f":2.5,"big":12345678901,"t":true,"fl":false,"n":null,"arr":[1,"2",{"x":[]}],"o":{"k":{"z":1}}}',
      '{"esc":"quote\\" backslash\\\\ tab\\t nl\\n slash\\/ bmp\\u263a pair\\ud83d\\ude00 ctl\\u0001"}',
      '{"ключ":"значение","日本":"語","emoji":"😀"}',
      '{"floats":[1.0,1e3,-2.5E-3,0.1,100.25],"zero":0,"negzero":-0}',
      '{}',
      '  {"lead":"spaces"}',
      '{"nested_json":"{\\"x\\":1}","empty":""}',
      'not json at all',
      '[1,2,3]',
      '"a string"',
      '{"unterminated":',
      '',
    ],
  },
  {
    name: 'json parser: time_key, time_format with %L and %z',
    tag: 'app.json.time',
    tailParser: 'jt',
    parsers: [{ name: 'jt', format: 'json', time_key: 'ts', time_format: '%Y-%m-%dT%H:%M:%S.%L%z' }],
    filters: [],
    lines: [
      w({ ts: '2024-01-02T03:04:05.123456789Z', msg: 'ns' }),
      w({ ts: '2024-01-02T03:04:05.5+02:00', msg: 'offset with colon' }),
      w({ ts: '2024-01-02T03:04:05.250-0130', msg: 'offset' }),
      w({ msg: 'no time key' }),
      w({ msg: 'time key after', ts: '2023-12-31T23:59:59.999Z', after: 1 }),
    ],
  },
  {
    name: 'json parser: time_keep and a time without zone',
    tag: 'app.json.keep',
    tailParser: 'jk',
    parsers: [{ name: 'jk', format: 'json', time_key: 'time', time_format: '%d/%b/%Y:%H:%M:%S', time_keep: true }],
    filters: [],
    lines: [w({ time: '10/Oct/2000:13:55:36', a: 1 }), w({ a: 2, time: '01/Feb/2021:00:00:00' })],
  },
  {
    name: 'regex parser: named groups, types, empty groups, lines that do not match',
    wire: true,
    tag: 'app.regex',
    differs: [
      {
        fluentBit: `1704164645000000000 ${w({ host: '10.0.0.2', user: '-', method: 'POST', path: '/api/v1/x?q=1', code: 404, size: 0 })}`,
        logwarden: `1704164645000000000 ${w({ host: '10.0.0.2', user: '-', method: 'POST', path: '/api/v1/x?q=1', code: 404, size: '-' })}`,
        doc: ['docs/parsers.md', 'A failed `types` cast keeps the value as a string'],
      },
    ],
    tailParser: 'apache',
    parsers: [
      {
        name: 'apache',
        format: 'regex',
        regex:
          '^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] "(?<method>\\S+)(?: +(?<path>[^\\"]*?)(?: +\\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\\"]*)" "(?<agent>[^\\"]*)")?$',
        time_key: 'time',
        time_format: '%d/%b/%Y:%H:%M:%S %z',
        types: 'code:integer size:integer',
      },
    ],
    filters: [],
    lines: [
      '192.168.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://example.com/" "Mozilla/5.0 (X11; Linux) é"',
      '10.0.0.2 - - [02/Jan/2024:03:04:05 +0000] "POST /api/v1/x?q=1 HTTP/1.1" 404 -',
      '::1 - - [02/Jan/2024:03:04:05 +0530] "GET" 500 12abc',
      '127.0.0.1 - alice [29/Feb/2024:23:59:59 +0000] "DELETE /a%20b HTTP/2" 204 0 "" ""',
      'this line does not match',
    ],
  },
  {
    name: 'regex parser: every types cast, skip_empty_values off',
    tag: 'app.regex.types',
    differs: [
      {
        fluentBit: 'read time {"i":-7,"f":-1000.0,"b":false,"h":26,"s":"x","opt":""}',
        logwarden: 'read time {"i":-7,"f":-1000,"b":false,"h":26,"s":"x","opt":""}',
        doc: ['docs/parsers.md', 'A float with an integral value (`1.0`) is written as the integer `1`'],
      },
      {
        fluentBit: 'read time {"i":0,"f":0.0,"b":false,"h":0,"s":"0","opt":""}',
        logwarden: 'read time {"i":0,"f":0,"b":false,"h":0,"s":"0","opt":""}',
        doc: ['docs/parsers.md', 'A float with an integral value (`1.0`) is written as the integer `1`'],
      },
    ],
    tailParser: 'kv',
    parsers: [
      {
        name: 'kv',
        format: 'regex',
        regex: '^i=(?<i>\\S*) f=(?<f>\\S*) b=(?<b>\\S*) h=(?<h>\\S*) s=(?<s>\\S*)(?: opt=(?<opt>\\S*))?$',
        types: 'i:integer f:float b:bool h:hex s:string',
        skip_empty_values: false,
      },
    ],
    filters: [],
    lines: ['i=42 f=3.25 b=true h=ff s=007', 'i=-7 f=-1e3 b=FALSE h=0x1A s=x opt=', 'i=12abc f=.5x b=True h=10 s= opt=y', 'i=0 f=0 b=false h=0 s=0'],
  },
  {
    name: 'logfmt parser: quoted values, escapes, bare keys, types, time',
    tag: 'app.logfmt',
    differs: [
      {
        fluentBit: `1704164645000000000 ${w({ level: 'info', msg: 'hello \\"world\\"', count: 3, dur: 1.5, ok: true })}`,
        logwarden: `1704164645000000000 ${w({ level: 'info', msg: 'hello "world"', count: 3, dur: 1.5, ok: true })}`,
        doc: ['docs/parsers.md', "With `types` set, Fluent Bit's logfmt parser packs every value as it is written"],
      },
      {
        fluentBit: `read time ${w({ level: 'warn', msg: 'unicode é 😀', bare: '', empty: '', count: 12, path: '/a/b?c', 'd&e': 'f' })}`,
        logwarden: `read time ${w({ level: 'warn', msg: 'unicode é 😀', bare: true, empty: true, count: 12, path: '/a/b?c', 'd&e': 'f' })}`,
        doc: ['docs/parsers.md', "With `types` set, Fluent Bit's logfmt parser packs every value as it is written"],
      },
      {
        fluentBit: `read time ${w({ msg: 'tab\\there newline\\nthere backslash\\\\', x: '1' })}`,
        logwarden: `read time ${w({ msg: 'tab\there newline\nthere backslash\\', x: '1' })}`,
        doc: ['docs/parsers.md', "With `types` set, Fluent Bit's logfmt parser packs every value as it is written"],
      },
      {
        fluentBit: `read time ${w({ a: '2', b: 'x y', c: '' })}`,
        logwarden: `read time ${w({ a: '2', b: 'x y', c: true })}`,
        doc: ['docs/parsers.md', "With `types` set, Fluent Bit's logfmt parser packs every value as it is written"],
      },
      {
        fluentBit: `read time ${w({ novalue: '', k: 'v' })}`,
        logwarden: `read time ${w({ novalue: true, k: 'v' })}`,
        doc: ['docs/parsers.md', "With `types` set, Fluent Bit's logfmt parser packs every value as it is written"],
      },
    ],
    tailParser: 'lf',
    parsers: [{ name: 'lf', format: 'logfmt', time_key: 'ts', time_format: '%Y-%m-%dT%H:%M:%S%z', types: 'count:integer dur:float ok:bool' }],
    filters: [],
    lines: [
      'ts=2024-01-02T03:04:05Z level=info msg="hello \\"world\\"" count=3 dur=1.5 ok=true',
      'level=warn msg="unicode é 😀" bare empty= count=12abc path=/a/b?c=d&e=f',
      'msg="tab\\there newline\\nthere backslash\\\\" x=1',
      'a=1 a=2 b="x y" c',
      'key="unterminated value',
      '   leading=space   trailing=space   ',
      '=novalue k=v',
    ],
  },
  {
    name: 'logfmt parser: logfmt_no_bare_keys',
    tag: 'app.logfmt.strict',
    tailParser: 'lfs',
    parsers: [{ name: 'lfs', format: 'logfmt', logfmt_no_bare_keys: true }],
    filters: [],
    lines: ['a=1 b=2', 'a=1 bare b=2', 'a= b=""'],
  },
  {
    name: 'ltsv parser: labels, time, types, odd fields',
    wire: true,
    tag: 'app.ltsv',
    differs: [
      {
        fluentBit: `read time ${w({ status: 404, size: 0, empty: '', colon: 'a:b:c' })}`,
        logwarden: `read time ${w({ status: 404, size: '', empty: '', colon: 'a:b:c' })}`,
        doc: ['docs/parsers.md', 'A failed `types` cast keeps the value as a string'],
      },
    ],
    tailParser: 'lt',
    parsers: [{ name: 'lt', format: 'ltsv', time_key: 'time', time_format: '[%d/%b/%Y:%H:%M:%S %z]', types: 'status:integer size:integer' }],
    filters: [],
    lines: [
      'host:127.0.0.1\tident:-\tuser:frank\ttime:[10/Oct/2000:13:55:36 -0700]\treq:GET /apache_pb.gif HTTP/1.0\tstatus:200\tsize:2326\treferer:http://www.example.com/start.html\tua:Mozilla/4.08 é',
      'status:404\tsize:\tempty:\tcolon:a:b:c',
      'a:1\t\tb:2',
      'bad label!:x\tc:3',
      'no labels here',
      'x.y-z_1:ok',
    ],
  },
  {
    name: 'parser filter: reserve_data, preserve_key, several parsers, missing and non-string keys',
    wire: true,
    tag: 'app.pf',
    tailParser: 'j',
    parsers: [
      { name: 'j', format: 'json' },
      { name: 'lf', format: 'logfmt' },
      { name: 'num', format: 'regex', regex: '^(?<n>\\d+)$' },
    ],
    filters: [{ name: 'parser', match: 'app.pf', key_name: 'msg', parser: ['num', 'lf'], reserve_data: true, preserve_key: true }],
    lines: [
      w({ msg: 'level=info user=bob', other: 1, nested: { a: 1 } }),
      w({ before: 'x', msg: '12345', after: 'y' }),
      w({ msg: 42, keep: 'as is' }),
      w({ nomsg: 'here' }),
      w({ msg: '', x: 1 }),
      w({ msg: 'level=debug other=from_msg', other: 'from_record' }),
    ],
  },
  {
    name: 'parser filter: without reserve_data, with a time',
    tag: 'app.pf2',
    tailParser: 'j',
    parsers: [
      { name: 'j', format: 'json' },
      { name: 'inner', format: 'json', time_key: 't', time_format: '%s' },
    ],
    filters: [{ name: 'parser', match: 'app.pf2', key_name: 'payload', parser: 'inner' }],
    lines: [w({ payload: w({ t: '1700000000', a: 1 }), dropped: true }), w({ payload: w({ a: 2 }) }), w({ payload: 'not json', kept: true })],
  },
  {
    name: 'grep: legacy rules, record accessor, numbers and missing keys',
    wire: true,
    tag: 'app.grep',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [{ name: 'grep', match: '*', regex: ['level ^(info|warn)$', "$kubernetes['labels']['app'] ^web"], exclude: 'msg health' }],
    lines: [
      w({ level: 'info', kubernetes: { labels: { app: 'web-1' } }, msg: 'ok' }),
      w({ level: 'info', kubernetes: { labels: { app: 'db' } }, msg: 'ok' }),
      w({ level: 'warn', kubernetes: { labels: { app: 'web' } }, msg: 'GET /healthz' }),
      w({ level: 'error', kubernetes: { labels: { app: 'web' } }, msg: 'x' }),
      w({ kubernetes: { labels: { app: 'web' } }, msg: 'no level' }),
      w({ level: 'info', msg: 'no kubernetes' }),
      w({ level: 'infoo', kubernetes: { labels: { app: 'web' } } }),
    ],
  },
  {
    name: 'grep: logical_op and / or, regexes on numbers and booleans',
    tag: 'app.grep2',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [
      { name: 'grep', match: '*', logical_op: 'and', regex: ['code ^5', 'path ^/api'] },
      { name: 'grep', match: '*', logical_op: 'or', exclude: ['ok ^true$', 'user ^bot'] },
    ],
    lines: [
      w({ code: '500', path: '/api/x', user: 'u' }),
      w({ code: 503, path: '/api/y', user: 'u' }),
      w({ code: '502', path: '/web', user: 'u' }),
      w({ code: '500', path: '/api/z', user: 'bot-1' }),
      w({ code: '500', path: '/api/z', user: 'u', ok: true }),
      w({ code: '500', path: '/api/z', user: 'u', ok: 'true' }),
    ],
  },
  {
    name: 'modify: every rule in order',
    wire: true,
    tag: 'app.modify',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [
      {
        name: 'modify',
        match: '*',
        set: ['level INFO', 'fresh new'],
        add: ['cluster prod', 'level never'],
        rename: ['msg message', 'absent nothing'],
        hard_rename: 'old replaced',
        copy: ['message message_copy', 'a b'],
        hard_copy: 'c d',
        remove: 'secret',
        remove_wildcard: 'tmp_',
        remove_regex: '^x[0-9]+$',
        move_to_start: 'message',
        move_to_end: 'cluster',
      },
    ],
    lines: [
      w({ msg: 'hi', level: 'debug', secret: 's', tmp_a: 1, tmp_b: 2, x1: 1, x22: 2, xa: 3, old: 'o', replaced: 'r', a: 'A', b: 'B', c: 'C', d: 'D', num: 5 }),
      w({ other: 'only' }),
      w({ message: 'exists', msg: 'not renamed', nested: { msg: 'deep' } }),
    ],
  },
  {
    name: 'modify: conditions',
    tag: 'app.modcond',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [
      { name: 'modify', match: '*', condition: ['key_exists user', 'key_value_matches code ^5'], add: 'alert yes' },
      { name: 'modify', match: '*', condition: ["key_value_equals $k['env'] prod", 'no_key_matches ^debug'], set: 'prod true' },
      { name: 'modify', match: '*', condition: ['matching_keys_have_matching_values ^m_ ^ok$', 'key_does_not_exist skip'], set: 'all_ok 1' },
      { name: 'modify', match: '*', condition: ['key_value_does_not_equal code 200', 'a_key_matches ^co'], set: 'not200 1' },
    ],
    lines: [
      w({ user: 'u', code: '503', k: { env: 'prod' }, m_a: 'ok', m_b: 'ok' }),
      w({ user: 'u', code: 503, k: { env: 'dev' }, m_a: 'ok', m_b: 'bad' }),
      w({ code: '200', k: { env: 'prod' }, debug: 1, m_a: 'ok' }),
      w({ user: 'u', code: '500', skip: 1, m_a: 1 }),
      w({ k: 'not a map' }),
    ],
  },
  {
    name: 'record_modifier: record, remove_key with wildcards and case',
    tag: 'app.rm',
    differs: [
      {
        fluentBit: `read time ${w({ a: 1, keep: 'z', hostname: 'node-1' })}`,
        logwarden: `read time ${w({ a: 1, keep: 'z', hostname: 'node-1', note: 'with spaces here' })}`,
        doc: ['docs/filters.md', 'invalid record parameters'],
      },
      {
        fluentBit: `read time ${w({ b: 2, hostname: 'node-1' })}`,
        logwarden: `read time ${w({ b: 2, hostname: 'node-1', note: 'with spaces here' })}`,
        doc: ['docs/filters.md', 'invalid record parameters'],
      },
    ],
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [{ name: 'record_modifier', match: '*', record: ['hostname node-1', 'note with spaces here'], remove_key: ['Secret', 'tmp*'] }],
    lines: [w({ a: 1, secret: 'x', SECRET: 'y', tmp1: 1, tmpx: 2, keep: 'z' }), w({ hostname: 'already', b: 2 })],
  },
  {
    name: 'record_modifier: allowlist_key',
    wire: true,
    tag: 'app.rm2',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [{ name: 'record_modifier', match: '*', allowlist_key: ['keep', 'K8s*'] }],
    lines: [w({ keep: 1, drop: 2, k8s_pod: 'p', K8S_NS: 'n', Keep: 3 }), w({ drop: 'all' })],
  },
  {
    name: 'nest: nest with wildcards and add_prefix, lift with remove_prefix',
    wire: true,
    tag: 'app.nest',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [
      { name: 'nest', match: '*', operation: 'nest', wildcard: ['k8s_*', 'pod'], nest_under: 'kubernetes', add_prefix: 'x_' },
      { name: 'nest', match: '*', operation: 'lift', nested_under: 'meta', remove_prefix: 'm_' },
    ],
    lines: [w({ a: 1, k8s_ns: 'n', pod: 'p', k8s_node: 'x', b: 2 }), w({ meta: { m_a: 1, b: { deep: true }, m_c: [1] }, after: 1 }), w({ meta: 'not a map', plain: 1 }), w({ none: 'matches' })],
  },
  {
    name: 'rewrite_tag: captures, $TAG parts, record values, keep',
    wire: true,
    tag: 'app.rt',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [
      {
        name: 'rewrite_tag',
        match: 'app.rt',
        rule: ["$kubernetes['ns'] ^(kube-[a-z]+)$ sys.$1.$TAG[1] false", '$level ^(warn|error)$ alert.$level.$TAG true'],
      },
      { name: 'modify', match: 'alert.*', add: 'routed yes' },
    ],
    lines: [
      w({ kubernetes: { ns: 'kube-system' }, level: 'info', i: 1 }),
      w({ kubernetes: { ns: 'default' }, level: 'error', i: 2 }),
      w({ kubernetes: { ns: 'default' }, level: 'info', i: 3 }),
      w({ kubernetes: { ns: 'kube-public' }, level: 'warn', i: 4 }),
      w({ level: 'warn', i: 5 }),
      w({ level: 42, i: 6 }),
    ],
  },
  {
    name: 'throttle: rate 3 over a window of 5 one-hour intervals passes the first 15 records',
    wire: true,
    tag: 'app.throttle',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [{ name: 'throttle', match: '*', rate: 3, window: 5, interval: '1h' }],
    lines: Array.from({ length: 40 }, (_, i) => w({ i })),
  },
  {
    name: 'throttle: a fractional rate',
    tag: 'app.throttle2',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [{ name: 'throttle', match: '*', rate: 1.5, window: 2, interval: '30m' }],
    lines: Array.from({ length: 10 }, (_, i) => w({ i })),
  },
  {
    name: 'time formats: no year, epoch, %L after a comma, %p, time_offset, %Z, nanoseconds, %j, compact, composites',
    wire: true,
    tag: 'app.times',
    parsers: [
      ['A', '%b %d %H:%M:%S'],
      ['B', '%s'],
      ['C', '%Y-%m-%d %H:%M:%S,%L'],
      ['D', '%d/%m/%Y %I:%M:%S %p'],
      ['E', '%Y-%m-%dT%H:%M:%S', '-0600'],
      ['F', '%a, %d %b %Y %H:%M:%S %Z'],
      ['G', '%Y-%m-%dT%H:%M:%S.%L%z'],
      ['H', '%j %Y %T'],
      ['I', '%Y%m%d%H%M%S'],
      ['M', '%FT%T%z'],
      ['N', '%d %B %Y %H:%M'],
    ].map(([p, fmt, offset]) => ({
      name: `t${p}`,
      format: 'regex',
      regex: `^${p} (?<time>.+?)(?: \\| (?<rest>.*))?$`,
      time_key: 'time',
      time_format: fmt,
      ...(offset ? { time_offset: offset } : {}),
    })),
    filters: [{ name: 'parser', match: '*', key_name: 'log', parser: ['tA', 'tB', 'tC', 'tD', 'tE', 'tF', 'tG', 'tH', 'tI', 'tM', 'tN'] }],
    lines: [
      'A Mar  5 01:02:03',
      'A Dec 31 23:59:59 | rest',
      'B 1700000000',
      'C 2024-05-06 07:08:09,123',
      'D 06/05/2024 07:08:09 PM',
      'D 06/05/2024 12:00:00 AM',
      'E 2024-05-06T07:08:09',
      'F Mon, 06 May 2024 07:08:09 UTC',
      'G 2024-05-06T07:08:09.000000001+05:45',
      'G 2024-05-06T07:08:09.1-01',
      'H 127 2024 07:08:09',
      'I 20240506070809',
      'M 2024-05-06T07:08:09+0000',
      'N 6 September 2024 10:11',
      'Z no parser',
    ],
  },
  {
    name: 'logfmt parser without types: escapes, bare keys, repeated keys',
    wire: true,
    tag: 'app.logfmt.plain',
    tailParser: 'lf',
    parsers: [{ name: 'lf', format: 'logfmt' }],
    filters: [],
    lines: [
      'level=info msg="hello \\"world\\"" path=/x',
      'msg="tab\\there newline\\nthere backslash\\\\ uni\\u00e9" x=1',
      'bare empty= quoted="" k=v',
      'a=1 b=2 a=3',
      'k="a=b c=d" z=9',
      'π=3.14 ключ=значение',
    ],
  },
  {
    name: 'json parser: duplicate keys and integer-like keys',
    tag: 'app.json.keys',
    differs: [
      { fluentBit: 'read time {"x":0,"dup":2}', logwarden: 'read time {"dup":2,"x":0}', doc: ['docs/parsers.md', 'Records are JavaScript objects'] },
      {
        fluentBit: 'read time {"b":1,"10":"ten","a":2,"2":"two"}',
        logwarden: 'read time {"2":"two","10":"ten","b":1,"a":2}',
        doc: ['docs/parsers.md', 'keys that are array indexes'],
      },
    ],
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [],
    lines: ['{"dup":1,"x":0,"dup":2}', '{"b":1,"10":"ten","a":2,"2":"two"}'],
  },
  {
    name: 'parser filter: record accessor key_name with reserve_data and preserve_key',
    tag: 'app.pfra',
    differs: [
      {
        fluentBit: `read time ${w({ x: '1', y: '2', a: 1, k: { raw: 'x=1 y=2', other: 3 }, z: 4 })}`,
        logwarden: `read time ${w({ x: '1', y: '2', a: 1, k: { other: 3 }, z: 4 })}`,
        doc: ['docs/filters.md', 'Fluent Bit 5.1.1\nignores `preserve_key` there'],
      },
    ],
    tailParser: 'j',
    parsers: [
      { name: 'j', format: 'json' },
      { name: 'lf', format: 'logfmt' },
    ],
    filters: [{ name: 'parser', match: 'app.pfra', key_name: "$k['raw']", parser: 'lf', reserve_data: true }],
    lines: [w({ a: 1, k: { raw: 'x=1 y=2', other: 3 }, z: 4 }), w({ a: 1, k: { other: 3 } })],
  },
  {
    name: 'grep: regexes with spaces, classes, case options, nested arrays',
    tag: 'app.grep3',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [
      { name: 'grep', match: '*', regex: 'msg ^GET /(api|health) HTTP' },
      { name: 'grep', match: '*', exclude: ['$list[1] ^drop$', 'ua /bot/i'] },
    ],
    lines: [
      w({ msg: 'GET /api HTTP/1.1', list: ['a', 'keep'], ua: 'curl' }),
      w({ msg: 'GET /health HTTP/1.1', list: ['a', 'drop'], ua: 'curl' }),
      w({ msg: 'GET /api HTTP/1.1', list: ['a'], ua: 'GoogleBot' }),
      w({ msg: 'GET /other HTTP/1.1' }),
      w({ msg: 'GET /api HTTP/1.1', ua: 'Mozilla' }),
    ],
  },
  {
    name: 'modify: quoted values, rename onto an existing key, keys with dots, wildcard removal',
    tag: 'app.modify2',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [
      {
        name: 'modify',
        match: '*',
        set: 'msg "a value with spaces"',
        rename: ['a b', 'dotted.key renamed.key'],
        hard_copy: 'c e',
        copy: 'nested nested_copy',
        remove_wildcard: 'Mem',
      },
    ],
    lines: [w({ a: 1, b: 2, c: 'x', e: 'y', 'dotted.key': 'v', nested: { deep: [1, 2] }, Mem_a: 1, Memory: 2, mem: 3 })],
  },
  {
    name: 'nest: nest_under already present, lift onto existing keys, exact wildcard',
    tag: 'app.nest2',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [
      { name: 'nest', match: '*', operation: 'nest', wildcard: 'pod', nest_under: 'k' },
      { name: 'nest', match: '*', operation: 'lift', nested_under: 'inner', add_prefix: 'in.' },
      { name: 'nest', match: '*', operation: 'lift', nested_under: 'over' },
    ],
    lines: [w({ k: 'old', pod: 'p', podx: 'not nested' }), w({ inner: { a: 1 }, 'in.a': 'top' }), w({ a: 'top', over: { a: 'inner', b: 2 }, z: 1 }), w({ over: {} })],
  },
  {
    name: 'rewrite_tag: chained rules, own records not matched again, regex with spaces',
    tag: 'app.rt2',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [
      { name: 'rewrite_tag', match: 'app.*', rule: ['$kind ^audit$ app.audit.$TAG[1] false', '$msg "^hello world$" greet.$TAG[0] true'] },
      { name: 'rewrite_tag', match: 'app.audit.*', rule: '$user ^(admin)$ admin.$1 true' },
    ],
    lines: [w({ kind: 'audit', user: 'admin', i: 1 }), w({ kind: 'audit', user: 'bob', i: 2 }), w({ msg: 'hello world', i: 3 }), w({ msg: 'hello  world', i: 4 })],
  },
  {
    name: 'record_modifier: quoted value and uuid_key',
    normalize: [[/"id":"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"/g, '"id":"(a UUID v4)"']],
    tag: 'app.rm3',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [{ name: 'record_modifier', match: '*', record: 'note "with spaces"', uuid_key: 'id' }],
    lines: [w({ a: 1 }), w({ id: 'old', b: 2 })],
  },
  {
    name: 'time that does not match time_format: regex',
    tag: 'app.badtime.regex',
    tailParser: 'r',
    parsers: [{ name: 'r', format: 'regex', regex: '^(?<time>\\S+) (?<m>.*)$', time_key: 'time', time_format: '%Y-%m-%d' }],
    filters: [],
    lines: ['2024-01-02 good', 'yesterday bad'],
    differs: [
      {
        fluentBit: `read time ${w({ m: 'bad' })}`,
        logwarden: `read time ${w({ time: 'yesterday', m: 'bad' })}`,
        doc: ['docs/parsers.md', 'Fluent Bit drops the field for regex and fails the whole line for\n  logfmt and ltsv'],
      },
    ],
  },
  {
    name: 'time that does not match time_format: logfmt',
    tag: 'app.badtime.logfmt',
    tailParser: 'lf',
    parsers: [{ name: 'lf', format: 'logfmt', time_key: 'ts', time_format: '%Y-%m-%d' }],
    filters: [],
    lines: ['ts=2024-01-02 m=good', 'ts=yesterday m=bad', 'ts=2024-01-01 m=twice ts=2024-01-03'],
    differs: [
      {
        fluentBit: `read time ${w({ log: 'ts=yesterday m=bad' })}`,
        logwarden: `read time ${w({ ts: 'yesterday', m: 'bad' })}`,
        doc: ['docs/parsers.md', 'Fluent Bit drops the field for regex and fails the whole line for\n  logfmt and ltsv'],
      },
    ],
  },
  {
    name: 'time that does not match time_format: ltsv',
    tag: 'app.badtime.ltsv',
    tailParser: 'lt',
    parsers: [{ name: 'lt', format: 'ltsv', time_key: 'ts', time_format: '%Y-%m-%d' }],
    filters: [],
    lines: ['ts:2024-01-02\tm:good', 'ts:yesterday\tm:bad'],
    differs: [
      {
        fluentBit: `read time ${w({ log: 'ts:yesterday\tm:bad' })}`,
        logwarden: `read time ${w({ ts: 'yesterday', m: 'bad' })}`,
        doc: ['docs/parsers.md', 'Fluent Bit drops the field for regex and fails the whole line for\n  logfmt and ltsv'],
      },
    ],
  },
  {
    name: 'regex parser: Unicode text, classes, case-insensitive options',
    tag: 'app.regex.unicode',
    parsers: [
      { name: 'word', format: 'regex', regex: '^W (?<first>.)(?<word>\\w*) (?<rest>.*)$' },
      { name: 'ci', format: 'regex', regex: '/^ci (?<v>HELLO) (?<n>\\d+)$/i' },
      { name: 'cls', format: 'regex', regex: '^C (?<alpha>[[:alpha:]]+) (?<hex>\\h+) (?<sp>\\s+)(?<end>\\S+)$' },
    ],
    filters: [{ name: 'parser', match: '*', key_name: 'log', parser: ['word', 'ci', 'cls'] }],
    lines: ['W ébc déf ghi', 'W abc_9 x', 'W 😀x y', 'ci hello 42', 'ci HeLLo 7', 'C abc 0aF  end', 'C ab9 ff x'],
  },
  {
    name: 'json parser: a numeric time with %s, a time that is not a string',
    tag: 'app.json.numtime',
    tailParser: 'js',
    parsers: [{ name: 'js', format: 'json', time_key: 'time', time_format: '%s' }],
    filters: [],
    lines: [w({ time: 1700000000, a: 1 }), w({ time: '1700000001', a: 2 }), w({ time: 1700000002.5, a: 3 }), w({ time: true, a: 4 })],
    differs: [
      { fluentBit: `read time ${w({ time: 1700000000, a: 1 })}`, logwarden: `1700000000000000000 ${w({ a: 1 })}`, doc: ['docs/parsers.md', 'A numeric `time_key` is read'] },
      { fluentBit: `read time ${w({ time: 1700000002.5, a: 3 })}`, logwarden: `1700000002500000000 ${w({ a: 3 })}`, doc: ['docs/parsers.md', 'A numeric `time_key` is read'] },
    ],
  },
  {
    name: 'parser filter: record accessor key_name with preserve_key, without reserve_data',
    tag: 'app.pfra2',
    tailParser: 'j',
    parsers: [
      { name: 'j', format: 'json' },
      { name: 'lf', format: 'logfmt' },
    ],
    filters: [{ name: 'parser', match: 'app.pfra2', key_name: "$k['raw']", parser: 'lf', preserve_key: true }],
    lines: [w({ a: 1, k: { raw: 'x=1 y=2', other: 3 } })],
    differs: [
      {
        fluentBit: `read time ${w({ x: '1', y: '2' })}`,
        logwarden: `read time ${w({ x: '1', y: '2', k: { raw: 'x=1 y=2', other: 3 } })}`,
        doc: ['docs/filters.md', 'dropping it without'],
      },
    ],
  },
  {
    name: 'modify: remove_wildcard with a star',
    tag: 'app.modify3',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [{ name: 'modify', match: '*', remove_wildcard: 'Mem*' }],
    lines: [w({ Mem_a: 1, 'Mem*x': 2, Memory: 3, keep: 4 })],
    differs: [
      {
        fluentBit: `read time ${w({ Mem_a: 1, Memory: 3, keep: 4 })}`,
        logwarden: `read time ${w({ keep: 4 })}`,
        doc: ['docs/filters.md', '`remove_wildcard Mem*` strips the `*` (Fluent Bit compares it literally)'],
      },
    ],
  },
  {
    name: "rewrite_tag: a record re-tagged into the filter's own match is not rewritten again",
    tag: 'app.loop',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [
      { name: 'rewrite_tag', match: 'app.*', rule: '$n ^\\d+$ app.again.$TAG[1] false' },
      { name: 'modify', match: 'app.again.*', add: 'seen yes' },
    ],
    lines: [w({ n: '1' }), w({ n: 'x' }), w({ n: '22' })],
  },
  {
    name: 'common options: match_regex, and filters in order over several tags',
    tag: 'svc.a.log',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [
      { name: 'rewrite_tag', match: 'svc.*', rule: '$to ^(\\w+)$ svc.$1.log false' },
      { name: 'modify', match_regex: '^svc\\.(b|c)\\.log$', add: 'bc yes' },
      { name: 'grep', match_regex: '^svc\\.c\\.', exclude: 'drop ^y' },
      { name: 'nest', match: 'svc.b.*', operation: 'nest', wildcard: 'x*', nest_under: 'xs' },
    ],
    lines: [w({ to: 'b', x1: 1, x2: 2 }), w({ to: 'c', drop: 'yes' }), w({ to: 'c', drop: 'no' }), w({ to: '', x1: 1 }), w({ to: 'd d' })],
  },
  {
    name: 'rewrite_tag: NEW_TAG from numbers, booleans, maps, missing keys and tag parts',
    tag: 'app.tpl.x',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [{ name: 'rewrite_tag', match: 'app.tpl.x', rule: '$kind ^(\\w)(\\w*)$ t.$2.$1.$v.$TAG[2].$TAG[0] false' }],
    lines: [w({ kind: 'int', v: 42 }), w({ kind: 'float', v: 1.5 }), w({ kind: 'bool', v: true }), w({ kind: 'str', v: 'text' }), w({ kind: 'missing' }), w({ kind: 'neg', v: -7 })],
  },
];

for (const c of cases) {
  test(c.name, { timeout: 60_000 }, () => differential(c));
}

/**
 * Sections Fluent Bit 5.1.1 refuses to start with and logwarden runs (documented): Fluent Bit's
 * log must say why, and logwarden's output is checked as written here.
 */
const refused: Array<Case & { fluentBitSays: RegExp; doc: [string, string]; logwarden: string[] }> = [
  {
    name: 'modify: a VALUE with unquoted spaces',
    tag: 'app.refused.modify',
    tailParser: 'j',
    parsers: [{ name: 'j', format: 'json' }],
    filters: [{ name: 'modify', match: '*', set: 'msg a value with spaces' }],
    lines: [w({ a: 1 })],
    fluentBitSays: /Invalid config for set/,
    doc: ['docs/filters.md', 'a VALUE with unquoted spaces is taken whole (Fluent Bit rejects it)'],
    logwarden: [`read time ${w({ a: 1, msg: 'a value with spaces' })}`],
  },
  {
    name: 'parser filter: unescape_key',
    tag: 'app.refused.unescape',
    tailParser: 'j',
    parsers: [
      { name: 'j', format: 'json' },
      { name: 'inner', format: 'json' },
    ],
    filters: [{ name: 'parser', match: 'app.refused.unescape', key_name: 'raw', parser: 'inner', unescape_key: true }],
    lines: [w({ raw: '{\\"a\\":2}' })],
    fluentBitSays: /cannot parse list of values 'true'/,
    doc: ['docs/filters.md', 'Fluent Bit 5.1.1 refuses a\nconfiguration that sets `unescape_key`'],
    logwarden: [`read time ${w({ a: 2 })}`],
  },
];

for (const c of refused) {
  test(`Fluent Bit refuses, logwarden runs: ${c.name}`, { timeout: 60_000 }, async () => {
    const dir = join(root, `refused-${c.name.replace(/[^a-z0-9]+/gi, '-')}`);
    await assert.rejects(runFluentBit(join(dir, 'fb'), c), (e: Error) => {
      assert.match(e.message, /fluent-bit exited [1-9]/);
      assert.match(e.message, c.fluentBitSays);
      return true;
    });
    const lw = await runLogwarden(join(dir, 'lw'), c);
    assert.deepEqual(byTag(lw).get(c.tag), c.logwarden);
    assert.ok(readFileSync(join(repoRoot, c.doc[0]), 'utf8').includes(c.doc[1]), `${c.doc[0]} does not say "${c.doc[1]}"`);
  });
}

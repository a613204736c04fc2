/**
 * Parsers as users write them: `parsers:` in the pipeline file, and parsers_file in Fluent Bit's
 * classic format or YAML. Load-time errors carry file:line:col.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigErrors } from '../../../src/config/errors.js';
import { tempDir, writePipeline } from '../../support/filter-pipeline.js';
import { planFile } from '../../support/parsers-pipeline.js';

function errorsOf(file: string): string {
  try {
    planFile(file);
  } catch (e) {
    if (e instanceof ConfigErrors) return e.message;
    throw e;
  }
  assert.fail('expected a load-time error');
}

const APACHE_REGEX =
  '^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] "(?<method>\\S+)(?: +(?<path>[^\\"]*?)(?: +\\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\\"]*)" "(?<agent>[^\\"]*)")?$';

test('inline parsers: regex (the documented Apache example with types), json, logfmt, ltsv', () => {
  const dir = tempDir();
  const file = writePipeline(dir, {
    parsers: [
      { name: 'my_apache', format: 'regex', regex: APACHE_REGEX, time_key: 'time', time_format: '%d/%b/%Y:%H:%M:%S %z', types: 'code:integer size:integer' },
      { name: 'my_json', format: 'json', time_key: 'time', time_format: '%Y-%m-%dT%H:%M:%S %z' },
      { name: 'lf', format: 'logfmt' },
      { name: 'access_log_ltsv', format: 'ltsv', time_key: 'time', time_format: '[%d/%b/%Y:%H:%M:%S %z]', types: 'status:integer size:integer' },
    ],
  });
  const { parsers } = planFile(file);
  const a = parsers.get('my_apache')!.parse('192.168.2.20 - - [29/Jul/2015:10:27:10 -0300] "GET /cgi-bin/try/ HTTP/1.0" 200 3395')!;
  assert.deepEqual(a.record, { host: '192.168.2.20', user: '-', method: 'GET', path: '/cgi-bin/try/', code: 200, size: 3395 });
  assert.equal(a.time!.toISO(), '2015-07-29T13:27:10.000000000Z');

  // The JSON parser documentation: the time key is read and removed. (The page prints
  // 1154103724, three hours off 13:22:04Z: its author's local zone leaked in.)
  const j = parsers.get('my_json')!.parse('{"key1": 12345, "key2": "abc", "time": "2006-07-28T13:22:04Z"}')!;
  assert.deepEqual(j.record, { key1: 12345, key2: 'abc' });
  assert.equal(j.time!.sec, Date.parse('2006-07-28T13:22:04Z') / 1000);

  assert.deepEqual(parsers.get('lf')!.parse('key1=val1 key2=val2 key3')!.record, { key1: 'val1', key2: 'val2', key3: true });

  // The LTSV parser documentation's first line and expected record.
  const l = parsers
    .get('access_log_ltsv')!
    .parse(
      'host:127.0.0.1\tident:-\tuser:-\ttime:[10/Jul/2018:13:27:05 +0200]\treq:GET / HTTP/1.1\tstatus:200\tsize:16218\treferer:http://127.0.0.1/\tua:Mozilla/5.0 (X11; Fedora; Linux x86_64; rv:59.0) Gecko/20100101 Firefox/59.0',
    )!;
  assert.equal(l.time!.sec, 1531222025);
  assert.deepEqual(l.record, {
    host: '127.0.0.1',
    ident: '-',
    user: '-',
    req: 'GET / HTTP/1.1',
    status: 200,
    size: 16218,
    referer: 'http://127.0.0.1/',
    ua: 'Mozilla/5.0 (X11; Fedora; Linux x86_64; rv:59.0) Gecko/20100101 Firefox/59.0',
  });
});

test('logfmt and LTSV: a key written twice keeps its last value where it last occurs (as Fluent Bit writes it out); the last time_key is the time', () => {
  const file = writePipeline(tempDir(), {
    parsers: [
      { name: 'lf', format: 'logfmt' },
      { name: 'lt', format: 'ltsv' },
    ],
  });
  const { parsers } = planFile(file);
  assert.deepEqual(Object.entries(parsers.get('lf')!.parse('a=1 b=2 a=3')!.record), [
    ['b', '2'],
    ['a', '3'],
  ]);
  const timed = planFile(writePipeline(tempDir(), { parsers: [{ name: 'lft', format: 'logfmt', time_key: 'ts', time_format: '%Y-%m-%d' }] })).parsers.get('lft')!;
  const twice = timed.parse('ts=2024-01-01 a=1 ts=2024-01-02')!;
  assert.equal(twice.time!.toISO(), '2024-01-02T00:00:00.000000000Z', 'the last time_key is the time');
  assert.deepEqual(twice.record, { a: '1' });
  assert.deepEqual(Object.entries(parsers.get('lt')!.parse('a:1\tb:2\ta:3\tc:4')!.record), [
    ['b', '2'],
    ['a', '3'],
    ['c', '4'],
  ]);
});

test('regex parser options: skip_empty_values, time_keep, unmatched lines, cast and time errors reported', () => {
  const dir = tempDir();
  const file = writePipeline(dir, {
    parsers: [
      { name: 'keep_empty', format: 'regex', regex: '^(?<a>\\w*) (?<b>\\w*)(?: (?<c>\\w+))?$', skip_empty_values: false },
      { name: 'skip_empty', format: 'regex', regex: '^(?<a>\\w*) (?<b>\\w*)(?: (?<c>\\w+))?$' },
      { name: 'timed', format: 'regex', regex: '^(?<time>\\S+) (?<n>\\S+)$', time_key: 'time', time_format: '%Y-%m-%d', time_keep: true, types: 'n:integer' },
    ],
  });
  const { parsers } = planFile(file);
  assert.deepEqual(parsers.get('keep_empty')!.parse('x ')!.record, { a: 'x', b: '', c: '' });
  assert.deepEqual(parsers.get('skip_empty')!.parse('x ')!.record, { a: 'x' });
  assert.equal(parsers.get('skip_empty')!.parse('no-match-here'), null);
  const t = parsers.get('timed')!.parse('2024-05-06 42')!;
  assert.deepEqual(t.record, { time: '2024-05-06', n: 42 });
  assert.equal(t.time!.toISO(), '2024-05-06T00:00:00.000000000Z');
  const bad = parsers.get('timed')!.parse('yesterday lots')!;
  assert.deepEqual(bad.record, { time: 'yesterday', n: 'lots' }, 'unreadable values stay as they were');
  assert.equal(bad.time, undefined);
  assert.match(bad.timeError!, /does not match time_format '%Y-%m-%d'/);
  assert.deepEqual(bad.castErrors, ["n: 'lots' is not an integer"]);
});

test('json parser: non-object JSON does not match; __proto__ stays data', () => {
  const dir = tempDir();
  const { parsers } = planFile(writePipeline(dir, { parsers: [{ name: 'j', format: 'json' }] }));
  const j = parsers.get('j')!;
  assert.equal(j.parse('[1,2]'), null);
  assert.equal(j.parse('"str"'), null);
  assert.equal(j.parse('{"a":'), null);
  const r = j.parse('{"__proto__": {"polluted": true}, "a": 1}')!.record;
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal((r as { polluted?: boolean }).polluted, undefined);
  assert.deepEqual(Object.keys(r), ['__proto__', 'a']);
});

test('built-in parsers (Fluent Bit conf/parsers.conf) are there, and a configured parser replaces one', () => {
  const dir = tempDir();
  const { parsers } = planFile(writePipeline(dir, { parsers: [{ name: 'json', format: 'json' }] }));
  for (const name of ['apache', 'apache2', 'apache_error', 'nginx', 'k8s-nginx-ingress', 'docker', 'syslog-rfc5424', 'syslog-rfc3164', 'cri']) {
    assert.ok(parsers.has(name), name);
  }
  const nginx = parsers.get('nginx')!.parse('172.17.0.1 - - [28/Feb/2013:12:00:00 +0900] "GET / HTTP/1.1" 200 777 "-" "Opera/12.0"')!;
  assert.deepEqual(nginx.record, { remote: '172.17.0.1', host: '-', user: '-', method: 'GET', path: '/', code: '200', size: '777', referer: '-', agent: 'Opera/12.0' });
  assert.equal(nginx.time!.toISO(), '2013-02-28T03:00:00.000000000Z');
  const syslog = parsers.get('syslog-rfc5424')!.parse('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 - An application event')!;
  assert.equal(syslog.record.message, 'An application event');
  assert.equal(syslog.time!.toISO(), '2003-10-11T22:14:15.003000000Z');
  // The configured json parser has no time_format: the time key stays.
  assert.deepEqual(parsers.get('json')!.parse('{"time":"28/Feb/2013:12:00:00 +0900"}')!.record, { time: '28/Feb/2013:12:00:00 +0900' });
});

test('parsers_file: classic [PARSER] files (relative to the config file, @SET, comments, keys in any case) and YAML files', () => {
  const dir = tempDir();
  writeFileSync(
    join(dir, 'parsers.conf'),
    [
      '# Fluent Bit parsers',
      '@SET FMT=%d/%b/%Y:%H:%M:%S %z',
      '[PARSER]',
      '    Name        apache_custom',
      '    Format      regex',
      `    Regex       ${APACHE_REGEX}`,
      '    Time_Key    time',
      '    TIME_FORMAT ${FMT}',
      '    Time_Format %Y (the first value wins, as in Fluent Bit)',
      '',
      '[PARSER]',
      '    name logfmt_strict',
      '    format logfmt',
      '    logfmt_no_bare_keys true',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'more.yaml'), 'parsers:\n  - name: kv\n    format: ltsv\n');
  const file = writePipeline(dir, { service: { parsers_file: ['parsers.conf', 'more.yaml'] } });
  const { parsers } = planFile(file);
  const a = parsers.get('apache_custom')!.parse('1.2.3.4 - u [01/Jan/2020:00:00:00 +0000] "GET /x HTTP/1.1" 404 0')!;
  assert.equal(a.record.code, '404');
  assert.equal(a.time!.sec, Date.parse('2020-01-01T00:00:00Z') / 1000);
  assert.equal(parsers.get('logfmt_strict')!.parse('a=1 b'), null);
  assert.deepEqual(parsers.get('kv')!.parse('a:1')!.record, { a: '1' });
});

/** Writes the pipeline and asserts the error text names file:line:col of `needle` and matches `msg`. */
function expectError(config: string, needle: string, msg: RegExp, files: Record<string, string> = {}): void {
  const dir = tempDir();
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const file = writePipeline(dir, config);
  const text = files[needle.split('|')[0]!] ?? config;
  const target = needle.includes('|') ? needle.split('|')[1]! : needle;
  const lines = text.split('\n');
  const line = lines.findIndex((l) => l.includes(target));
  assert.ok(line >= 0, `'${target}' is in the file`);
  const col = lines[line]!.indexOf(target) + 1;
  const where = `${needle.includes('|') ? join(dir, needle.split('|')[0]!) : file}:${line + 1}:${col}`;
  const errors = errorsOf(file);
  assert.ok(errors.includes(where), `error at ${where}; got:\n${errors}`);
  assert.match(errors, msg);
}

test('load-time errors point at the offending value', () => {
  expectError('parsers:\n  - name: p\n    format: regex\n    regex: "(?<a>[a-z]+"\n', '"(?<a>', /regex: parser 'p': invalid regular expression: .*missing \)/);
  expectError('parsers:\n  - name: p\n    format: regex\n    regex: "^(?<a>\\\\w+)(?!x)"\n', '"^(?<a>', /negative lookahead \(\?!\.\.\.\) at offset \d+ needs a backtracking engine/);
  expectError('parsers:\n  - name: p\n    format: regex\n    regex: "^[a-z]+$"\n', '"^[a-z]', /has no named group/);
  expectError('parsers:\n  - name: p\n    format: json\n    time_format: "%Y-%Q"\n', '"%Y-%Q"', /time_format: parser 'p': unknown time_format directive %Q/);
  expectError('parsers:\n  - name: p\n    format: csv\n', 'csv', /format: found "csv", expected one of json, regex, logfmt, ltsv/);
  expectError('parsers:\n  - name: p\n    format: logfmt\n    types: "code:int"\n', '"code:int"', /types: parser 'p': unknown type 'int' for 'code'/);
  expectError('parsers:\n  - name: p\n    format: json\n    types: "code:integer"\n', '"code:integer"', /types applies to format regex, logfmt, ltsv, not json/);
  expectError('parsers:\n  - name: p\n    format: json\n    time_key: ts\n', 'ts', /time_key needs time_format/);
  expectError('parsers:\n  - name: p\n    format: json\n    time_format: "%s"\n    time_offset: "+2"\n', '"+2"', /is not an offset/);
  expectError('parsers:\n  - name: p\n    format: regex\n', 'name: p', /format regex needs the regex option/);
  expectError('parsers:\n  - name: p\n    format: json\n    decode_field_as: json log\n', 'decode_field_as', /unknown option for parser/);
  expectError('parsers:\n  - name: p\n    format: json\n    time_keep: maybe\n', 'maybe', /time_keep: found "maybe", expected a boolean/);
});

test('a parser name defined twice is an error at the second definition', () => {
  const dir = tempDir();
  const file = writePipeline(dir, 'parsers:\n  - name: twice\n    format: json\n  - name: twice\n    format: logfmt\n');
  const errors = errorsOf(file);
  assert.ok(errors.includes(`${file}:4:11: name: parser 'twice' is already defined at ${file}:2:11`), errors);
});

test('errors in a classic parsers file point into that file', () => {
  const conf = '[PARSER]\n    Name   bad\n    Format regex\n    Regex  ^(?<a>x)\\1$\n';
  expectError('service:\n  parsers_file: parsers.conf\n', 'parsers.conf|^(?<a>', /backreference \\1/, { 'parsers.conf': conf });
  expectError('service:\n  parsers_file: p.conf\n', 'p.conf|[MULTILINE_PARSER]', /MULTILINE_PARSER\] sections are not supported/, {
    'p.conf': '[MULTILINE_PARSER]\n    name ml\n',
  });
  expectError('service:\n  parsers_file: p.conf\n', 'p.conf|%q', /time_format: parser 'x': unknown time_format directive %q/, {
    'p.conf': '[PARSER]\n  Name x\n  Format json\n  Time_Format %q\n',
  });
  expectError('service:\n  parsers_file: missing.conf\n', 'missing.conf', /parsers file not found: .*missing\.conf/);
});

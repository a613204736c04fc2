import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scanLogfmt, scanLtsv, unescapeString } from '../../../src/parsers/formats.js';
import { castValue, parseTypes } from '../../../src/parsers/types.js';

test('logfmt: the documented example, bare keys are true', () => {
  assert.deepEqual(scanLogfmt('key1=val1 key2=val2 key3', false), [
    { key: 'key1', value: 'val1' },
    { key: 'key2', value: 'val2' },
    { key: 'key3', value: true },
  ]);
  assert.equal(scanLogfmt('key1=val1 key2=val2 key3', true), null, 'logfmt_no_bare_keys rejects the line');
});

test('logfmt: quoted values with escapes, empty values, garbage between pairs, first line only', () => {
  assert.deepEqual(scanLogfmt('at=info msg="hello \\"world\\"\\n" path=/x empty= quoted=""', false), [
    { key: 'at', value: 'info' },
    { key: 'msg', value: 'hello "world"\n' },
    { key: 'path', value: '/x' },
    { key: 'empty', value: true },
    { key: 'quoted', value: '' },
  ]);
  // '"' is not part of a key: `"junk"` reads as the bare key junk.
  assert.deepEqual(scanLogfmt('  "" a=1 "junk" b=2\nc=3', false), [
    { key: 'a', value: '1' },
    { key: 'junk', value: true },
    { key: 'b', value: '2' },
  ]);
  assert.deepEqual(
    scanLogfmt('a=1 \nb=2', false),
    [
      { key: 'a', value: '1' },
      { key: 'b', value: '2' },
    ],
    'only a line break right after a pair ends the record',
  );
  assert.deepEqual(scanLogfmt('=== "" ', false), []);
  assert.deepEqual(scanLogfmt('unicode=héllo msg="tab\\tand \\u00e9"', false), [
    { key: 'unicode', value: 'héllo' },
    { key: 'msg', value: 'tab\tand é' },
  ]);
});

test('ltsv: the documented Apache access log line', () => {
  const line =
    'host:127.0.0.1\tident:-\tuser:-\ttime:[10/Jul/2018:13:27:05 +0200]\treq:GET / HTTP/1.1\tstatus:200\tsize:16218\treferer:http://127.0.0.1/\tua:Mozilla/5.0 (X11; Fedora; Linux x86_64; rv:59.0) Gecko/20100101 Firefox/59.0';
  const pairs = scanLtsv(line);
  assert.deepEqual(
    pairs.map((p) => p.key),
    ['host', 'ident', 'user', 'time', 'req', 'status', 'size', 'referer', 'ua'],
  );
  assert.equal(pairs[4]!.value, 'GET / HTTP/1.1');
  assert.equal(pairs[8]!.value, 'Mozilla/5.0 (X11; Fedora; Linux x86_64; rv:59.0) Gecko/20100101 Firefox/59.0');
});

test('ltsv: empty values are kept, a bad label stops, a newline ends the record', () => {
  assert.deepEqual(scanLtsv('a:\tb:2\nc:3'), [
    { key: 'a', value: '' },
    { key: 'b', value: '2' },
  ]);
  assert.deepEqual(scanLtsv('a:1\tbad label:2'), [{ key: 'a', value: '1' }]);
  assert.deepEqual(scanLtsv('no colon here'), []);
});

test('unescape', () => {
  assert.equal(unescapeString('a\\/b\\\\c\\q'), 'a/b\\cq');
});

test('types: spec parsing and Fluent Bit casts', () => {
  const t = parseTypes('code:integer size:integer took:float ok:bool id:hex name:string');
  assert.ok(t instanceof Map);
  assert.equal(t.get('took'), 'float');
  assert.match(parseTypes('code:int') as string, /unknown type 'int' for 'code'/);
  assert.match(parseTypes('code') as string, /not KEY:TYPE/);
  assert.match(parseTypes('  ') as string, /empty/);
  assert.deepEqual(castValue('integer', '200'), { value: 200, ok: true });
  assert.deepEqual(castValue('integer', '12abc'), { value: 12, ok: true }, 'atoll reads the leading digits');
  assert.deepEqual(castValue('integer', '-'), { value: '-', ok: false });
  assert.deepEqual(castValue('float', '0.5'), { value: 0.5, ok: true });
  assert.deepEqual(castValue('float', '1e3ms'), { value: 1000, ok: true });
  assert.deepEqual(castValue('float', 'n/a'), { value: 'n/a', ok: false });
  assert.deepEqual(castValue('hex', '0xff'), { value: 255, ok: true });
  assert.deepEqual(castValue('hex', 'FF'), { value: 255, ok: true });
  assert.deepEqual(castValue('bool', 'TRUE'), { value: true, ok: true });
  assert.deepEqual(castValue('bool', 'false'), { value: false, ok: true });
  assert.deepEqual(castValue('bool', 'yes'), { value: 'yes', ok: false });
  assert.deepEqual(castValue('string', '007'), { value: '007', ok: true });
});

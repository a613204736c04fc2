/**
 * What the HTTP outputs share: Fluent Bit's `header` option parsed into request headers, with
 * load-time errors for what would break the request or clash with other options.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/config/errors.js';
import type { RawSection } from '../../../src/config/schema.js';
import { parseHeaders, type HttpClientConfig } from '../../../src/outputs/http-common.js';

const pos = { file: 'p.yaml', line: 7, col: 15 };
const section: RawSection = { values: {}, keyPos: {}, valuePos: { header: pos }, pos: { file: 'p.yaml', line: 1, col: 1 }, baseDir: '.' };
const cfg = (header: string[], extra: Partial<HttpClientConfig> = {}) => ({ header, ...extra }) as HttpClientConfig;

test("header entries are 'Name value' as Fluent Bit writes them; the value keeps its spaces", () => {
  assert.deepEqual(parseHeaders(cfg(['X-Scope-OrgID tenant-1', 'X-Note  two words here ', 'User-Agent: custom']), section), {
    'x-scope-orgid': 'tenant-1',
    'x-note': 'two words here',
    'user-agent': 'custom',
  });
  assert.deepEqual(parseHeaders(cfg([]), section), {});
  assert.deepEqual(parseHeaders({} as HttpClientConfig, section), {});
});

test('malformed, reserved, repeated and conflicting headers are load-time errors with the position', () => {
  const bad: Array<[string[], Partial<HttpClientConfig>, RegExp]> = [
    [['X-Only'], {}, /invalid header "X-Only": expected 'Name value'/],
    [['Bad(Name) v'], {}, /invalid header name "Bad\(Name\)"/],
    [['Content-Type text/plain'], {}, /set by the output itself/],
    [['Host example'], {}, /set by the output itself/],
    [['X-A 1', 'x-a 2'], {}, /given twice/],
    [['Authorization Bearer x'], { bearer_token: 't' }, /not both/],
    [['Authorization Basic x'], { http_user: 'u' }, /not both/],
  ];
  for (const [header, extra, msg] of bad) {
    assert.throws(
      () => parseHeaders(cfg(header, extra), section),
      (e: unknown) => e instanceof ConfigError && /^p\.yaml:7:15: header: /.test(e.message) && msg.test(e.message),
      header.join(' | '),
    );
  }
  assert.deepEqual(parseHeaders(cfg(['Authorization Bearer x']), section), { authorization: 'Bearer x' });
  assert.throws(() => parseHeaders(cfg(['X-Forbidden v']), section, { 'x-forbidden': 'option_x' }), /use option_x instead/);
});

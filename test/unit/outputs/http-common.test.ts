/**
 * What the HTTP outputs share: Fluent Bit's `header` option parsed into request headers, with
 * load-time errors for what would break the request or clash with other options; the statuses
 * the engine retries, and Retry-After read as RFC 9110 writes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/config/errors.js';
import type { RawSection } from '../../../src/config/schema.js';
import { classifyStatus, type HttpClientConfig, laterRetry, parseHeaders, parseHttpDate, parseRetryAfter } from '../../../src/outputs/http-common.js';
import { DeliveryError } from '../../../src/core/plugin.js';

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

test('Retry-After: delay-seconds and the three HTTP-date formats; bad values are ignored', () => {
  const now = Date.UTC(1994, 10, 6, 8, 49, 7); // 30 s before the RFC's example date
  assert.equal(parseRetryAfter('120', now), 120);
  assert.equal(parseRetryAfter(' 0 ', now), 0);
  for (const date of ['Sun, 06 Nov 1994 08:49:37 GMT', 'Sunday, 06-Nov-94 08:49:37 GMT', 'Sun Nov  6 08:49:37 1994']) {
    assert.equal(parseRetryAfter(date, now), 30, date);
  }
  assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:00:00 GMT', now), 0, 'a date that has passed: no wait');
  assert.equal(parseHttpDate('Thu, 01 Jan 2026 00:00:00 GMT'), Date.UTC(2026, 0, 1));
  // RFC 850's two-digit year: more than 50 years ahead is the past century.
  assert.equal(parseHttpDate('Friday, 01-Jan-99 00:00:00 GMT', Date.UTC(2026, 0, 1)), Date.UTC(1999, 0, 1));
  assert.equal(parseHttpDate('Tuesday, 01-Jan-30 00:00:00 GMT', Date.UTC(2026, 0, 1)), Date.UTC(2030, 0, 1));
  for (const bad of [undefined, '', '-1', '1.5', '10s', '0x10', 'soon', 'Sun, 06 Nov 1994 08:49:37 UTC', 'Sun, 31 Feb 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 25:49:37 GMT', '2026-01-01T00:00:00Z']) {
    assert.equal(parseRetryAfter(bad, now), undefined, String(bad));
  }
});

test('classifyStatus: 2xx delivered, 408/429/5xx but 501 retried; Retry-After kept on 429 and 503 only', () => {
  const now = Date.UTC(2026, 0, 1);
  assert.equal(classifyStatus({ status: 204, body: '' }, 'loki'), undefined);
  const cases: Array<[number, string | undefined, boolean, number | undefined]> = [
    [429, '7', true, 7],
    [503, 'Thu, 01 Jan 2026 00:00:30 GMT', true, 30],
    [503, 'later', true, undefined],
    [429, undefined, true, undefined],
    [500, '7', true, undefined],
    [408, '7', true, undefined],
    [400, '7', false, undefined],
    [501, undefined, false, undefined],
  ];
  for (const [status, retryAfter, retryable, seconds] of cases) {
    const err = classifyStatus({ status, body: 'no', ...(retryAfter !== undefined ? { retryAfter } : {}) }, 'loki', now);
    assert.ok(err instanceof DeliveryError);
    assert.deepEqual([err.retryable, err.reason, err.retryAfter], [retryable, `http_${status}`, seconds], `${status} ${retryAfter}`);
  }
  const a = new DeliveryError('a', true, 'http_503');
  const b = new DeliveryError('b', true, 'http_429', 5);
  assert.equal(laterRetry(undefined, a), a);
  assert.equal(laterRetry(a, b), b, 'the one that asks to wait longer');
  assert.equal(laterRetry(b, a), b);
});

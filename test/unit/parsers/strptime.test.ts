import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTimeFormat, parseTimeOffset, TimeFormatError } from '../../../src/parsers/strptime.js';

const utc = (iso: string) => Date.parse(iso) / 1000;

test('Apache / nginx time: %d/%b/%Y:%H:%M:%S %z', () => {
  const f = compileTimeFormat('%d/%b/%Y:%H:%M:%S %z');
  assert.deepEqual(f.parse('29/Jul/2015:10:27:10 -0300'), { sec: utc('2015-07-29T13:27:10Z'), nsec: 0 });
  assert.deepEqual(f.parse('10/Jul/2018:13:27:05 +0200'), { sec: 1531222025, nsec: 0 });
  assert.deepEqual(f.parse('01/jan/2020:00:00:00 +05:30'), { sec: utc('2019-12-31T18:30:00Z'), nsec: 0 });
  assert.equal(f.parse('29/Foo/2015:10:27:10 -0300'), null);
  assert.equal(f.parse('29/Jul/2015'), null);
});

test('%L reads fractional seconds up to nanoseconds; Z, %z and trailing text', () => {
  const f = compileTimeFormat('%Y-%m-%dT%H:%M:%S.%L%z');
  assert.deepEqual(f.parse('2019-01-01T11:11:11.111111111Z'), { sec: utc('2019-01-01T11:11:11Z'), nsec: 111111111 });
  assert.deepEqual(f.parse('2019-01-01T11:11:11.5+01:00'), { sec: utc('2019-01-01T10:11:11Z'), nsec: 500000000 });
  assert.deepEqual(f.parse('2019-01-01T11:11:11.123456-0100'), { sec: utc('2019-01-01T12:11:11Z'), nsec: 123456000 });
  const g = compileTimeFormat('%Y-%m-%dT%H:%M:%S.%L');
  // Digits past the ninth are below a nanosecond; text after the format is ignored (strptime).
  assert.deepEqual(g.parse('2020-01-02T03:04:05.1234567891Z'), { sec: utc('2020-01-02T03:04:05Z'), nsec: 123456789 });
});

test('%s epoch seconds, with %L', () => {
  assert.deepEqual(compileTimeFormat('%s').parse('1700000000'), { sec: 1700000000, nsec: 0 });
  assert.deepEqual(compileTimeFormat('%s.%L').parse('1700000000.25'), { sec: 1700000000, nsec: 250000000 });
});

test('a format without a year takes the current year, and today for a missing month and day', () => {
  const now = new Date('2024-03-05T12:00:00Z');
  const f = compileTimeFormat('%b %d %H:%M:%S');
  assert.deepEqual(f.parse('Feb 28 12:00:00', now), { sec: utc('2024-02-28T12:00:00Z'), nsec: 0 });
  assert.deepEqual(f.parse('Feb  8 01:02:03', now), { sec: utc('2024-02-08T01:02:03Z'), nsec: 0 });
  assert.deepEqual(compileTimeFormat('%H:%M:%S').parse('07:08:09', now), { sec: utc('2024-03-05T07:08:09Z'), nsec: 0 });
});

test('%y, %I %p, %j, %e, %T, %D, %a names, %%', () => {
  assert.deepEqual(compileTimeFormat('%y-%m-%d').parse('99-12-31'), { sec: utc('1999-12-31T00:00:00Z'), nsec: 0 });
  assert.deepEqual(compileTimeFormat('%y-%m-%d').parse('24-02-29'), { sec: utc('2024-02-29T00:00:00Z'), nsec: 0 });
  assert.deepEqual(compileTimeFormat('%Y-%m-%d %I:%M %p').parse('2024-01-01 12:30 AM'), { sec: utc('2024-01-01T00:30:00Z'), nsec: 0 });
  assert.deepEqual(compileTimeFormat('%Y-%m-%d %I:%M %p').parse('2024-01-01 01:30 pm'), { sec: utc('2024-01-01T13:30:00Z'), nsec: 0 });
  assert.deepEqual(compileTimeFormat('%Y %j').parse('2024 060'), { sec: utc('2024-02-29T00:00:00Z'), nsec: 0 });
  assert.deepEqual(compileTimeFormat('%D %T').parse('03/05/24 10:11:12'), { sec: utc('2024-03-05T10:11:12Z'), nsec: 0 });
  assert.deepEqual(compileTimeFormat('%a, %e %B %Y 100%%').parse('Tue,  5 March 2024 100%'), { sec: utc('2024-03-05T00:00:00Z'), nsec: 0 });
});

test('time_offset applies to formats without a zone; a zone in the value wins', () => {
  const f = compileTimeFormat('%Y-%m-%d %H:%M:%S', { offset: parseTimeOffset('-0600') });
  assert.deepEqual(f.parse('2024-01-01 00:00:00'), { sec: utc('2024-01-01T06:00:00Z'), nsec: 0 });
  const g = compileTimeFormat('%Y-%m-%d %H:%M:%S %z', { offset: 7200 });
  assert.deepEqual(g.parse('2024-01-01 00:00:00 +0000'), { sec: utc('2024-01-01T00:00:00Z'), nsec: 0 });
  assert.equal(parseTimeOffset('+02:00'), 7200);
  assert.equal(parseTimeOffset('Z'), 0);
  assert.equal(parseTimeOffset('0200'), undefined);
  assert.equal(parseTimeOffset('+2'), undefined);
});

test('time_system_timezone reads zone-less times in TZ', () => {
  const saved = process.env.TZ;
  process.env.TZ = 'America/New_York';
  try {
    const f = compileTimeFormat('%Y-%m-%d %H:%M:%S', { systemTimezone: true });
    assert.deepEqual(f.parse('2024-01-15 10:00:00'), { sec: utc('2024-01-15T15:00:00Z'), nsec: 0 });
    assert.deepEqual(f.parse('2024-07-15 10:00:00'), { sec: utc('2024-07-15T14:00:00Z'), nsec: 0 }, 'daylight saving time');
    const z = compileTimeFormat('%Y-%m-%d %H:%M:%S %z', { systemTimezone: true });
    assert.deepEqual(z.parse('2024-01-15 10:00:00 +0000'), { sec: utc('2024-01-15T10:00:00Z'), nsec: 0 });
  } finally {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  }
});

test('time_strict false accepts a value that matches a prefix of the format', () => {
  const strict = compileTimeFormat('%Y-%m-%dT%H:%M:%S.%L');
  const lax = compileTimeFormat('%Y-%m-%dT%H:%M:%S.%L', { strict: false });
  assert.equal(strict.parse('2024-01-02T03:04:05'), null);
  assert.deepEqual(lax.parse('2024-01-02T03:04:05'), { sec: utc('2024-01-02T03:04:05Z'), nsec: 0 });
});

test('range checks and unknown directives', () => {
  const f = compileTimeFormat('%Y-%m-%d %H:%M');
  assert.equal(f.parse('2024-13-01 00:00'), null);
  assert.equal(f.parse('2024-01-01 24:00'), null);
  assert.equal(f.parse('2024-01-01 23:60'), null);
  assert.throws(
    () => compileTimeFormat('%Y-%Q'),
    (e: unknown) => e instanceof TimeFormatError && /unknown time_format directive %Q/.test(e.message),
  );
  assert.throws(() => compileTimeFormat('%Y %'), /lone %/);
  assert.throws(() => compileTimeFormat('plain text'), /no % directive/);
});

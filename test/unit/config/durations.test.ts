/**
 * Duration options read as Fluent Bit 5.1.1 reads the options it has too. The Fluent Bit numbers
 * were observed on the real binary:
 * - service `flush` and `grace`: at log_level debug it logs `flush time | N seconds` and
 *   `grace | N seconds` at startup;
 * - `net.io_timeout` (flb_utils_time_to_seconds, like every FLB_CONFIG_MAP_TIME option): an http
 *   output per value against a server that never answers (http.response_timeout 1h so it does not
 *   clamp), which logs `connection ... timed out after N seconds (IO timeout)`.
 * test/e2e/durations-fluent-bit.test.ts repeats the quick ones against the binary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applySchema, coerceOption, fluentBitSeconds, parseDuration, type OptionSpec, type RawSection } from '../../../src/config/schema.js';
import { ConfigError } from '../../../src/config/errors.js';
import { serviceOptions } from '../../../src/config/service.js';
import { forwardOutput } from '../../../src/outputs/forward/index.js';
import { forwardInput } from '../../../src/inputs/forward/index.js';
import { throttleFilter } from '../../../src/filters/throttle/index.js';
import { fileOutput } from '../../../src/outputs/file/index.js';

/** Text -> seconds, as Fluent Bit 5.1.1 logged them. */
const observedFlush: Array<[string, number]> = [
  ['1.5', 1.5],
  ['5m', 5],
  ['500ms', 500],
  ['10s', 10],
  ['2h', 2],
  ['0.5', 0.5],
];
const observedGrace: Array<[string, number]> = [
  ['10s', 10],
  ['1.5h', 1],
  ['2m', 2],
  ['7', 7],
  ['2.9', 2],
  ['5d', 5],
];
const observedIoTimeout: Array<[string, number]> = [
  ['2', 2],
  ['2.9', 2],
  ['3s', 3],
  ['2x', 2],
  ['1m', 60],
  ['1M', 60],
  ['1.5m', 60],
  ['500ms', 500],
  ['90s', 90],
  ['2 m', 120],
];

test('the emulated Fluent Bit readers give the numbers the binary logged', () => {
  for (const [text, n] of observedFlush) assert.equal(fluentBitSeconds('atof', text), n, `flush ${text}`);
  for (const [text, n] of observedGrace) assert.equal(fluentBitSeconds('atoi', text), n, `grace ${text}`);
  for (const [text, n] of observedIoTimeout) assert.equal(fluentBitSeconds('time', text), n, `net.io_timeout ${text}`);
  // From the throttle filter's source (strtod, then one lowercase s/m/h/d, cut to whole seconds).
  assert.equal(fluentBitSeconds('throttle', '1.5m'), 90);
  assert.equal(fluentBitSeconds('throttle', '1H'), 1);
  assert.equal(fluentBitSeconds('throttle', '0.5h'), 1800);
});

function read(spec: OptionSpec, text: unknown): number | ConfigError {
  try {
    return coerceOption('x', spec, text) as number;
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e;
  }
}

test('a duration Fluent Bit reads the same is read so; one whose whole seconds differ there is refused', () => {
  const cases: Array<[OptionSpec, Array<[string, number]>]> = [
    [serviceOptions.flush, observedFlush],
    [serviceOptions.grace, observedGrace],
    [forwardOutput.options!['net.io_timeout']!, observedIoTimeout],
  ];
  let same = 0;
  let refused = 0;
  for (const [spec, observed] of cases) {
    for (const [text, theirs] of observed) {
      const ours = read(spec, text);
      if (typeof ours === 'number' && Math.trunc(ours) === Math.trunc(theirs) && !/ms$/.test(text)) {
        // Same whole seconds; a fraction Fluent Bit cuts off (2.9 -> 2) logwarden keeps.
        assert.equal(ours, parseDuration(text), text);
        same++;
      } else if (parseDuration(text) === undefined) {
        // Not a duration in logwarden at all (2x): refused as such.
        assert.ok(ours instanceof ConfigError && /expected a duration/.test(ours.message), `${text}: ${String(ours)}`);
        refused++;
      } else {
        assert.ok(ours instanceof ConfigError, `${text}: logwarden read ${String(ours)}, Fluent Bit ${theirs}`);
        assert.match(ours.message, new RegExp(`Fluent Bit reads it as ${theirs} s here`), ours.message);
        refused++;
      }
    }
  }
  // Pinned so that a change of either side shows: which forms are shared and which are refused.
  assert.deepEqual([same, refused], [13, 9]);
});

test('forms and meanings of durations, per option', () => {
  const flush = serviceOptions.flush;
  const grace = serviceOptions.grace;
  const timeout = forwardOutput.options!['net.keepalive_idle_timeout']!;
  const accept = forwardInput.options['net.accept_timeout']!;
  const interval = throttleFilter.options.interval!;
  const own = fileOutput.options.rotate_interval!; // logwarden's own option: every form
  const ok: Array<[OptionSpec, unknown, number]> = [
    [flush, '1.5', 1.5],
    [flush, '10s', 10],
    [flush, 0.5, 0.5],
    [flush, '.5', 0.5],
    [grace, '10s', 10],
    [grace, '7', 7],
    [grace, '2.5', 2.5],
    [timeout, '30s', 30],
    [timeout, '5m', 300],
    [timeout, '5M', 300],
    [timeout, '1h', 3600],
    [timeout, '2d', 172800],
    [timeout, '10 m', 600],
    [timeout, 0.2, 0.2],
    [timeout, '0.2', 0.2],
    [accept, '10s', 10],
    [interval, '1.5m', 90],
    [interval, '0.5h', 1800],
    [interval, '1h', 3600],
    [interval, '1.5', 1.5],
    [own, '500ms', 0.5],
    [own, '1.5h', 5400],
    [own, '1.5m', 90],
    [own, '7d', 604800],
    [own, '5m', 300],
  ];
  for (const [spec, text, n] of ok) assert.equal(read(spec, text), n, `${spec.description}: ${String(text)}`);
  const refused: Array<[OptionSpec, string, string]> = [
    [flush, '5m', 'Fluent Bit reads it as 5 s here, not 300 s; write 300 for 300 s'],
    [flush, '500ms', 'Fluent Bit reads it as 500 s here, not 0.5 s; write 0.5 for 0.5 s'],
    [grace, '1.5h', 'Fluent Bit reads it as 1 s here, not 5400 s; write 5400 for 5400 s'],
    [timeout, '500ms', 'Fluent Bit reads it as 500 s here, not 0.5 s'],
    [timeout, '1.5h', 'Fluent Bit reads it as 3600 s here, not 5400 s'],
    [timeout, '0.5m', 'Fluent Bit reads it as 0 s here, not 30 s'],
    [timeout, '0ms', 'Fluent Bit reads it as 0 s here, not 0 s'],
    [interval, '1H', 'Fluent Bit reads it as 1 s here, not 3600 s'],
    [interval, '250ms', 'Fluent Bit reads it as 250 s here, not 0.25 s'],
  ];
  for (const [spec, text, msg] of refused) {
    const e = read(spec, text);
    assert.ok(e instanceof ConfigError, `${text}: read as ${String(e)}`);
    assert.ok(e.message.includes(msg), e.message);
  }
  // Not durations anywhere.
  for (const text of ['abc', '-5', '1h30m', '5min', '1e3', '', '1w', '5 s s']) for (const spec of [flush, timeout, own]) assert.ok(read(spec, text) instanceof ConfigError, `${text}`);
});

test('a refused duration is reported at its file:line:col with the option name', () => {
  const raw: RawSection = {
    values: { flush: '5m' },
    keyPos: { flush: { file: 'p.yaml', line: 2, col: 3 } },
    valuePos: { flush: { file: 'p.yaml', line: 2, col: 10 } },
    pos: { file: 'p.yaml', line: 1, col: 1 },
    baseDir: '.',
  };
  const errors: ConfigError[] = [];
  applySchema(serviceOptions, raw, 'service', errors);
  assert.equal(errors.length, 1);
  assert.match(errors[0]!.message, /^p\.yaml:2:10: flush: found "5m": Fluent Bit reads it as 5 s here, not 300 s; write 300 for 300 s$/);
});

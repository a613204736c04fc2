/**
 * Size options read as Fluent Bit 5.1.1 reads them. The expected numbers of the Fluent Bit forms
 * were observed on the real binary: `fluent-bit -i dummy -p samples=1 -o file -p path=DIR
 * -p rotate=on -p rotate_max_size=VALUE -f 1`, whose out_file logs `file rotation enabled:
 * rotate_max_size=N` with the parsed value (N = 18446744073709551615, its -1 error value, for the
 * forms it refuses). test/e2e/sizes-fluent-bit.test.ts repeats the comparison against the binary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applySchema, coerceOption, parseSize, type RawSection } from '../../../src/config/schema.js';
import { ConfigError } from '../../../src/config/errors.js';
import { serviceOptions } from '../../../src/config/service.js';
import { fileOutput } from '../../../src/outputs/file/index.js';
import { lokiOutput } from '../../../src/outputs/loki/index.js';
import { k8sAuditWebhookInput } from '../../../src/inputs/k8s_audit_webhook/index.js';
import { httpInput } from '../../../src/inputs/http/index.js';
import { forwardInput } from '../../../src/inputs/forward/index.js';

/** Value -> bytes, as the real Fluent Bit 5.1.1 logged them for rotate_max_size. */
const observed: Array<[string, number]> = [
  ['1', 1],
  ['2k', 2000],
  ['2K', 2000],
  ['2kb', 2000],
  ['2KB', 2000],
  ['2Kb', 2000],
  ['0.5k', 500],
  ['.5k', 500],
  ['+5k', 5000],
  ['1.9999', 1],
  ['1.9999k', 1999],
  ['1.005k', 1004], // 1.005 * 1000 is 1004.9999999999999 in doubles, truncated
  ['0.29k', 290],
  ['1.5M', 1_500_000],
  ['1.5m', 1_500_000],
  ['4.1M', 4_099_999],
  ['100M', 100_000_000],
  ['1G', 1_000_000_000],
  ['1g', 1_000_000_000],
  ['2GB', 2_000_000_000],
  ['8.2G', 8_199_999_999],
  [' 2k', 2000],
];

/** Forms the binary refuses (rotate_max_size=18446744073709551615, or 2^64-5 for -5). */
const refusedByFluentBit = ['100B', '100b', '1 M', '5.k', '2T', 'abc', '-5', '1KiB', '1Ki', '1Mi', '9300000000G'];

test('the sizes Fluent Bit 5.1.1 accepts are the same number of bytes (powers of 1000, any case)', () => {
  for (const [text, bytes] of observed) assert.equal(parseSize(text), bytes, text);
});

test('the sizes Fluent Bit 5.1.1 turns into its error value are refused, except the binary units', () => {
  const binary: Record<string, number> = { '1KiB': 1024, '1Ki': 1024, '1Mi': 1024 ** 2 };
  for (const text of refusedByFluentBit) assert.equal(parseSize(text), binary[text], text);
});

test('Ki, Mi, Gi and KiB, MiB, GiB are powers of 1024 (Kubernetes quantities)', () => {
  assert.equal(parseSize('512Mi'), 536_870_912);
  assert.equal(parseSize('256MiB'), 268_435_456);
  assert.equal(parseSize('64ki'), 65_536);
  assert.equal(parseSize('1Gi'), 1_073_741_824);
  assert.equal(parseSize('2GiB'), 2_147_483_648);
  assert.equal(parseSize('1.5Ki'), 1536);
  assert.equal(parseSize('0.3Ki'), 307); // 307.2, truncated like the decimal units
});

test('false is 0 as in Fluent Bit; numbers are truncated; what atof() lets through by accident is refused', () => {
  assert.equal(parseSize('false'), 0);
  assert.equal(parseSize('FALSE'), 0);
  assert.equal(parseSize(false), 0);
  assert.equal(parseSize(true), undefined);
  assert.equal(parseSize(1500), 1500);
  assert.equal(parseSize(1.9), 1);
  assert.equal(parseSize(-1), undefined);
  // Fluent Bit reads these as 1000 and 16 through atof(); they are not sizes in its docs.
  assert.equal(parseSize('1e3'), undefined);
  assert.equal(parseSize('0x10'), undefined);
  assert.equal(parseSize(''), undefined);
  assert.equal(parseSize('k'), undefined);
  assert.equal(parseSize('5.'), undefined);
  assert.equal(parseSize('1Kib2'), undefined);
  // Beyond 2^53 bytes the number would not be exact.
  assert.equal(parseSize('9007199G'), 9_007_199_000_000_000);
  assert.equal(parseSize('9007200G'), undefined);
  assert.equal(parseSize(2 ** 60), undefined);
});

test('a refused size is a config error naming the forms, at its position', () => {
  const pos = { file: 'p.yaml', line: 3, col: 24 };
  assert.throws(
    () => coerceOption('rotate_max_size', fileOutput.options.rotate_max_size!, '100B', pos),
    (e: unknown) => e instanceof ConfigError && /p\.yaml:3:24/.test(e.message) && /found "100B", expected a size \(.*k\/M\/G \(x1000, as Fluent Bit\) or Ki\/Mi\/Gi \(x1024\)/.test(e.message),
  );
});

function defaults(options: Parameters<typeof applySchema>[0]): Record<string, unknown> {
  const section: RawSection = { values: {}, keyPos: {}, valuePos: {}, pos: { file: 't.yaml', line: 1, col: 1 }, baseDir: '/' };
  const errors: Error[] = [];
  const c = applySchema(options, section, 'defaults', errors as never);
  return c as Record<string, unknown>;
}

test("defaults: Fluent Bit's options have Fluent Bit's numbers, logwarden's their stated bytes", () => {
  // Fluent Bit 5.1.1: out_file rotate_max_size "100M", FLB_STORAGE_BL_MEM_LIMIT "100M",
  // in_http HTTP_BUFFER_CHUNK_SIZE "512K" / HTTP_BUFFER_MAX_SIZE "4M", in_forward "1024000" / "6144000".
  assert.equal(defaults(fileOutput.options).rotate_max_size, 100_000_000);
  assert.equal(defaults(serviceOptions)['storage.backlog.mem_limit'], 100_000_000);
  assert.equal(defaults(httpInput.options).buffer_chunk_size, 512_000);
  assert.equal(defaults(httpInput.options).buffer_max_size, 4_000_000);
  assert.equal(defaults(forwardInput.options).buffer_chunk_size, 1_024_000);
  assert.equal(defaults(forwardInput.options).buffer_max_size, 6_144_000);
  // logwarden's own: 256 MiB of memory_limit (half a 512Mi container), Loki's 256KB line limit
  // (Loki answers "Max entry size '262144' bytes exceeded"), Falco's webhookMaxBatchSize 12582912.
  assert.equal(defaults(serviceOptions).memory_limit, 268_435_456);
  assert.equal(defaults(lokiOutput.options).max_line_size, 262_144);
  assert.equal(defaults(k8sAuditWebhookInput.options).buffer_max_size, 12_582_912);
});

test('storage.total_limit_size: unset, off, false, no and any size of 0 bytes are no limit, as in Fluent Bit 5.1', async () => {
  const { commonOutputOptions } = await import('../../../src/core/common-options.js');
  const spec = commonOutputOptions['storage.total_limit_size'];
  for (const v of ['off', 'OFF', 'false', false, 'no', '0', 0, '0k', '0M', '0.5', ' off ']) assert.equal(coerceOption('storage.total_limit_size', spec, v), undefined, String(v));
  assert.equal(coerceOption('storage.total_limit_size', spec, '10M'), 10_000_000);
  assert.equal(coerceOption('storage.total_limit_size', spec, '1k'), 1000);
  // Fluent Bit refuses these (on/true/yes go to its size parser, which returns -1: a config error).
  for (const v of ['on', 'true', true, 'yes', 'unlimited', '-1']) assert.throws(() => coerceOption('storage.total_limit_size', spec, v), ConfigError, String(v));
  // Written as off, the option reads as unset: no default fills it in and nothing is bounded.
  const errors: ConfigError[] = [];
  const pos = { file: 'p.yaml', line: 3, col: 5 };
  const c = applySchema(
    commonOutputOptions,
    { values: { name: 'file', 'storage.total_limit_size': 'off' }, keyPos: { name: pos, 'storage.total_limit_size': pos }, valuePos: {}, pos, baseDir: '.' },
    'output',
    errors,
  );
  assert.deepEqual(errors, []);
  assert.equal(c['storage.total_limit_size'], undefined);
});

/**
 * Size options against the real Fluent Bit 5.1.1: one Fluent Bit with a file output per written
 * size, rotation on, each logging the number its size parser made of `rotate_max_size`
 * (`file rotation enabled: rotate_max_size=N`); logwarden's file output reads each value through
 * its option table. The same text must be the same number of bytes, and what Fluent Bit turns
 * into its -1 error value (N = 2^64-1, or a negative number wrapped) logwarden refuses with a
 * config error — apart from the binary units Ki/Mi/Gi, which logwarden takes as powers of 1024.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { coerceOption } from '../../src/config/schema.js';
import { ConfigError } from '../../src/config/errors.js';
import { fileOutput } from '../../src/outputs/file/index.js';
import { FluentBit } from '../support/fluent-bit.js';
import { tempDir } from '../support/harness.js';

// Not `false` or a bare `k`: Fluent Bit reads them as 0, which its out_file refuses at startup
// ("rotate_max_size must be greater than zero"), and one refused output stops the whole process.
const written = [
  '1',
  '1500',
  '1.9999',
  '2k',
  '2K',
  '2kb',
  '2KB',
  '2Kb',
  '0.5k',
  '.5k',
  '+5k',
  '1.9999k',
  '1.005k',
  '1.5M',
  '1.5m',
  '4.1M',
  '100M',
  '6M',
  '1G',
  '1g',
  '2GB',
  '8.2G',
  '100B',
  '100b',
  '1 M',
  '5.k',
  '2T',
  'abc',
  '-5',
  '1e3',
  '0x10',
  '9300000000G',
  '1KiB',
  '1Ki',
  '1Mi',
  '512Mi',
  '1Gi',
];

const ERROR_VALUE = 2n ** 64n - 1n;

test('every size Fluent Bit 5.1.1 reads is the same number of bytes in logwarden; what it cannot read, logwarden refuses', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const fb = FluentBit.start(
    {
      pipeline: {
        inputs: [{ name: 'dummy', samples: 1 }],
        outputs: written.map((v, i) => ({ name: 'file', alias: `size${i}`, match: 'nothing', path: dir, rotate: 'on', rotate_max_size: v })),
      },
    },
    dir,
  );
  const parsed = new Map<number, bigint>();
  try {
    const deadline = Date.now() + 30_000;
    while (parsed.size < written.length) {
      assert.ok(fb.running, fb.tail());
      assert.ok(Date.now() < deadline, `only ${parsed.size} of ${written.length} outputs logged their size:\n${fb.tail()}`);
      for (const m of fb.log.matchAll(/\[output:file:size(\d+)\] file rotation enabled: rotate_max_size=(\d+)/g)) parsed.set(Number(m[1]), BigInt(m[2]!));
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await fb.stop();
  }

  const spec = fileOutput.options.rotate_max_size!;
  const rows: string[] = [];
  let same = 0;
  let refused = 0;
  let binary = 0;
  written.forEach((text, i) => {
    const theirs = parsed.get(i)!;
    const fbRefused = theirs === ERROR_VALUE || theirs >= 2n ** 63n;
    let ours: number | Error;
    try {
      ours = coerceOption('rotate_max_size', spec, text) as number;
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      ours = e;
    }
    rows.push(`${JSON.stringify(text)}: Fluent Bit ${fbRefused ? 'error value' : theirs}, logwarden ${ours instanceof Error ? 'refused' : ours}`);
    if (/^\d+(\.\d+)?[kmg]i(b)?$/i.test(text)) {
      // Fluent Bit refuses the binary units here; logwarden reads them as powers of 1024.
      assert.ok(fbRefused, `${text}: Fluent Bit now reads it (${theirs}); revisit the binary units`);
      const unit = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[text.replace(/^[\d.]+/, '')[0]!.toLowerCase() as 'k' | 'm' | 'g'];
      assert.equal(ours, Math.trunc(Number(text.match(/^[\d.]+/)![0]) * unit), text);
      binary++;
    } else if (fbRefused || text === '1e3' || text === '0x10') {
      // 1e3 and 0x10 are sizes to Fluent Bit only by way of atof(); logwarden refuses them too.
      assert.ok(ours instanceof Error, `${text}: logwarden read ${String(ours)}, Fluent Bit ${fbRefused ? 'refuses it' : theirs}`);
      refused++;
    } else {
      assert.equal(BigInt(ours as number), theirs, rows.at(-1));
      same++;
    }
  });
  assert.equal(same + refused + binary, written.length, rows.join('\n'));
  assert.ok(same >= 20 && refused >= 9 && binary === 5, rows.join('\n'));
});

/**
 * Duration options against the real Fluent Bit 5.1.1. Its service `flush` and `grace` are logged
 * at startup (log_level debug: `flush time | N seconds`, `grace | N seconds`); `net.io_timeout`
 * (flb_utils_time_to_seconds, the reader of every FLB_CONFIG_MAP_TIME option) is logged when a
 * request to a server that never answers times out (`timed out after N seconds (IO timeout)`).
 * For each written form logwarden must read the same whole seconds, or refuse it with a config
 * error saying what Fluent Bit reads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { coerceOption, parseDuration, type OptionSpec } from '../../src/config/schema.js';
import { ConfigError } from '../../src/config/errors.js';
import { serviceOptions } from '../../src/config/service.js';
import { lokiOutput } from '../../src/outputs/loki/index.js';
import { FluentBit } from '../support/fluent-bit.js';
import { tempDir } from '../support/harness.js';

function compare(spec: OptionSpec, text: string, theirs: number): 'same' | 'refused' {
  let ours: number | ConfigError;
  try {
    ours = coerceOption('x', spec, text) as number;
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    ours = e;
  }
  const shared = parseDuration(text) !== undefined && !/ms$/i.test(text) && Math.trunc(parseDuration(text)!) === Math.trunc(theirs);
  if (shared) {
    assert.equal(ours, parseDuration(text), `${text}: Fluent Bit ${theirs}, logwarden ${String(ours)}`);
    return 'same';
  }
  assert.ok(ours instanceof ConfigError, `${text}: Fluent Bit reads ${theirs}, logwarden ${String(ours)}`);
  if (parseDuration(text) !== undefined) assert.ok(ours.message.includes(`Fluent Bit reads it as ${theirs} s here`), ours.message);
  return 'refused';
}

test('service flush and grace: the forms Fluent Bit 5.1.1 reads alike are the same seconds; the others are refused', { timeout: 120_000 }, async () => {
  const pairs: Array<[string, string]> = [
    ['1.5', '10s'],
    ['5m', '1.5h'],
    ['500ms', '2m'],
    ['10s', '7'],
    ['2h', '2.9'],
    ['0.5', '5d'],
  ];
  const dir = tempDir();
  const tally = { same: 0, refused: 0 };
  for (const [flush, grace] of pairs) {
    const fb = FluentBit.start({ service: { log_level: 'debug', flush, grace }, pipeline: { inputs: [{ name: 'dummy', samples: 1 }], outputs: [{ name: 'null', match: '*' }] } }, dir);
    try {
      const f = Number(/flush time\s*\|\s*([\d.]+) seconds/.exec(await fb.waitLog(/flush time\s*\|/, 20_000))![1]);
      const g = Number(/grace\s*\|\s*(\d+) seconds/.exec(await fb.waitLog(/grace\s*\|/, 20_000))![1]);
      tally[compare(serviceOptions.flush, flush, f)]++;
      tally[compare(serviceOptions.grace, grace, g)]++;
    } finally {
      await fb.kill9();
    }
  }
  assert.deepEqual(tally, { same: 6, refused: 6 });
});

test('net.io_timeout (flb_utils_time_to_seconds): the same whole seconds in logwarden, or refused', { timeout: 120_000 }, async () => {
  const written = ['2', '2.9', '3s', '2x', '0.04m'];
  const held: net.Socket[] = [];
  const servers = await Promise.all(
    written.map(
      () =>
        new Promise<net.Server>((resolve) => {
          const s = net.createServer((c) => {
            held.push(c);
            c.on('error', () => {});
          });
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const port = (i: number) => (servers[i]!.address() as net.AddressInfo).port;
  const dir = tempDir();
  let fb: FluentBit | undefined;
  const parsed = new Map<number, number>();
  try {
    fb = FluentBit.start(
      {
        pipeline: {
          inputs: [{ name: 'dummy', samples: 1 }],
          outputs: written.map((v, i) => ({
            name: 'http',
            match: '*',
            host: '127.0.0.1',
            port: port(i),
            retry_limit: 'false',
            'net.io_timeout': v,
            'http.response_timeout': '5',
          })),
        },
      },
      dir,
    );
    const deadline = Date.now() + 30_000;
    while (parsed.size < written.length) {
      assert.ok(fb.running, fb.tail());
      assert.ok(Date.now() < deadline, `only ${parsed.size} of ${written.length} timeouts logged:\n${fb.tail()}`);
      for (const m of fb.log.matchAll(/to tcp:\/\/127\.0\.0\.1:(\d+) timed out after (\d+) seconds \(IO timeout\)/g)) {
        const i = written.findIndex((_, j) => port(j) === Number(m[1]));
        if (i >= 0 && !parsed.has(i)) parsed.set(i, Number(m[2]));
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await fb?.kill9();
    for (const c of held) c.destroy();
    for (const s of servers) s.close();
  }
  // 0.04m is 0 to Fluent Bit (no io timeout): the request then ends at http.response_timeout, 5 s.
  assert.deepEqual(
    written.map((_, i) => parsed.get(i)),
    [2, 2, 3, 2, 5],
  );
  const spec = lokiOutput.options!['net.io_timeout']!; // the option of logwarden's HTTP outputs
  const tally = { same: 0, refused: 0 };
  written.forEach((text, i) => {
    tally[compare(spec, text, text === '0.04m' ? 0 : parsed.get(i)!)]++;
  });
  assert.deepEqual(tally, { same: 3, refused: 2 });
});

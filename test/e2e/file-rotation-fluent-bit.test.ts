/**
 * The file output's rotation against the real Fluent Bit 5.1.1's out_file rotation, on one
 * directory: logwarden recognizes (and trims) the rotated files Fluent Bit wrote, and Fluent Bit
 * recognizes (and trims) the rotated files logwarden wrote. Both use the names
 * NAME.YYYYMMDD_HHMMSS_xxxxxxxx[.gz]; both gzip files read back whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { applySchema, type RawSection } from '../../src/config/schema.js';
import { outgoingBatch } from '../../src/core/plugin.js';
import { EventTime, type LogEvent } from '../../src/core/event.js';
import { FileOutput, fileOutput } from '../../src/outputs/file/index.js';
import { isRotatedName } from '../../src/outputs/file/rotate.js';
import { FluentBit } from '../support/fluent-bit.js';
import { tempDir } from '../support/harness.js';

function logwarden(dir: string, values: Record<string, unknown>): FileOutput {
  const section: RawSection = { values: { file: 'app.log', format: 'plain', ...values }, keyPos: {}, valuePos: {}, pos: { file: 't.yaml', line: 1, col: 1 }, baseDir: dir };
  const errors: Error[] = [];
  const c = applySchema(fileOutput.options, section, "output 'file'", errors as never);
  assert.deepEqual(errors, []);
  fileOutput.prepare!(c as never, section);
  return new FileOutput(dir, c as never);
}

const events = (from: number, n: number): LogEvent[] =>
  Array.from({ length: n }, (_, i) => ({ tag: 't', time: new EventTime(1_700_000_000 + from + i, 0), record: { message: 'hello world 0123456789', n: from + i } }));

/** Fluent Bit writing `{"message": ...}` records into dir/app.log until `re` was logged `times` times. */
async function fluentBit(dir: string, rotate: Record<string, unknown>, re: RegExp, times: number): Promise<string> {
  const fb = FluentBit.start(
    {
      service: { flush: 0.2 },
      pipeline: {
        inputs: [{ name: 'dummy', dummy: '{"message":"hello world 0123456789"}', rate: 200 }],
        outputs: [{ name: 'file', match: '*', path: dir, file: 'app.log', format: 'plain', rotate: 'on', ...rotate }],
      },
    },
    tempDir(),
  );
  try {
    const deadline = Date.now() + 30_000;
    while ((fb.log.match(new RegExp(re.source, 'g')) ?? []).length < times) {
      assert.ok(fb.running, fb.tail());
      assert.ok(Date.now() < deadline, `${re} not logged ${times} times:\n${fb.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await fb.stop();
  }
  return fb.log;
}

const rotatedIn = (dir: string) =>
  readdirSync(dir)
    .filter((f) => isRotatedName(f, 'app.log'))
    .sort();

function lines(file: string): string[] {
  const raw = readFileSync(file);
  const text = (file.endsWith('.gz') ? gunzipSync(raw) : raw).toString();
  assert.ok(text.endsWith('\n'), file);
  return text.slice(0, -1).split('\n');
}

test('logwarden trims the rotated files Fluent Bit 5.1.1 wrote, and reads its .gz files', async () => {
  const dir = tempDir();
  await fluentBit(dir, { rotate_max_size: '2k', rotate_max_files: 10 }, /rotated \S+ to /, 3);
  const fromFluentBit = readdirSync(dir).filter((f) => f !== 'app.log');
  assert.ok(fromFluentBit.length >= 3, readdirSync(dir).join(' '));
  for (const f of fromFluentBit) {
    assert.ok(isRotatedName(f, 'app.log'), `${f}: Fluent Bit's name is not recognized`);
    assert.match(f, /^app\.log\.\d{8}_\d{6}_[0-9a-f]{8}\.gz$/);
    for (const l of lines(join(dir, f))) assert.equal(JSON.parse(l).message, 'hello world 0123456789');
  }
  const newest = fromFluentBit.sort((a, b) => statSync(join(dir, b)).mtimeMs - statSync(join(dir, a)).mtimeMs)[0]!;
  // One rotation by logwarden: after this batch, which takes app.log past its size now.
  const size = existsSync(join(dir, 'app.log')) ? statSync(join(dir, 'app.log')).size : 0;
  const out = logwarden(dir, { rotate: true, rotate_max_size: size + 1, rotate_max_files: 2 });
  await out.start();
  await out.send(outgoingBatch(events(0, 5)));
  await out.close();
  const left = rotatedIn(dir);
  assert.equal(left.length, 2, readdirSync(dir).join(' '));
  assert.ok(
    left.some((f) => !fromFluentBit.includes(f)),
    "logwarden's own rotated file is kept",
  );
  assert.ok(left.includes(newest), "and Fluent Bit's newest");
});

test('Fluent Bit 5.1.1 trims the rotated files logwarden wrote (it reads the same names)', async () => {
  const dir = tempDir();
  const out = logwarden(dir, { rotate: true, rotate_max_size: 100, rotate_max_files: 10 });
  await out.start();
  for (let i = 0; i < 3; i++) await out.send(outgoingBatch(events(i * 5, 5))); // each batch crosses 100 bytes
  await out.close();
  const ours = rotatedIn(dir);
  assert.equal(ours.length, 3);
  for (const f of ours) assert.match(f, /^app\.log\.\d{8}_\d{6}_[0-9a-f]{8}\.gz$/);
  assert.deepEqual(
    ours.flatMap((f) => lines(join(dir, f)).map((l) => JSON.parse(l).n as number)).sort((a, b) => a - b),
    Array.from({ length: 15 }, (_, i) => i),
  );
  // Fluent Bit orders by whole-second mtimes (then by name): make ours clearly older.
  const hourAgo = Date.now() / 1000 - 3600;
  ours.forEach((f, i) => {
    utimesSync(join(dir, f), hourAgo + i, hourAgo + i);
  });
  const log = await fluentBit(dir, { rotate_max_size: '2k', rotate_max_files: 1 }, /cleaning up old rotated files/, 1);
  assert.match(log, /removing 3 files \(keeping 1\)/);
  const left = rotatedIn(dir);
  assert.equal(left.length, 1, readdirSync(dir).join(' '));
  assert.ok(!ours.includes(left[0]!), "Fluent Bit removed logwarden's three rotated files");
});

/**
 * Rotation of the file output, on real files: the size rule with the kept count, the age rule
 * (an injected clock, no waiting), whole batches per file, two outputs and concurrent workers on
 * one path, a file that exists at start, removal beyond rotate_max_files, a rotation done by
 * someone else, a rotation that fails, and the options' load-time errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ConfigErrors } from '../../../src/config/errors.js';
import { outgoingBatch } from '../../../src/core/plugin.js';
import { loadConfigFile } from '../../../src/config/load.js';
import { applySchema, type RawSection } from '../../../src/config/schema.js';
import { EventTime, type LogEvent } from '../../../src/core/event.js';
import { plan } from '../../../src/core/plan.js';
import { FileOutput, fileOutput } from '../../../src/outputs/file/index.js';
import { isRotatedName, rotationsSettled } from '../../../src/outputs/file/rotate.js';
import { registry } from '../../../src/plugins.js';
import { tempDir } from '../../support/harness.js';

type Options = Record<string, unknown>;

/** The output's configuration as the loader builds it (types, defaults). */
function configOf(values: Options): never {
  const section: RawSection = { values, keyPos: {}, valuePos: {}, pos: { file: 'test.yaml', line: 1, col: 1 }, baseDir: '.' };
  const errors: Error[] = [];
  const c = applySchema(fileOutput.options, section, "output 'file'", errors as never);
  assert.deepEqual(errors, []);
  fileOutput.prepare!(c as never, section);
  return c as never;
}

interface Clock {
  ms: number;
  now: () => number;
}
function clock(ms = Date.now()): Clock {
  const c: Clock = { ms, now: () => c.ms };
  return c;
}

async function output(dir: string, values: Options, deps: { now?: () => number; warnings?: string[] } = {}): Promise<FileOutput> {
  const warnings = deps.warnings;
  const out = new FileOutput(dir, configOf({ format: 'json_lines', json_date_key: false, ...values }), {
    now: deps.now,
    logger: { warn: ((fields: Record<string, unknown>, msg: string) => warnings?.push(`${msg} ${JSON.stringify(fields)}`)) as never },
  });
  await out.start();
  return out;
}

/** `n` events whose JSON lines are all `lineBytes` long: {"n":"000042","pad":"xxx…"}\n. */
function batch(tag: string, from: number, n: number, lineBytes = 100): LogEvent[] {
  const fixed = '{"n":"000000","pad":""}\n'.length;
  return Array.from({ length: n }, (_, i) => ({
    tag,
    time: new EventTime(1_700_000_000 + from + i, 0),
    record: { n: String(from + i).padStart(6, '0'), pad: 'x'.repeat(lineBytes - fixed) },
  }));
}

/** The records of a (possibly gzipped) file, checking every line is one whole record. */
function recordsOf(file: string): number[] {
  const raw = readFileSync(file);
  const text = (file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), `${file} ends inside a record`);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => Number((JSON.parse(line) as { n: string }).n));
}

/** Rotated files of `name` in `dir`, oldest first (by modification time, as they are trimmed). */
function rotated(dir: string, name: string): string[] {
  return readdirSync(dir)
    .filter((f) => isRotatedName(f, name))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs || (a < b ? -1 : 1));
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

test('size rule: rotated after the batch that reached rotate_max_size, rotate_max_files kept, the oldest removed', async () => {
  const dir = tempDir();
  const out = await output(dir, { file: 'app.log', rotate: true, rotate_max_size: 1000, rotate_max_files: 3, rotate_gzip: false });
  // 5 records of 100 bytes per batch: the second batch takes the file to 1000 bytes.
  for (let b = 0; b < 11; b++) {
    await out.send(outgoingBatch(batch('t', b * 5, 5)));
    await rotationsSettled();
  }
  await out.close();
  const files = rotated(dir, 'app.log');
  assert.equal(files.length, 3, readdirSync(dir).join(' '));
  for (const f of files) assert.match(f, /app\.log\.\d{8}_\d{6}_[0-9a-f]{8}$/);
  // Five rotations of two batches each happened; the three newest are kept, in order.
  assert.deepEqual(files.map(recordsOf), [range(20, 10), range(30, 10), range(40, 10)]);
  for (const f of files) assert.equal(statSync(f).size, 1000);
  assert.deepEqual(recordsOf(join(dir, 'app.log')), range(50, 5));
});

test('rotate_gzip (the default): rotated files are NAME.<suffix>.gz, whole records, nothing left uncompressed', async () => {
  const dir = tempDir();
  const out = await output(dir, { file: 'app.log', rotate: 'on', rotate_max_size: '1k', rotate_max_files: 2 });
  for (let b = 0; b < 8; b++) await out.send(outgoingBatch(batch('t', b * 6, 6, 200))); // 1200 bytes per batch: each rotates
  await out.close(); // waits for the compressions
  const files = rotated(dir, 'app.log');
  assert.equal(files.length, 2, readdirSync(dir).join(' '));
  for (const f of files) assert.match(f, /app\.log\.\d{8}_\d{6}_[0-9a-f]{8}\.gz$/);
  assert.deepEqual(
    files.flatMap(recordsOf).sort((a, b) => a - b),
    range(36, 12),
  );
  assert.ok(!readdirSync(dir).some((f) => f.endsWith('.partial')));
  assert.ok(!existsSync(join(dir, 'app.log')) || recordsOf(join(dir, 'app.log')).length === 0);
});

test('a batch is never split: one larger than rotate_max_size goes whole into one file', async () => {
  const dir = tempDir();
  const out = await output(dir, { file: 'big', rotate: true, rotate_max_size: 300, rotate_max_files: 10, rotate_gzip: false });
  await out.send(outgoingBatch(batch('t', 0, 2))); // 200 bytes
  await out.send(outgoingBatch(batch('t', 2, 20))); // 2000 bytes: appended whole, then the file is rotated
  await out.send(outgoingBatch(batch('t', 22, 1)));
  await out.close();
  await rotationsSettled();
  assert.deepEqual(rotated(dir, 'big').map(recordsOf), [range(0, 22)]);
  assert.deepEqual(recordsOf(join(dir, 'big')), [22]);
});

test('age rule: rotated before the write once the file is rotate_interval old (injected clock)', async () => {
  const dir = tempDir();
  const c = clock();
  const out = await output(dir, { file: 'aged', rotate: true, rotate_max_size: 0, rotate_interval: '1h', rotate_gzip: false }, { now: c.now });
  await out.send(outgoingBatch(batch('t', 0, 3)));
  c.ms += 30 * 60_000;
  await out.send(outgoingBatch(batch('t', 3, 3)));
  assert.deepEqual(rotated(dir, 'aged'), [], 'half an hour old: not yet');
  c.ms += 31 * 60_000;
  await out.send(outgoingBatch(batch('t', 6, 3))); // 61 minutes: rotated first, then written
  await rotationsSettled();
  assert.deepEqual(rotated(dir, 'aged').map(recordsOf), [range(0, 6)]);
  assert.deepEqual(recordsOf(join(dir, 'aged')), range(6, 3));
  c.ms += 59 * 60_000;
  await out.send(outgoingBatch(batch('t', 9, 1))); // the new file is 59 minutes old
  c.ms += 2 * 60_000;
  await out.send(outgoingBatch(batch('t', 10, 1)));
  await out.close();
  assert.deepEqual(rotated(dir, 'aged').map(recordsOf), [range(0, 6), range(6, 4)]);
  assert.deepEqual(recordsOf(join(dir, 'aged')), [10]);
});

test('a file that exists at start counts its size and its age (birth time)', async () => {
  const dir = tempDir();
  const existing = (name: string, from: number, n: number) =>
    writeFileSync(
      join(dir, name),
      batch('t', from, n)
        .map((e) => `${JSON.stringify(e.record)}\n`)
        .join(''),
    );
  existing('small', 0, 9); // 900 bytes: the next batch takes it over 1000, then it rotates
  existing('full', 100, 12); // 1200 bytes: over the size at start, rotated before the first write
  existing('old', 200, 2);
  const out = await output(dir, { rotate: true, rotate_max_size: 1000, rotate_gzip: false });
  await out.send(outgoingBatch([...batch('small', 9, 2), ...batch('full', 112, 1)]));
  await out.close();
  await rotationsSettled();
  assert.deepEqual(rotated(dir, 'small').map(recordsOf), [range(0, 11)]);
  assert.equal(existsSync(join(dir, 'small')), false, 'rotated after the batch, the next write creates it');
  assert.deepEqual(rotated(dir, 'full').map(recordsOf), [range(100, 12)]);
  assert.deepEqual(recordsOf(join(dir, 'full')), [112]);

  // Age: the file's birth time; the clock says two hours later.
  const birth = statSync(join(dir, 'old')).birthtimeMs;
  assert.ok(birth > 0, 'this file system records birth times');
  const c = clock(birth + 2 * 3600_000);
  const aged = await output(dir, { rotate: true, rotate_max_size: 0, rotate_interval: '1h', rotate_gzip: false }, { now: c.now });
  await aged.send(outgoingBatch(batch('old', 202, 1)));
  await aged.close();
  assert.deepEqual(rotated(dir, 'old').map(recordsOf), [range(200, 2)]);
  assert.deepEqual(recordsOf(join(dir, 'old')), [202]);
});

test('rotated files beyond rotate_max_files are removed, oldest first; other files are left alone', async () => {
  const dir = tempDir();
  const t0 = Date.now() / 1000 - 86400;
  const old = Array.from({ length: 6 }, (_, i) => `app.2026010${i}_000000_0000000${i}${i % 2 ? '.gz' : ''}`);
  old.forEach((name, i) => {
    writeFileSync(join(dir, name), 'x');
    utimesSync(join(dir, name), t0 + i, t0 + i);
  });
  const legacy = 'app.20251231_235959'; // Fluent Bit's earlier suffix, oldest of all
  writeFileSync(join(dir, legacy), 'x');
  utimesSync(join(dir, legacy), t0 - 10, t0 - 10);
  const others = ['app.1', 'app.old', 'app.20260101_000000_nothex00', 'other.20260101_000000_00000000', 'app'];
  for (const name of others) writeFileSync(join(dir, name), name === 'app' ? '{"n":"000000"}\n'.repeat(30) : 'keep');
  mkdirSync(join(dir, 'app.20260102_000000_0000000f')); // a directory is not a rotated file
  const out = await output(dir, { file: 'app', rotate: true, rotate_max_size: 150, rotate_max_files: 3, rotate_gzip: false });
  await out.send(outgoingBatch(batch('t', 0, 1))); // the file is over the size at start: rotated, then written
  await out.close();
  await rotationsSettled();
  const left = readdirSync(dir).sort();
  const kept = left.filter((f) => isRotatedName(f, 'app') && statSync(join(dir, f)).isFile());
  assert.equal(kept.length, 3, left.join(' '));
  assert.ok(kept.includes(old[5]!) && kept.includes(old[4]!), left.join(' '));
  for (const name of [...others, 'app.20260102_000000_0000000f']) assert.ok(left.includes(name), `${name} was removed`);
  for (const name of [legacy, ...old.slice(0, 4)]) assert.ok(!left.includes(name), `${name} was kept`);
});

test('two outputs on one path and concurrent workers: no interleaving, no double rotation, every record once', async () => {
  const base = tempDir();
  mkdirSync(join(base, 'real'));
  symlinkSync(join(base, 'real'), join(base, 'link')); // the same directory under two names
  const opts = { file: 'shared', rotate: true, rotate_max_size: 2000, rotate_max_files: 1000, rotate_gzip: false };
  const a = await output(join(base, 'real'), opts);
  const b = await output(join(base, 'link'), opts);
  const sends: Array<Promise<void>> = [];
  for (let i = 0; i < 60; i++) {
    // 7 records (700 bytes) per batch, both outputs at once, several batches of each in flight.
    sends.push((i % 2 ? a : b).send(outgoingBatch(batch('t', i * 7, 7))));
  }
  await Promise.all(sends);
  await a.close();
  await b.close();
  await rotationsSettled();
  const dir = join(base, 'real');
  const files = rotated(dir, 'shared');
  const all = [...files, join(dir, 'shared')]
    .filter(existsSync)
    .flatMap(recordsOf)
    .sort((x, y) => x - y);
  assert.deepEqual(all, range(0, 420), 'every record exactly once, every line whole');
  // Each rotated file holds three batches: 2100 bytes. A second rotation of one file would leave a short one.
  assert.equal(files.length, 20, readdirSync(dir).join(' '));
  for (const f of files) assert.equal(statSync(f).size, 2100, f);
  for (const f of files) {
    const n = recordsOf(f);
    for (let i = 0; i < n.length; i += 7) assert.equal(n[i]! % 7, 0, `${f}: batches are whole and not interleaved`);
  }
});

test('tag-derived names: each tag file rotates on its own; a tag never leaves path', async () => {
  const dir = tempDir();
  const out = await output(join(dir, 'out'), { mkdir: true, rotate: true, rotate_max_size: 500, rotate_gzip: false });
  await out.send(outgoingBatch([...batch('a', 0, 5), ...batch('b', 100, 2), ...batch('../escape', 200, 5)]));
  await out.send(outgoingBatch([...batch('a', 5, 1), ...batch('b', 102, 1)]));
  await out.close();
  await rotationsSettled();
  const d = join(dir, 'out');
  assert.deepEqual(rotated(d, 'a').map(recordsOf), [range(0, 5)]);
  assert.deepEqual(recordsOf(join(d, 'a')), [5]);
  assert.deepEqual(rotated(d, 'b'), []);
  assert.deepEqual(recordsOf(join(d, 'b')), [100, 101, 102]);
  assert.deepEqual(rotated(d, '.._escape').map(recordsOf), [range(200, 5)]);
  assert.deepEqual(readdirSync(dir), ['out']);
});

test('a file moved away by someone else (logrotate, another process) is followed, not rotated twice', async () => {
  const dir = tempDir();
  const out = await output(dir, { file: 'moved', rotate: true, rotate_max_size: 450, rotate_gzip: false });
  await out.send(outgoingBatch(batch('t', 0, 4))); // 400 bytes
  renameSync(join(dir, 'moved'), join(dir, 'moved.elsewhere'));
  await out.send(outgoingBatch(batch('t', 4, 1))); // into a new file at the path, not the moved one
  await out.close();
  assert.deepEqual(recordsOf(join(dir, 'moved.elsewhere')), range(0, 4));
  assert.deepEqual(recordsOf(join(dir, 'moved')), [4]);
  assert.deepEqual(rotated(dir, 'moved'), []);
});

test("a rotation that fails is not the batch's: records go on into the file, a warning, rotated at a later batch", async (t) => {
  const dir = tempDir();
  const sub = join(dir, 'locked');
  mkdirSync(sub);
  const warnings: string[] = [];
  const out = await output(sub, { file: 'f', rotate: true, rotate_max_size: 300, rotate_gzip: false }, { warnings });
  await out.send(outgoingBatch(batch('t', 0, 1)));
  // An immutable directory: the file can be appended to, nothing in the directory renamed (also for root).
  const lock = spawnSync('chattr', ['+i', sub]);
  if (lock.status !== 0) {
    await out.close();
    t.skip(`chattr +i is not available here: ${String(lock.stderr).trim()}`);
    return;
  }
  try {
    await out.send(outgoingBatch(batch('t', 1, 4))); // 500 bytes: due, the rename fails
    await out.send(outgoingBatch(batch('t', 5, 1))); // tried again before this write, fails again, written anyway
  } finally {
    spawnSync('chattr', ['-i', sub]);
  }
  assert.ok(
    warnings.some((w) => /cannot rotate the file/.test(w) && /"code":"EPERM"/.test(w)),
    warnings.join('\n'),
  );
  assert.deepEqual(rotated(sub, 'f'), []);
  assert.deepEqual(recordsOf(join(sub, 'f')), range(0, 6));
  await out.send(outgoingBatch(batch('t', 6, 1))); // the directory is writable again: rotated before this write
  await out.close();
  assert.deepEqual(rotated(sub, 'f').map(recordsOf), [range(0, 6)]);
  assert.deepEqual(recordsOf(join(sub, 'f')), [6]);
});

function errorsOf(yaml: string): string[] {
  const dir = tempDir();
  writeFileSync(join(dir, 'p.yaml'), yaml);
  try {
    plan(loadConfigFile(join(dir, 'p.yaml'), {}), registry);
  } catch (e) {
    if (e instanceof ConfigErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  return [];
}

const pipeline = (opts: string) => `pipeline:
  inputs:
    - name: forward
  outputs:
    - name: file
      match: '*'
${opts}`;

test('rotation options: bad values and options without rotate are errors at file:line:col', () => {
  let errs = errorsOf(pipeline('      rotate: on\n      rotate_max_size: 10Q\n      rotate_max_files: 0\n      rotate_interval: 1w\n      rotate_gzip: maybe\n'));
  assert.ok(
    errs.some((e) => /p\.yaml:8:24: rotate_max_size: found "10Q", expected a size/.test(e)),
    errs.join('\n'),
  );
  assert.ok(
    errs.some((e) => /p\.yaml:9:25: rotate_max_files: found 0, expected an integer \(at least 1\)/.test(e)),
    errs.join('\n'),
  );
  assert.ok(
    errs.some((e) => /p\.yaml:10:24: rotate_interval: found "1w", expected a duration/.test(e)),
    errs.join('\n'),
  );
  assert.ok(
    errs.some((e) => /p\.yaml:11:20: rotate_gzip: found "maybe", expected a boolean/.test(e)),
    errs.join('\n'),
  );
  errs = errorsOf(pipeline('      rotate_interval: 1d\n'));
  assert.deepEqual(errs.length, 1);
  assert.match(errs[0]!, /p\.yaml:7:24: rotate_interval: rotate_interval takes effect with rotate on, and rotate is off/);
  errs = errorsOf(pipeline('      rotate: on\n      rotate_max_size: 0\n'));
  assert.match(errs[0]!, /p\.yaml:8:24: rotate_max_size: rotate_max_size 0 leaves no rotation rule/);
  assert.deepEqual(errorsOf(pipeline('      rotate: on\n      rotate_max_size: 0\n      rotate_interval: 1d\n')), []);
  assert.deepEqual(errorsOf(pipeline('      rotate: on\n')), []);
});
